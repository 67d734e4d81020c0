"""The command registry (`@command`) and what several commands share: path and --params arguments, the device, the SR
model and its sampler, scoring renders in the same job, generated files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Callable

from ..errors import ThreeDSRError

log = logging.getLogger("threedsr")

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None, Callable]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register the decorated handler as `threedsr <name>`, with the function that declares its arguments."""

    def register(handler: Callable) -> Callable:
        COMMANDS[name] = (help, arguments, handler)
        return handler

    return register


# -- arguments several commands share ------------------------------------------------------------


def path_arguments(c: argparse.ArgumentParser, *flags: str) -> None:
    """Required file or folder arguments (--scene, --out, ...) that need no help text."""
    for flag in flags:
        c.add_argument(flag, type=Path, required=True)


def params_argument(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--params", type=given_params, required=True, help="the params.yaml keys this command reads, as JSON (the rule's params_json)"
    )


def given_params(text: str):
    """`--params`, parsed once: settings.Given, the typed blocks of the keys the rule passes."""
    from ..settings import Given

    return Given(json.loads(text))


def params_device(params):
    from ..devices import resolve_device

    return resolve_device(params.device)


def sr_model_arguments(c: argparse.ArgumentParser, choices) -> None:
    c.add_argument("--model", required=True, choices=choices)
    c.add_argument("--model-path", help="the model's weights (a folder or file) the rule provides; else sr.<model> names them")


def load_sr(a, device):
    """The SR model named by --model, with params' sr block (its own sub-block over it) and --model-path."""
    from ..sr.load import load_sr_model

    sr = a.params.sr
    options = {**sr.options(a.model), **({"path": a.model_path} if a.model_path else {})}
    return load_sr_model(a.model, options, device, sr.dtype), sr


def sampler_of(a):
    """The diffusion sampler of --model, from params.yaml's threedsr keys (every sampling command reads them so); a model
    without one (Real-ESRGAN, RealBasicVSR) is not given them (params_json leaves them out: a sweep never reruns it)."""
    from ..sr.registry import spec
    from ..sr.sampling import SamplerConfig

    return a.params.threedsr.sampler() if spec(a.model).diffusion else SamplerConfig()


def metric_weights(params) -> dict:
    """Where the metrics' weights are and whether to fetch them (params.yaml's metrics block)."""
    m = params.metrics
    return {"lpips_backbone": m.lpips_backbone, "fid_inception": m.fid_inception, "niqe_model": m.niqe_model, "fetch": m.fetch}


def score_arguments(c: argparse.ArgumentParser) -> None:
    """Scoring the renders in the same job: where the scores and features go, what they are of, and --params (metrics)."""
    params_argument(c)
    c.add_argument("--scores", type=Path, help="also write PSNR / SSIM / LPIPS / NIQE of each test view to this CSV (as `evaluate`)")
    c.add_argument(
        "--features", type=Path, help="with --scores: the Inception features of the views and their ground truth (.npz, for FID)"
    )
    c.add_argument("--dataset")
    c.add_argument("--scene-name")
    c.add_argument("--method")


def score_renders(a, renders: Path, out: Path):
    import time

    from ..metrics.scoring import evaluate_renders

    start = time.perf_counter()
    table = evaluate_renders(renders, a.scene, out, a.dataset, a.scene_name, a.method, features_out=a.features, **metric_weights(a.params))
    log.info("scored %d views in %.1f s", len(table), time.perf_counter() - start)
    return table


def score_if_asked(a, renders: Path) -> None:
    """With --scores: evaluate the renders in the same process (one process start per method, not two)."""
    if a.scores is None:
        return
    if not (a.dataset and a.scene_name and a.method):
        raise SystemExit(f"threedsr {a.command}: --scores needs --dataset, --scene-name and --method")
    print(score_renders(a, renders, a.scores).to_string(index=False))


def write_generated(target: Path, text: str, check: bool, command: str, source: str) -> None:
    """Write a file generated from the project (dvc.yaml, docs/params.md), or with `check` refuse one that differs."""
    from ..io import atomic_path

    if check:
        if not target.exists() or target.read_text() != text:
            raise ThreeDSRError(f"{target} is not what `{command}` writes from {source}: regenerate it")
        print(f"ok: {target} is current")
        return
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    print(f"wrote {target}")
