"""Colour correction of an SR image against its (upsampled) LR input, as StableSR and the 3DSR code do.

`wavelet`: keep the SR image's high frequencies and take the low frequencies from the reference
(a 5-level à-trous decomposition with a 3×3 binomial kernel dilated 1, 2, 4, 8, 16 pixels).
`adain`: match each channel's mean and standard deviation to the reference's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .names import COLORFIXES


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    pad = F.pad(x, (dilation,) * 4, mode="replicate")
    return F.conv2d(pad, kernel, groups=x.shape[1], dilation=dilation)


def low_frequencies(x: torch.Tensor, levels: int = 5) -> torch.Tensor:
    for i in range(levels):
        x = _blur(x, 2**i)
    return x


def wavelet_fix(content: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    return content - low_frequencies(content, levels) + low_frequencies(reference, levels)


def adain_fix(content: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    cm, cs = content.mean(dim=(2, 3), keepdim=True), content.std(dim=(2, 3), keepdim=True)
    rm, rs = reference.mean(dim=(2, 3), keepdim=True), reference.std(dim=(2, 3), keepdim=True)
    return (content - cm) / (cs + eps) * rs + rm


def color_fix(content: torch.Tensor, reference: torch.Tensor, method: str) -> torch.Tensor:
    """B×3×H×W images in [0, 1] (reference: the bicubic-upsampled LR image, same size) -> clamped to [0, 1]."""
    if method == "none":
        return content
    if method not in COLORFIXES:
        raise ValueError(f"colorfix must be one of {COLORFIXES}, got {method!r}")
    fixed = wavelet_fix(content, reference) if method == "wavelet" else adain_fix(content, reference)
    return fixed.clamp(0, 1)
