"""Image resampling shared by dataset preparation and the methods (down() in the 3DSR loss), and labelled tiles for the
figures."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of (..., C, H, W) float images; the paper's down() operator."""
    shape = images.shape
    x = images.reshape(-1, *shape[-3:])
    out = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return out.reshape(*shape[:-2], height, width)


def upsample(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic ×scale upsampling of (N, C, H, W) images, clamped to [0, 1]: the bicubic baseline."""
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def to_float(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> HxWx3 float32 in [0, 1] (a copy: decoded images are read-only)."""
    return torch.from_numpy(np.array(image, copy=True)).float().div_(255)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """HxWx3 float (CPU) -> HxWx3 uint8, clamped to [0, 1] and rounded: the inverse of to_float."""
    return (image.clamp(0, 1) * 255).round().byte().numpy()


def resize_uint8(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """resize() for one HxWx3 uint8 image, rounded back to uint8."""
    x = to_float(image).permute(2, 0, 1)
    y = resize(x, height, width).clamp_(0, 1).mul_(255).round_()
    return y.to(torch.uint8).permute(1, 2, 0).numpy()


def labelled(tile, label: str) -> np.ndarray:
    """The tile (a PIL image) with its label in white on black in the top-left corner (figures and strips)."""
    from PIL import ImageDraw

    d = ImageDraw.Draw(tile)
    d.rectangle((0, 0, 6 * len(label) + 4, 12), fill=(0, 0, 0))
    d.text((2, 1), label, fill=(255, 255, 255))
    return np.asarray(tile)
