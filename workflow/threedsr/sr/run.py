"""Per-image SR of a prepared scene's views: what `isr` fits 3DGS to and `sr2d` scores."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch

from ..data.scene import PreparedScene
from ..errors import DataError
from ..imaging import to_float, to_uint8
from ..io import atomic_dir, write_json
from ..partial import PartialImages, fingerprint
from ..progress import progress
from .base import SRModel
from .sampling import SamplerConfig, view_seeds

log = logging.getLogger(__name__)


def check_no_leak(model: SRModel, scene: PreparedScene) -> None:
    """Refuse a prior that was trained on a photo this (synthetic) scene is textured with."""
    trained_on = set(getattr(model, "meta", {}).get("training", {}).get("photos", []))
    used = trained_on & set(scene.meta.get("photos_used", []))
    if used:
        raise DataError(
            f"{scene.root}: the SR prior was trained on {sorted(used)}, which this scene is textured with; retrain it without them"
        )


def save_batch(partial: PartialImages, model: SRModel, views: list, sr: torch.Tensor) -> None:
    """One finished batch of SR images (B×3×H×W) of `views`, each checked against its view's HR size, into `partial`."""
    for v, img in zip(views, sr):
        if img.shape[-2:] != (v.hr.height, v.hr.width):
            raise DataError(f"{model.name} gave {tuple(img.shape[-2:])} for {v.name}, expected HR {(v.hr.height, v.hr.width)}")
    partial.save({v.name: to_uint8(img.float().cpu().permute(1, 2, 0)) for v, img in zip(views, sr)})


def super_resolve_scene(
    scene_dir: Path, model: SRModel, sampler: SamplerConfig, out_dir: Path, batch_size: int = 4, which: str = "all"
) -> dict:
    """<out_dir>/<view>.png for every view, or the test views only (each from its own LR image alone), and sr.json.

    Each finished batch is kept (partial.PartialImages) until the folder is complete: a killed job's rerun with the same
    model, sampler and images computes only the batches that were not finished."""
    scene = PreparedScene(scene_dir)
    check_no_leak(model, scene)
    views = scene.views if which == "all" else scene.test_views
    seeds = view_seeds(sampler.seed, [v.name for v in views])
    lrs = [scene.image(v, "lr") for v in views]
    key = fingerprint(model.fingerprint(), sampler.__dict__, which, batch_size, *(v.name for v in views), *lrs)
    partial = PartialImages(out_dir, key, fault="sr:batch-saved")
    start = time.perf_counter()
    bar = progress(total=len(views), desc=f"{model.name} {scene.root.name}", unit="view")
    for i in range(0, len(views), batch_size):
        chunk = views[i : i + batch_size]
        if not partial.finished([v.name for v in chunk]):
            lr = torch.stack([to_float(im).permute(2, 0, 1) for im in lrs[i : i + batch_size]])
            save_batch(partial, model, chunk, model.super_resolve(lr, sampler, seeds[i : i + batch_size]))
        bar.update(len(chunk))
    bar.close()
    seconds = time.perf_counter() - start
    info = {
        "model": model.name,
        "which": which,
        "sampler": sampler.__dict__ if model.is_diffusion else None,
        "views": len(views),
        "seconds": round(seconds, 2),
        "seconds_per_view": round(seconds / max(1, len(views)), 3),
    }
    with atomic_dir(out_dir) as tmp:
        partial.link_into(tmp, [v.name for v in views])
        write_json(tmp / "sr.json", info)
    partial.done()
    log.info("%s: %d views super-resolved by %s in %.1f s", scene.root, len(views), model.name, seconds)
    return info


def collect_test_views(scene_dir: Path, sr_dir: Path, out_dir: Path) -> None:
    """The test views' SR images as a method's 'renders' (sr2d: 2D SR alone, no 3D model)."""
    scene = PreparedScene(scene_dir)
    with atomic_dir(out_dir) as tmp:
        for v in scene.test_views:
            shutil.copy2(Path(sr_dir) / f"{v.name}.png", tmp / f"{v.name}.png")
        shutil.copy2(Path(sr_dir) / "sr.json", tmp / "sr.json")
