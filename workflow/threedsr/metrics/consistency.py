"""Multi-view consistency of a set of images of a scene: warp each view into its nearest neighbour.

A simple, documented stand-in for MEt3R (whose DUSt3R weights are not available offline): with a
depth map per view (rendered from a 3DGS model) and the cameras, every pixel of the neighbour j is
lifted to 3D with j's depth, projected into view i, and i's image is sampled there. Pixels that
fall outside i, or whose projected depth disagrees with i's own depth by more than `occlusion`
(relative), are masked out. The score is the masked photometric error between the warped image
and j's image: low when the images agree about the scene, whatever the scene looks like. The same
warp applied to the ground-truth images gives the floor (depth errors, view-dependent shading).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import DataError


def camera_centres(world_to_cameras: list[np.ndarray]) -> np.ndarray:
    return np.array([-w[:3, :3].T @ w[:3, 3] for w in world_to_cameras])


def nearest_neighbours(world_to_cameras: list[np.ndarray]) -> list[int]:
    """For each camera, the index of the closest other camera centre."""
    c = camera_centres(world_to_cameras)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.argmin(1).tolist()


def warp(
    image_i: torch.Tensor, depth_i: torch.Tensor, w2c_i, K_i, depth_j: torch.Tensor, w2c_j, K_j, occlusion: float = 0.03
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i (H×W×3) seen from camera j: (warped H_j×W_j×3, valid mask H_j×W_j)."""
    h, w = depth_j.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pix = torch.stack([u + 0.5, v + 0.5, torch.ones_like(u)], -1)  # pixel centres
    d = depth_j.double()
    cam_j = (pix @ torch.linalg.inv(torch.as_tensor(K_j, dtype=torch.float64)).T) * d[..., None]
    w2c_i, w2c_j = torch.as_tensor(w2c_i, dtype=torch.float64), torch.as_tensor(w2c_j, dtype=torch.float64)
    j_to_i = w2c_i @ torch.linalg.inv(w2c_j)
    cam_i = cam_j @ j_to_i[:3, :3].T + j_to_i[:3, 3]
    z = cam_i[..., 2]
    proj = cam_i @ torch.as_tensor(K_i, dtype=torch.float64).T
    xy = proj[..., :2] / z.clamp(min=1e-9)[..., None]
    hi, wi = depth_i.shape
    grid = torch.stack([xy[..., 0] / wi * 2 - 1, xy[..., 1] / hi * 2 - 1], -1)[None].float()
    sample = lambda img: F.grid_sample(
        img.permute(2, 0, 1)[None].float(), grid, mode="bilinear", align_corners=False, padding_mode="border"
    )[0].permute(1, 2, 0)
    warped = sample(image_i)
    seen_depth = sample(depth_i[..., None])[..., 0].double()
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= wi) & (xy[..., 1] >= 0) & (xy[..., 1] <= hi)
    valid = (d > 0) & (z > 0) & inside & ((seen_depth - z).abs() <= occlusion * z)
    return warped, valid


def consistency(
    images: list[torch.Tensor], depths: list[torch.Tensor], world_to_cameras: list[np.ndarray], Ks: list[np.ndarray], names: list[str]
) -> list[dict]:
    """Per view: its neighbour, the masked L1 (×255) and PSNR of the view warped into the neighbour, and the valid fraction."""
    rows = []
    for i, j in enumerate(nearest_neighbours(world_to_cameras)):
        warped, valid = warp(images[i], depths[i], world_to_cameras[i], Ks[i], depths[j], world_to_cameras[j], Ks[j])
        n = int(valid.sum())
        if n == 0:
            rows.append({"view": names[i], "neighbour": names[j], "l1": math.nan, "psnr": math.nan, "valid": 0.0})
            continue
        diff = (warped - images[j].float())[valid]
        mse = float((diff**2).mean())
        rows.append(
            {
                "view": names[i],
                "neighbour": names[j],
                "l1": float(diff.abs().mean()) * 255,
                "psnr": math.inf if mse == 0 else -10 * math.log10(mse),
                "valid": n / valid.numel(),
            }
        )
    return rows


def scene_consistency(scene_dir: Path, depth_ckpt: Path, sets: dict[str, str], out_csv: Path, device: str = "auto") -> pd.DataFrame:
    """consistency() of image sets of the training views, all with the HR depth of one 3DGS checkpoint.

    `sets` maps a label to a folder of <view>.png at HR, or to "hr" (the ground truth) or
    "bicubic" (the upsampled LR views). Writes the per-view rows and returns the mean per set.
    """
    from ..data.scene import PreparedScene
    from ..devices import resolve_device
    from ..imaging import to_float
    from ..io import atomic_path, read_image
    from ..splat.render import RenderSettings, render_views
    from ..splat.trainer import load_params

    scene = PreparedScene(scene_dir)
    views = scene.train_views
    dev = resolve_device(device)
    params, state = load_params(depth_ckpt, dev)
    _, depths = render_views(params, views, RenderSettings.of(state["config"]), dev)
    rows = []
    for label, folder in sets.items():
        if folder == "hr":
            images = [to_float(scene.image(v, "hr")) for v in views]
        elif folder == "bicubic":
            images = [scene.bicubic(v) for v in views]
        else:
            images = [to_float(read_image(Path(folder) / f"{v.name}.png")) for v in views]
        for v, img in zip(views, images):
            if img.shape[:2] != (v.hr.height, v.hr.width):
                raise DataError(f"{folder}/{v.name}.png: {img.shape[1]}x{img.shape[0]}, expected the HR size {v.hr.width}x{v.hr.height}")
        per_view = consistency(images, depths, [v.world_to_camera for v in views], [v.hr.K for v in views], [v.name for v in views])
        rows += [{"dataset": scene.meta.get("dataset"), "scene": scene.meta.get("scene"), "images": label, **r} for r in per_view]
    table = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table.groupby("images", sort=False, as_index=False)[["l1", "psnr", "valid"]].mean()
