"""Pinhole cameras in the OpenCV / COLMAP convention.

Camera axes: x right, y down, z forward. Pixel coordinates are continuous with the
centre of the top-left pixel at (0.5, 0.5), as in COLMAP and gsplat, so resizing an
image by (sx, sy) scales fx, fy, cx, cy by exactly (sx, sy, sx, sy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def resized(self, width: int, height: int) -> "Intrinsics":
        """The same camera for the whole frame resampled to width x height."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Intrinsics":
        """The camera of the pixel window [x0, x0+width) x [y0, y0+height)."""
        return replace(self, cx=self.cx - x0, cy=self.cy - y0, width=width, height=height)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Intrinsics":
        return cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]), int(d["height"]))


@dataclass(frozen=True)
class Lens:
    """A COLMAP camera with distortion: model name and parameters at width x height (its own resolution)."""

    model: str
    params: tuple[float, ...]
    width: int
    height: int

    def to_dict(self) -> dict:
        return {**asdict(self), "params": list(self.params)}

    @classmethod
    def from_dict(cls, d: dict) -> "Lens":
        return cls(d["model"], tuple(float(p) for p in d["params"]), int(d["width"]), int(d["height"]))

    def camera(self, width: int | None = None, height: int | None = None):
        """The pycolmap camera, rescaled to width x height (an image file smaller than the calibration)."""
        import pycolmap

        cam = pycolmap.Camera.create_from_model_name(1, self.model, 1.0, self.width, self.height)
        cam.params = list(self.params)
        if width is not None and (width, height) != (self.width, self.height):
            cam.rescale(width, height)
        return cam


@dataclass(frozen=True)
class PosedView:
    """One image and its camera, as the pose stage found them."""

    name: str
    image: str  # path of the image the pose belongs to, relative to the scene folder
    intrinsics: Intrinsics  # at the resolution the poses were stored for (f and c of a distorted camera)
    world_to_camera: np.ndarray  # 4x4, OpenCV axes
    lens: Lens | None = None  # the COLMAP camera when it has lens distortion (prepare.py undistorts or ignores it)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "image": self.image,
            "intrinsics": self.intrinsics.to_dict(),
            "world_to_camera": np.asarray(self.world_to_camera).tolist(),
            **({"lens": self.lens.to_dict()} if self.lens else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PosedView":
        lens = Lens.from_dict(d["lens"]) if d.get("lens") else None
        return cls(d["name"], d["image"], Intrinsics.from_dict(d["intrinsics"]), np.array(d["world_to_camera"], dtype=np.float64), lens)


def project_points(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and depths (N,) of world points (N, 3)."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    uv = (cam @ K.T)[:, :2] / z[:, None]
    return uv, z


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera matrix of a camera at `eye` looking at `target`; `up` is world up."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # camera y points down (-up), so x = y x z = z x up points right
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c
