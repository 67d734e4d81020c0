"""The prepared scene: its layout and format version (which `prepare.py` writes), read by every stage that
trains and evaluates.

    <scene>/scene.json      factors, split, per view: name, split, world_to_camera (4x4, OpenCV axes), LR and HR
                            intrinsics, source image and crop; provenance (pose source, lens distortion decision)
    <scene>/lr/<view>.png   LR images, 1/lr_factor of the originals
    <scene>/hr/<view>.png   HR images, 1/hr_factor; ground truth of the test views
    <scene>/points3d.ply    initial points (xyz + rgb), world frame of the poses
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import read_image, read_json
from .cameras import Intrinsics
from .pointcloud import read_ply

FORMAT_VERSION = 1  # of scene.json; prepare.py writes it, older prepared scenes are refused (rerun prepare_scene)


@dataclass(frozen=True)
class SceneView:
    name: str
    split: str  # "train" | "test"
    world_to_camera: np.ndarray  # 4x4, OpenCV axes
    lr: Intrinsics
    hr: Intrinsics


class PreparedScene:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = read_json(self.root / "scene.json")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{self.root / 'scene.json'}: format version {self.meta.get('format_version')}, expected {FORMAT_VERSION}; rerun the prepare_scene rule"
            )
        self.views = [
            SceneView(
                v["name"],
                v["split"],
                np.array(v["world_to_camera"], dtype=np.float64),
                Intrinsics.from_dict(v["lr"]),
                Intrinsics.from_dict(v["hr"]),
            )
            for v in self.meta["views"]
        ]

    @property
    def train_views(self) -> list[SceneView]:
        return [v for v in self.views if v.split == "train"]

    @property
    def test_views(self) -> list[SceneView]:
        return [v for v in self.views if v.split == "test"]

    @property
    def scale(self) -> int:
        return int(self.meta["scale"])

    def image(self, view: SceneView, resolution: str) -> np.ndarray:
        """HxWx3 uint8 image of `view` at "lr" or "hr"."""
        if resolution not in ("lr", "hr"):
            raise ValueError(f"resolution must be 'lr' or 'hr', not {resolution!r}")
        return read_image(self.root / resolution / f"{view.name}.png")

    def bicubic(self, view: SceneView):
        """The view's LR image upsampled (bicubic) to HR: HxWx3 float in [0, 1] (the bicubic baseline's target)."""
        from ..imaging import to_float, upsample

        return upsample(to_float(self.image(view, "lr")).permute(2, 0, 1)[None], self.scale)[0].permute(1, 2, 0)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        return read_ply(self.root / "points3d.ply")
