"""A smooth camera path through a scene's training cameras: SuperGaussian's frames and the fly-through videos.

The training cameras, sorted by name, are the key poses; `n_interp` poses lie between consecutive
keys. Camera centres follow a cubic spline through the key centres (natural end conditions),
rotations are slerped, intrinsics (at LR and at HR) interpolated linearly. The path passes exactly
through every key pose.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, Slerp

from ..errors import DataError
from .cameras import Intrinsics
from .scene import PreparedScene, SceneView


def _interp_intrinsics(keys: list[Intrinsics], t: float) -> Intrinsics:
    i = min(int(np.floor(t)), len(keys) - 2)
    a, b, f = keys[i], keys[i + 1], t - i
    mix = lambda x, y: (1 - f) * x + f * y  # noqa: E731
    return replace(a, fx=mix(a.fx, b.fx), fy=mix(a.fy, b.fy), cx=mix(a.cx, b.cx), cy=mix(a.cy, b.cy))


def smooth_trajectory(keys: list[SceneView], n_interp: int) -> list[SceneView]:
    """(len(keys) − 1)·(n_interp + 1) + 1 views named frame_0000, …, in the order of `keys`."""
    if len(keys) < 2:
        raise DataError(f"a trajectory needs at least 2 key cameras, got {len(keys)}")
    for res in ("lr", "hr"):
        sizes = {(getattr(v, res).width, getattr(v, res).height) for v in keys}
        if len(sizes) > 1:
            raise DataError(f"the key cameras' {res.upper()} images differ in size ({sorted(sizes)}): a video needs one frame size")
    R = np.stack([v.world_to_camera[:3, :3] for v in keys])
    centres = np.stack([-r.T @ v.world_to_camera[:3, 3] for r, v in zip(R, keys)])
    times = np.arange(len(keys), dtype=np.float64)
    spline = CubicSpline(times, centres, axis=0, bc_type="natural")
    slerp = Slerp(times, Rotation.from_matrix(R))
    samples = np.linspace(0.0, len(keys) - 1, (len(keys) - 1) * (n_interp + 1) + 1)
    frames = []
    for i, (t, rot, c) in enumerate(zip(samples, slerp(samples).as_matrix(), spline(samples))):
        w2c = np.eye(4)
        w2c[:3, :3] = rot
        w2c[:3, 3] = -rot @ c
        frames.append(
            SceneView(
                f"frame_{i:04d}",
                "trajectory",
                w2c,
                _interp_intrinsics([k.lr for k in keys], t),
                _interp_intrinsics([k.hr for k in keys], t),
            )
        )
    return frames


def scene_trajectory(scene: PreparedScene, n_interp: int) -> list[SceneView]:
    """The smooth path through the scene's training cameras sorted by name."""
    return smooth_trajectory(sorted(scene.train_views, key=lambda v: v.name), n_interp)


def trajectory_to_json(views: list[SceneView]) -> list[dict]:
    return [{"name": v.name, "world_to_camera": v.world_to_camera.tolist(), "lr": v.lr.to_dict(), "hr": v.hr.to_dict()} for v in views]


def trajectory_from_json(items: list[dict]) -> list[SceneView]:
    return [
        SceneView(
            d["name"],
            "trajectory",
            np.array(d["world_to_camera"], dtype=np.float64),
            Intrinsics.from_dict(d["lr"]),
            Intrinsics.from_dict(d["hr"]),
        )
        for d in items
    ]
