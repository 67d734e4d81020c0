"""Render test views, score them against the HR ground truth, aggregate, and draw the crops figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from .config import split_method
from .imaging import to_float, to_uint8
from .io import atomic_path, read_image, write_json, write_png
from .metrics import image_metrics, load_lpips
from .scene import PreparedScene
from .splat.render import RenderSettings, render_views
from .splat.trainer import load_params


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


def evaluate_renders(render_dir: Path, scene_dir: Path, out_csv: Path, dataset: str, scene_name: str, method: str, lpips_backbone: str | None) -> pd.DataFrame:
    scene = PreparedScene(scene_dir)
    lpips = load_lpips(lpips_backbone)
    rows = []
    for v in scene.test_views:
        img = to_float(read_image(Path(render_dir) / f"{v.name}.png"))
        gt = to_float(scene.image(v, "hr"))
        rows.append({"dataset": dataset, "scene": scene_name, "method": method, "view": v.name, **image_metrics(img, gt, lpips)})
    table = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table


def is_2d(method: str) -> bool:
    """sr2d methods score 2D SR of the test views themselves, without a 3D model."""
    return split_method(method)[0] == "sr2d"


def aggregate(per_view_csvs: list[Path], out_dir: Path, consistency_csvs: list[Path] = ()) -> pd.DataFrame:
    """per_view.csv, summary.csv (per scene and method, plus a mean row per dataset and method), summary.json (the
    means), <dataset>.md tables;
    with the consistency rule's per-view tables also consistency.csv (mean per scene and image set)."""
    per_view = pd.concat([pd.read_csv(p) for p in per_view_csvs], ignore_index=True)
    per_scene = per_view.groupby(["dataset", "scene", "method"], as_index=False)[["psnr", "ssim", "lpips"]].mean()
    means = per_scene.groupby(["dataset", "method"], as_index=False)[["psnr", "ssim", "lpips"]].mean().assign(scene="mean")
    summary = pd.concat([per_scene, means[per_scene.columns]], ignore_index=True)
    summary["kind"] = ["2D" if is_2d(m) else "3D" for m in summary["method"]]
    out_dir = Path(out_dir)
    for name, df in (("per_view.csv", per_view), ("summary.csv", summary)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
    # DVC's metrics (`dvc metrics show`, `dvc exp show`): the mean over scenes per dataset and method
    write_json(out_dir / "summary.json", {
        dataset: {r.method: {k: None if math.isnan(getattr(r, k)) else round(float(getattr(r, k)), 4) for k in ("psnr", "ssim", "lpips")} for r in df.itertuples()}
        for dataset, df in means.groupby("dataset")
    })
    cons = None
    if consistency_csvs:
        cons = pd.concat([pd.read_csv(p) for p in consistency_csvs], ignore_index=True)
        cons = cons.groupby(["dataset", "scene", "images"], as_index=False, sort=False)[["l1", "psnr", "valid"]].mean()
        with atomic_path(out_dir / "consistency.csv") as tmp:
            cons.to_csv(tmp, index=False)
    for dataset, df in summary.groupby("dataset"):
        lines = [
            f"# {dataset}: test views at HR", "",
            "sr2d rows are 2D super-resolution of each test view's own LR image (no 3D model): a reference, not a 3D method.", "",
            "| method | scene | PSNR ↑ | SSIM ↑ | LPIPS ↓ |", "|---|---|---|---|---|",
        ]
        for r in df.sort_values(["scene", "method"]).itertuples():
            lp = "n/a" if math.isnan(r.lpips) else f"{r.lpips:.3f}"
            name = f"{r.method} (2D)" if is_2d(r.method) else r.method
            lines.append(f"| {name} | {r.scene} | {r.psnr:.2f} | {r.ssim:.4f} | {lp} |")
        if cons is not None and (cons["dataset"] == dataset).any():
            lines += [
                "", "## Multi-view consistency of the training views' images", "",
                "Each view warped into its nearest training view with the LR model's HR depth; masked error against that view's image",
                "(lower L1 / higher PSNR = more consistent; the ground truth row is the floor set by depth errors and lighting;",
                "blurry images also agree more, so read it beside the test-view scores).", "",
                "| images | scene | warp L1 ×255 ↓ | warp PSNR ↑ | valid |", "|---|---|---|---|---|",
            ]
            for r in cons[cons["dataset"] == dataset].itertuples():
                lines.append(f"| {r.images} | {r.scene} | {r.l1:.2f} | {r.psnr:.2f} | {r.valid:.2f} |")
        with atomic_path(out_dir / f"{dataset}.md") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
        with atomic_path(out_dir / f"{dataset}.html") as tmp:
            tmp.write_text(tables_html(dataset, df, None if cons is None else cons[cons["dataset"] == dataset]))
    return summary


def tables_html(dataset: str, summary: pd.DataFrame, consistency: pd.DataFrame | None) -> str:
    """One self-contained page per dataset with the score and consistency tables (what the Snakemake report shows)."""
    scores = summary.sort_values(["scene", "method"]).assign(method=lambda d: [f"{m} (2D)" if is_2d(m) else m for m in d["method"]])
    scores = scores[["scene", "method", "psnr", "ssim", "lpips"]].rename(columns={"psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"})
    parts = [
        f"<h2>{dataset}: test views at HR</h2>",
        "<p>Mean over each scene's test views; <i>mean</i> rows average the scenes. (2D) rows are 2D super-resolution of each "
        "test view's own LR image, a reference, not a 3D method.</p>",
        scores.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep="n/a", border=0),
    ]
    if consistency is not None and len(consistency):
        parts += [
            "<h2>Multi-view consistency of the training views' images</h2>",
            "<p>Each view warped into its nearest training view with the LR model's HR depth; masked error against that view's "
            "image (lower L1, higher PSNR = more consistent). The ground truth row is the floor set by depth errors and lighting; "
            "blurry images also agree more, so read it beside the test-view scores.</p>",
            consistency[["scene", "images", "l1", "psnr", "valid"]].rename(columns={"l1": "warp L1 ×255 ↓", "psnr": "warp PSNR ↑"})
            .to_html(index=False, float_format=lambda x: f"{x:.2f}", border=0),
        ]
    style = (
        "body{font-family:sans-serif;margin:12px} table{border-collapse:collapse} "
        "td,th{padding:3px 10px;border-bottom:1px solid #ccc;text-align:right} td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}"
    )
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{dataset}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n"


