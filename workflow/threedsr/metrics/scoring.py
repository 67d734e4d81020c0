"""Render a model at the test views and score each view against the HR ground truth (the metric registry's per-view
scores), with the Inception features FID is computed from when the tables are made (reporting/tables.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.scene import PreparedScene
from ..errors import DataError
from ..imaging import to_float, to_uint8
from ..io import atomic_path, read_image, write_png
from ..splat.render import RenderSettings, render_views
from ..splat.trainer import load_params
from .fid import DIMS, inception_features
from .image import load_fid_inception
from .registry import ViewImages, load_models, per_view_columns, score_view


def render_test_views(ckpt: Path, scene_dir: Path, out_dir: Path, device: torch.device) -> None:
    """Per test view: <view>.png (HR), <view>_depth.npy (HR expected depth, float32) and <view>_lr.png (LR)."""
    scene = PreparedScene(scene_dir)
    params, state = load_params(ckpt, device)
    settings = RenderSettings.of(state["config"])
    rgb, depth = render_views(params, scene.test_views, settings, device)
    rgb_lr, _ = render_views(params, scene.test_views, settings, device, "lr")
    for v, hr, d, lr in zip(scene.test_views, rgb, depth, rgb_lr):
        write_png(Path(out_dir) / f"{v.name}.png", to_uint8(hr))
        write_png(Path(out_dir) / f"{v.name}_lr.png", to_uint8(lr))
        with atomic_path(Path(out_dir) / f"{v.name}_depth.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, d.numpy().astype(np.float32))


def evaluate_renders(
    render_dir: Path,
    scene_dir: Path,
    out_csv: Path,
    dataset: str,
    scene_name: str,
    method: str,
    lpips_backbone: str | None = None,
    features_out: Path | None = None,
    fid_inception: str | None = None,
    niqe_model: str | None = None,
    fetch: bool = True,
) -> pd.DataFrame:
    """Per test view: every per-view metric of registry.METRICS (PSNR, SSIM, LPIPS against the HR ground truth,
    NIQE of the render), to `out_csv`; with `features_out`, the Inception pool3 features of the renders and of the
    ground truth (an .npz that `aggregate` turns into FID and KID; without the Inception weights it records that they
    were missing)."""
    from ..settings import Metrics

    scene = PreparedScene(scene_dir)
    models = load_models(Metrics(lpips_backbone=lpips_backbone, fid_inception=fid_inception, niqe_model=niqe_model, fetch=fetch))
    inception = load_fid_inception(fid_inception, fetch) if features_out is not None else None
    rows, renders, gts = [], [], []
    for v in scene.test_views:
        rgb, gt_rgb = read_image(Path(render_dir) / f"{v.name}.png"), scene.image(v, "hr")
        scores = score_view(models, ViewImages(to_float(rgb).clamp(0, 1), to_float(gt_rgb).clamp(0, 1), np.asarray(rgb)))
        rows.append({"dataset": dataset, "scene": scene_name, "method": method, "view": v.name, **scores})
        renders.append(np.asarray(rgb))
        gts.append(np.asarray(gt_rgb))
    table = pd.DataFrame(rows, columns=per_view_columns())
    if features_out is not None:
        feats = (
            {"render": inception_features(inception, renders), "gt": inception_features(inception, gts)} if inception is not None else {}
        )
        write_features(features_out, dataset, scene_name, method, [v.name for v in scene.test_views], **feats)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table


def write_features(
    path: Path, dataset: str, scene: str, method: str, views: list[str], render: np.ndarray | None = None, gt: np.ndarray | None = None
) -> None:
    """The Inception features of one method's test views and of their ground truth; without them (no weights)
    the file says so (available = False) and FID is n/a."""
    available = render is not None
    empty = np.zeros((0, DIMS), dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            dataset=np.str_(dataset),
            scene=np.str_(scene),
            method=np.str_(method),
            views=np.array(views, dtype=str),
            available=np.bool_(available),
            render=render if available else empty,
            gt=gt if available else empty,
        )


def read_features(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: truncated or not a features file of `threedsr render --features` ({e})") from None
    missing = {"dataset", "scene", "method", "views", "available", "render", "gt"} - set(out)
    if missing:
        raise DataError(f"{path}: not a features file of `threedsr render --features` (no {', '.join(sorted(missing))})")
    for k in ("dataset", "scene", "method"):
        out[k] = str(out[k])
    out["available"] = bool(out["available"])
    if out["available"] and not (out["render"].shape == out["gt"].shape == (len(out["views"]), DIMS)):
        raise DataError(f"{path}: features of shape {out['render'].shape} / {out['gt'].shape} for {len(out['views'])} views")
    return out
