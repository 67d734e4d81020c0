"""Cameras from a `transforms.json`: nerfstudio's `ns-process-data` and Instant-NGP's layout.

What is read (nerfstudio's data conventions, https://docs.nerf.studio/quickstart/data_conventions.html):
- intrinsics `fl_x`, `fl_y`, `cx`, `cy`, `w`, `h` (or Instant-NGP / Blender's `camera_angle_x`, `camera_angle_y`),
  at the top level or per frame (a frame's own values win), at the resolution of the images the paths name;
- lens distortion `k1`, `k2`, `k3`, `k4`, `p1`, `p2` with `camera_model` OPENCV (the default) or PINHOLE; fisheye and
  equirectangular models are refused, as for COLMAP's;
- per frame `file_path` (relative to the file's folder; Instant-NGP's may omit the extension) and `transform_matrix`,
  the 4x4 camera-to-world in OpenGL axes (x right, y up, z backwards);
- `ply_file_path`, the points nerfstudio writes beside it (sparse_pc.ply), in the same world as the cameras.
Everything else (`applied_transform`, `aabb_scale`, train/test file lists, masks, depths) is not needed here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import image_size
from .cameras import Intrinsics, Lens

FILE = "transforms.json"
_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flip y and z of the camera's axes
_REFUSED_MODELS = ("OPENCV_FISHEYE", "EQUIRECTANGULAR", "FISHEYE624")
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "camera_model")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _read(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise DataError(f"{path}: no 'frames' list (nerfstudio / Instant-NGP layout: frames with file_path and transform_matrix)")
    return meta


def _image_file(folder: Path, file_path: str, where: str) -> Path:
    """The frame's image: its path relative to the file's folder; Instant-NGP's paths may omit the extension."""
    p = folder / file_path
    if p.is_file():
        return p
    for suffix in (".png", ".jpg", ".jpeg", ".JPG", ".PNG"):
        if (q := p.with_name(p.name + suffix)).is_file():
            return q
    raise DataError(f"{where}: file_path {file_path!r} names no image under {folder}")


def _number(cam: dict, key: str, where: str) -> float:
    try:
        value = float(cam[key])
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key} is {cam[key]!r}, not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {key} is {value}, not a finite number")
    return value


def _camera(cam: dict, image: Path, where: str) -> tuple[Intrinsics, Lens | None]:
    """Pinhole intrinsics and, with distortion, the COLMAP lens model of a frame's camera (top-level keys and its own)."""
    model = str(cam.get("camera_model", "OPENCV")).upper()
    if model in _REFUSED_MODELS:
        raise DataError(f"{where}: camera_model {model} is not a perspective camera; undistort the images first (as COLMAP's are)")
    if "w" in cam and "h" in cam:
        w, h = int(_number(cam, "w", where)), int(_number(cam, "h", where))
    else:
        w, h = image_size(image)
    if "fl_x" in cam:
        fx = _number(cam, "fl_x", where)
        fy = _number(cam, "fl_y", where) if "fl_y" in cam else fx
    elif "camera_angle_x" in cam:  # Instant-NGP / Blender: the horizontal field of view
        fx = 0.5 * w / math.tan(0.5 * _number(cam, "camera_angle_x", where))
        fy = 0.5 * h / math.tan(0.5 * _number(cam, "camera_angle_y", where)) if "camera_angle_y" in cam else fx
    else:
        raise DataError(f"{where}: no focal length (fl_x, or camera_angle_x) at the top level or in the frame")
    cx = _number(cam, "cx", where) if "cx" in cam else w / 2
    cy = _number(cam, "cy", where) if "cy" in cam else h / 2
    if fx <= 0 or fy <= 0 or w <= 0 or h <= 0:
        raise DataError(f"{where}: focal length {fx}, {fy} and size {w}x{h} must be positive")
    k = {key: _number(cam, key, where) if key in cam else 0.0 for key in _DISTORTION_KEYS}
    intr = Intrinsics(fx, fy, cx, cy, w, h)
    if model == "PINHOLE" or not any(abs(v) > 1e-9 for v in k.values()):
        return intr, None
    if k["k3"] == 0 and k["k4"] == 0:
        return intr, Lens("OPENCV", (fx, fy, cx, cy, k["k1"], k["k2"], k["p1"], k["p2"]), w, h)
    return intr, Lens("FULL_OPENCV", (fx, fy, cx, cy, k["k1"], k["k2"], k["p1"], k["p2"], k["k3"], k["k4"], 0.0, 0.0), w, h)


def _world_to_camera(frame: dict, where: str) -> np.ndarray:
    try:
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: no 4x4 transform_matrix of numbers") from None
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0, 0, 0, 1]])
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise DataError(f"{where}: transform_matrix is not a 4x4 matrix of finite numbers (shape {c2w.shape})")
    rot = c2w[:3, :3]
    scale = np.cbrt(np.linalg.det(rot))
    if not (scale > 0 and np.allclose(rot.T @ rot / scale**2, np.eye(3), atol=1e-4)):
        raise DataError(f"{where}: transform_matrix's rotation part is not a rotation (a camera-to-world matrix is expected)")
    c2w = c2w.copy()
    c2w[:3, :3] /= scale  # a uniformly scaled rotation, as some exporters write it
    return np.linalg.inv(c2w @ _OPENGL_TO_OPENCV)


def read_transforms(path: Path) -> tuple[list[tuple[str, Path, Intrinsics, Lens | None, np.ndarray]], Path | None]:
    """(name, image file, Intrinsics, Lens or None, 4x4 world_to_camera in OpenCV axes) per frame, and the points'
    PLY when the file names one (`ply_file_path`)."""
    path = Path(path)
    meta = _read(path)
    top = {k: meta[k] for k in (*_INTRINSIC_KEYS, *_DISTORTION_KEYS) if k in meta}
    entries = []
    for i, frame in enumerate(meta["frames"]):
        where = f"{path}: frame {i}"
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise DataError(f"{where}: no file_path")
        image = _image_file(path.parent, frame["file_path"], where)
        intr, lens = _camera({**top, **{k: frame[k] for k in (*_INTRINSIC_KEYS, *_DISTORTION_KEYS) if k in frame}}, image, where)
        entries.append((image.name, image, intr, lens, _world_to_camera(frame, where)))
    ply = meta.get("ply_file_path")
    if ply is not None:
        ply = path.parent / str(ply)
        if not ply.is_file():
            raise DataError(f"{path}: ply_file_path {meta['ply_file_path']!r} names no file")
    return entries, ply
