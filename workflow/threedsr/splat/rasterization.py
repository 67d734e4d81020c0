"""`rasterization()`: gsplat's call on CUDA tensors, the project's CPU rasterizer on CPU tensors.

Same arguments, same outputs, same `info` keys that training and gsplat's DefaultStrategy read
(`means2d` with its gradient, `radii`, `depths`, `conics`, `opacities`, `gaussian_ids`, `width`,
`height`, `n_cameras`, `tile_size`), so the trainer is device-agnostic. The CPU path supports
pinhole cameras, non-packed mode, a single batch of C cameras; anything else raises.
"""

from __future__ import annotations

from typing import Literal

import torch

from .cpu_project import ProjectGaussians
from .cpu_raster import RasterizeToPixelsCPU, tile_grid

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]


def rasterization(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4) wxyz, not necessarily normalised
    scales: torch.Tensor,  # (N, 3)
    opacities: torch.Tensor,  # (N,)
    colors: torch.Tensor,  # (N, D) or (N, K, 3) SH coefficients when sh_degree is set
    viewmats: torch.Tensor,  # (C, 4, 4) world-to-camera
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: torch.Tensor | None = None,  # (C, D)
    render_mode: RenderMode = "RGB",
    absgrad: bool = False,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
):
    """Render C views: (colors (C, H, W, X), alphas (C, H, W, 1), info)."""
    if means.is_cuda:
        import gsplat

        return gsplat.rasterization(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmats,
            Ks,
            width,
            height,
            near_plane=near_plane,
            far_plane=far_plane,
            radius_clip=radius_clip,
            eps2d=eps2d,
            sh_degree=sh_degree,
            packed=packed,
            tile_size=tile_size,
            backgrounds=backgrounds,
            render_mode=render_mode,
            absgrad=absgrad,
            rasterize_mode=rasterize_mode,
        )
    if packed or absgrad:
        raise NotImplementedError("the CPU rasterizer supports packed=False, absgrad=False")
    if render_mode not in ("RGB", "D", "ED", "RGB+D", "RGB+ED"):
        raise ValueError(f"unknown render_mode {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"unknown rasterize_mode {rasterize_mode!r}")

    C = viewmats.shape[0]
    sh = sh_degree is not None
    radii, means2d, depths, conics, opac, sh_colors = ProjectGaussians.apply(
        means,
        quats,
        scales,
        opacities,
        colors if sh else None,
        viewmats,
        Ks,
        width,
        height,
        eps2d,
        near_plane,
        far_plane,
        radius_clip,
        rasterize_mode == "antialiased",
        sh_degree,
    )
    if sh:
        colors = sh_colors
    else:
        colors = colors[None].expand((C,) + colors.shape) if colors.dim() == 2 else colors
    n_color = colors.shape[-1]
    if backgrounds is None:
        backgrounds = torch.zeros(C, n_color, dtype=colors.dtype)
    if render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, depths[..., None]], dim=-1)
        backgrounds = torch.cat([backgrounds, torch.zeros(C, 1, dtype=backgrounds.dtype)], dim=-1)
    elif render_mode in ("D", "ED"):
        colors = depths[..., None]
        backgrounds = torch.zeros(C, 1, dtype=colors.dtype)

    render_colors, render_alphas = RasterizeToPixelsCPU.apply(
        means2d, conics, colors.contiguous(), opac, backgrounds, radii, depths, width, height, tile_size
    )
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat([render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)], dim=-1)

    tile_width, tile_height, _ = tile_grid(width, height, tile_size)
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": opac,
        "tile_width": tile_width,
        "tile_height": tile_height,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
    }
    return render_colors, render_alphas, info