def labelled(tile: Image.Image, label: str) -> np.ndarray:
    """The tile with its label in white on black in the top-left corner (figures and strips)."""
    d = ImageDraw.Draw(tile)
    d.rectangle((0, 0, 6 * len(label) + 4, 12), fill=(0, 0, 0))
    d.text((2, 1), label, fill=(255, 255, 255))
    return np.asarray(tile)


def crops_figure(scene_dir: Path, render_dirs: dict[str, Path], out_png: Path, crop: int = 96) -> None:
    """Per test view, one row: LR input (nearest-upsampled) | each method | ground truth, on a centre crop."""
    scene = PreparedScene(scene_dir)
    rows = []
    for v in scene.test_views:
        gt = np.array(scene.image(v, "hr"))
        h, w = gt.shape[:2]
        c = min(crop, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        lr = np.asarray(Image.fromarray(np.array(scene.image(v, "lr"))).resize((w, h), Image.NEAREST))
        panels = [("LR input", lr)] + [(f"{m} (2D)" if is_2d(m) else m, np.array(read_image(Path(d) / f"{v.name}.png"))) for m, d in render_dirs.items()] + [("ground truth", gt)]
        tiles = [labelled(Image.fromarray(np.ascontiguousarray(img[y0 : y0 + c, x0 : x0 + c])).resize((2 * c, 2 * c), Image.NEAREST), label) for label, img in panels]
        rows.append(np.concatenate(tiles, axis=1))
    write_png(out_png, np.concatenate(rows, axis=0))
