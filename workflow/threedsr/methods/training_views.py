"""What each 3DGS fit trains on: a scene's cameras paired with the images to fit (TrainViews).

    lr_views       the LR training views as they are (pretrain_lr, method lr3dgs)
    method_views   a method's own HR targets, HR cameras (bicubic, and any method with `targets` in registry.py)
    sr_views       each training view's SR image at HR, with its LR image for L_lr (isr)
    frame_views    SuperGaussian's upsampled path frames at HR, and the real LR views for L_lr if asked (supergaussian)
3DSR builds its own each round, from the SR model's H images (three_dsr.py, with `train_view`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.scene import PreparedScene, SceneView
from ..errors import DataError
from ..imaging import to_float
from ..io import read_image, read_json
from ..splat.trainer import TrainView


def train_view(v: SceneView, resolution: str, target: torch.Tensor | None, lr_target: torch.Tensor | None = None) -> TrainView:
    """A view's camera at "lr" or "hr" with the image to fit there (and its LR image for L_lr)."""
    intr = getattr(v, resolution)
    w2c, K = torch.tensor(v.world_to_camera, dtype=torch.float32), torch.tensor(intr.K, dtype=torch.float32)
    return TrainView(w2c, K, intr.width, intr.height, target, lr_target=lr_target)


def _hr_image(path: Path, v) -> torch.Tensor:
    """An image made for view `v` at HR (an SR image, a frame), refused by name when it has another size."""
    img = to_float(read_image(path))
    if img.shape[:2] != (v.hr.height, v.hr.width):
        raise DataError(f"{path}: {img.shape[1]}x{img.shape[0]}, expected the HR size {v.hr.width}x{v.hr.height}")
    return img


def lr_views(scene: PreparedScene) -> list[TrainView]:
    """The LR training views as they are."""
    return [train_view(v, "lr", to_float(scene.image(v, "lr"))) for v in scene.train_views]


def method_views(scene: PreparedScene, method: str) -> list[TrainView]:
    """A method's own HR targets (registry entry `targets`: its module's hr_target(scene, view)), HR cameras."""
    import importlib

    from .registry import of

    module = importlib.import_module(f"{__package__}.{of(method).targets}")
    return [train_view(v, "hr", module.hr_target(scene, v)) for v in scene.train_views]


def sr_views(scene: PreparedScene, sr_dir: Path) -> list[TrainView]:
    """The training views' SR images (<sr_dir>/<view>.png) as HR targets, each with its LR image for L_lr."""
    return [
        train_view(v, "hr", _hr_image(Path(sr_dir) / f"{v.name}.png", v), lr_target=to_float(scene.image(v, "lr")))
        for v in scene.train_views
    ]


def frame_views(scene: PreparedScene, frames_dir: Path, lambda_lr: float) -> list[TrainView]:
    """SuperGaussian's upsampled frames as HR targets with their cameras; with lambda_lr > 0 also the real LR training
    views (HR camera, no HR target: only the λ·L_lr term sees them)."""
    from ..data.trajectory import trajectory_from_json

    frames_dir = Path(frames_dir)
    path = trajectory_from_json(read_json(frames_dir / "trajectory.json"))
    views = [train_view(v, "hr", _hr_image(frames_dir / "hr" / f"{v.name}.png", v)) for v in path]
    if lambda_lr > 0:
        views += [train_view(v, "hr", None, lr_target=to_float(scene.image(v, "lr"))) for v in scene.train_views]
    return views
