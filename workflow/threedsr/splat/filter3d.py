"""Mip-Splatting's 3D smoothing filter (Yu et al., CVPR 2024, section 4.1), device-agnostic.

A Gaussian cannot hold detail finer than the highest rate at which the training cameras sample
it, nu = focal / depth (pixels per world unit). Its covariance is widened by a 3D low-pass filter
of that size, Sigma + sigma_f^2 I with sigma_f = sqrt(s) / nu_max (s = 0.2, the paper's and the
official code's variance), and its opacity scaled by sqrt(det Sigma / det(Sigma + sigma_f^2 I)) so
that its integral stays the same. The rate is taken over the cameras that see the Gaussian's
centre: in front (depth > 0.2, the official code's near limit) and inside the image widened by
15 % on each side. The filter is recomputed from the cameras being fitted (trainer.py) and stored
with the model, so a model renders with the filter of the resolution it was fitted at.

One difference from the official code, which takes min depth / the largest focal of all cameras:
here each camera's own focal / depth, so cameras of several resolutions are weighed right; for the
cameras of one fit (one resolution) the two are the same.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

KEY = "filter_3d"  # the stored filter sigma_f per Gaussian, (N,), in the model's ParameterDict, not trained
VARIANCE = 0.2  # s: the variance of the filter in pixels^2 at the sampling rate (Mip-Splatting)
NEAR = 0.2  # cameras closer than this (world units) do not count (the official code's limit)
MARGIN = 0.15  # the image widened by this fraction on each side


@torch.no_grad()
def sampling_rate(means: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, widths: list[int], heights: list[int]) -> torch.Tensor:
    """The highest focal / depth over the cameras that see each centre, (N,); 0 where none does."""
    rate = torch.zeros(len(means), dtype=means.dtype, device=means.device)
    for w2c, K, width, height in zip(viewmats, Ks, widths, heights):
        cam = means @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        safe_z = z.clamp(min=1e-6)
        x = K[0, 0] * cam[:, 0] / safe_z + K[0, 2]
        y = K[1, 1] * cam[:, 1] / safe_z + K[1, 2]
        seen = (z > NEAR) & (x >= -MARGIN * width) & (x <= (1 + MARGIN) * width) & (y >= -MARGIN * height) & (y <= (1 + MARGIN) * height)
        rate = torch.where(seen, torch.maximum(rate, K[0, 0] / safe_z), rate)
    return rate


@torch.no_grad()
def compute(
    means: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, widths: list[int], heights: list[int], variance: float = VARIANCE
) -> torch.Tensor:
    """sigma_f per Gaussian, (N,). Gaussians no camera sees get the widest filter of those seen (as the official code)."""
    rate = sampling_rate(means, viewmats, Ks, widths, heights)
    seen = rate > 0
    if not bool(seen.any()):
        log.warning("3D filter: no Gaussian centre is seen by any camera (depth > %s); the filter is off", NEAR)
        return torch.zeros_like(rate)
    rate = torch.where(seen, rate, rate[seen].min())
    return variance**0.5 / rate


def apply(scales: torch.Tensor, opacities: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Filtered scales sqrt(s^2 + sigma^2) per axis and opacities times sqrt(det / det filtered): (N, 3), (N,).
    The determinant ratio is the product of per-axis ratios, which does not underflow for tiny Gaussians."""
    s2 = scales * scales
    f2 = (sigma * sigma)[:, None]
    return torch.sqrt(s2 + f2), opacities * torch.sqrt(torch.prod(s2 / (s2 + f2), dim=1))
