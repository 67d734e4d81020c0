"""A 3D model as a Gaussian-splat layer the browser renders itself: centres, covariances, colours, opacities.

What the layer draws is what the project's renders draw (gaussians.activated): scales and opacities through the
model's Mip-Splatting 3D filter, as in the PLY export. The client renders colour only from SH degree 0 (no
view-dependent colour). A model above the cap keeps the splats that cover most: opacity × projected area
(∝ opacity · (s₁s₂s₃)^⅔), the rest are left out and the layer says how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import load_checkpoint
from ..splat import gaussians
from ..splat.sh import C0


@dataclass(frozen=True)
class SplatLayer:
    centers: np.ndarray  # (N, 3) float32, world frame of the scene's cameras
    covariances: np.ndarray  # (N, 3, 3) float32: R diag(s²) Rᵀ with the filtered scales
    rgbs: np.ndarray  # (N, 3) float32 in [0, 1]: SH degree 0
    opacities: np.ndarray  # (N, 1) float32 in [0, 1], the 3D filter's factor applied
    total: int  # splats in the model (N ≤ total: the cap)

    @property
    def count(self) -> int:
        return len(self.centers)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.centers, self.covariances, self.rgbs, self.opacities))


def rotation_matrices(quats: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) from (N, 4) quaternions wxyz (not necessarily normalised, as gsplat takes them)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)  # fmt: skip


def layer_from_params(params: dict[str, torch.Tensor], max_splats: int | None = None) -> SplatLayer:
    """The layer of a model given as a checkpoint's `params` (gsplat's layout, the 3D filter if it has one)."""
    with torch.no_grad():
        a = gaussians.activated({k: v.detach().cpu().float() for k, v in params.items()})
        scales, opacities = a["scales"], a["opacities"]
        keep = torch.arange(len(scales))
        if max_splats is not None and len(scales) > max_splats:
            cover = opacities * scales.prod(dim=1).clamp_min(1e-30) ** (2 / 3)
            keep = torch.sort(torch.topk(cover, max_splats).indices).values  # file order kept: a stable layer
        R = rotation_matrices(a["quats"][keep])
        s = scales[keep]
        cov = R @ torch.diag_embed(s * s) @ R.transpose(1, 2)
        rgb = (a["colors"][keep, 0] * C0 + 0.5).clamp(0, 1)
        return SplatLayer(
            a["means"][keep].numpy().astype(np.float32),
            cov.numpy().astype(np.float32),
            rgb.numpy().astype(np.float32),
            opacities[keep, None].numpy().astype(np.float32),
            len(scales),
        )


def load_layer(ckpt: str | Path, max_splats: int | None = None) -> SplatLayer:
    """The layer of a fit's checkpoint (ckpt.pt); a truncated or foreign file is a DataError naming it."""
    return layer_from_params(load_checkpoint(ckpt, keys=("params",))["params"], max_splats)
