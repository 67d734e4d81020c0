"""A 3DGS model as a ParameterDict (gsplat's layout), its initialisation and the standard PLY export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..io import atomic_path
from . import filter3d
from .sh import C0

# Parameters in activation space: means, log-scales, quaternions (wxyz), logit-opacities, SH.
KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / C0


def init_from_points(
    xyz: np.ndarray, rgb: np.ndarray, sh_degree: int, init_opacity: float = 0.1, init_scale: float = 1.0, seed: int = 0
) -> torch.nn.ParameterDict:
    """One Gaussian per point: isotropic scale = mean distance to the 3 nearest neighbours (as 3DGS)."""
    g = torch.Generator().manual_seed(seed)
    xyz = np.asarray(xyz, dtype=np.float64)
    k = min(4, len(xyz))
    d, _ = cKDTree(xyz).query(xyz, k=k)
    spacing = np.maximum(d[:, 1:].mean(axis=1) if k > 1 else np.ones(len(xyz)), 1e-7)
    n = len(xyz)
    quats = torch.rand(n, 4, generator=g)
    shN = torch.zeros(n, (sh_degree + 1) ** 2 - 1, 3)
    return torch.nn.ParameterDict(
        {
            "means": torch.tensor(xyz, dtype=torch.float32),
            "scales": torch.log(torch.tensor(spacing * init_scale, dtype=torch.float32))[:, None].repeat(1, 3),
            "quats": quats,
            "opacities": torch.logit(torch.full((n,), init_opacity)),
            "sh0": rgb_to_sh0(torch.tensor(rgb, dtype=torch.float32) / 255)[:, None, :],
            "shN": shN,
        }
    )


def from_state(state: dict[str, torch.Tensor]) -> torch.nn.ParameterDict:
    """The model from a checkpoint's `params`: the Gaussians trainable, a stored 3D filter not."""
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v, requires_grad=k != filter3d.KEY) for k, v in state.items()})


def activated(params) -> dict[str, torch.Tensor]:
    """What every render draws (training, test views, depth, paths, videos; gsplat and the CPU rasterizer alike):
    scales and opacities through Mip-Splatting's 3D filter when the model carries one."""
    scales, opacities = torch.exp(params["scales"]), torch.sigmoid(params["opacities"])
    if filter3d.KEY in params:
        scales, opacities = filter3d.apply(scales, opacities, params[filter3d.KEY])
    return {
        "means": params["means"],
        "quats": params["quats"],
        "scales": scales,
        "opacities": opacities,
        "colors": torch.cat([params["sh0"], params["shN"]], dim=1),
    }


def export_ply(params, path: str | Path) -> None:
    """The PLY layout of the original 3DGS code (x y z nx ny nz f_dc_* f_rest_* opacity scale_* rot_*), read by common
    splat viewers; a 3D filter is baked into the scales and opacities (Mip-Splatting's fused PLY), so they show what
    the model renders."""
    p = {k: v.detach().cpu().float() for k, v in params.items()}
    if filter3d.KEY in p:
        scales, opacities = filter3d.apply(torch.exp(p["scales"]), torch.sigmoid(p["opacities"]), p[filter3d.KEY])
        p["scales"], p["opacities"] = torch.log(scales), torch.logit(opacities, eps=1e-7)
    n = len(p["means"])
    f_dc = p["sh0"].reshape(n, -1)
    f_rest = p["shN"].transpose(1, 2).reshape(n, -1)  # channel-major, as 3DGS stores it
    cols = [p["means"], torch.zeros(n, 3), f_dc, f_rest, p["opacities"][:, None], p["scales"], p["quats"]]
    names = (
        ["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(f_dc.shape[1])] + [f"f_rest_{i}" for i in range(f_rest.shape[1])]
    )
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    data = torch.cat(cols, dim=1).numpy().astype("<f4")
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        + f"element vertex {n}\n"
        + "".join(f"property float {k}\n" for k in names)
        + "end_header\n"
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(data.tobytes())
