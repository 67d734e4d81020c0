"""Rendering a model: one call for every render (training, test views, depth, paths, videos), and the settings a
checkpoint was fitted with, so that it is always drawn the way it was fitted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass

import torch

from .gaussians import activated
from .rasterization import rasterization


@dataclass(frozen=True)
class RenderSettings:
    sh_degree: int
    rasterize_mode: str  # gsplat's classic, or antialiased (Mip-Splatting's 2D filter)
    eps2d: float  # the screen-space dilation, px^2

    @classmethod
    def of(cls, config) -> "RenderSettings":
        """From a TrainConfig or a checkpoint's `config` dict. Checkpoints from before these were settings were
        fitted with 3DGS' classic mode and 0.3."""
        c = asdict(config) if is_dataclass(config) else config
        return cls(int(c["sh_degree"]), c.get("rasterize_mode", "classic"), float(c.get("eps2d", 0.3)))


def render(params, viewmats, Ks, width, height, sh_degree, rasterize_mode, *, eps2d, render_mode="RGB", backgrounds=None):
    """gsplat's rasterization of the model's activated Gaussians (through the 3D filter when it has one)."""
    a = activated(params)
    options = {
        "sh_degree": sh_degree,
        "rasterize_mode": rasterize_mode,
        "eps2d": eps2d,
        "render_mode": render_mode,
        "backgrounds": backgrounds,
    }
    return rasterization(
        a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], viewmats, Ks, width, height, packed=False, **options
    )


@torch.no_grad()
def render_views(params, views, settings: RenderSettings, device, resolution: str = "hr") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Colour (H×W×3, CPU, clamped to [0, 1]) and expected depth (H×W, CPU) of each view (anything with
    `world_to_camera` and `hr`/`lr` intrinsics: scene views, path poses) at "hr" or "lr"."""
    rgb, depth = [], []
    for v in views:
        intr = getattr(v, resolution)
        w2c = torch.tensor(v.world_to_camera, dtype=torch.float32, device=device)[None]
        K = torch.tensor(intr.K, dtype=torch.float32, device=device)[None]
        out, _, _ = render(
            params, w2c, K, intr.width, intr.height, settings.sh_degree, settings.rasterize_mode, render_mode="RGB+ED", eps2d=settings.eps2d
        )
        rgb.append(out[0, ..., :3].clamp(0, 1).cpu())
        depth.append(out[0, ..., 3].cpu())
    return rgb, depth
