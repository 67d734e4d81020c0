"""Image quality: PSNR, SSIM (pytorch-msssim, 11x11 Gaussian window, sigma 1.5) and LPIPS-Alex; the
loaders of the NIQE pristine model (niqe.py) and the FID Inception (fid.py). docs/metrics.md says
what each column is and how it matches the official evaluation.

LPIPS is a small module of our own: torchvision's ImageNet AlexNet `features` (weights from a
file: `metrics.lpips_backbone` in params.yaml, else torchvision's hub cache
`alexnet-owt-7be5be79.pth`, downloaded there when online) and the v0.1 linear heads that ship
inside the torchmetrics wheel. Without weights a metric is reported as missing (NaN) with one
warning naming the file (weights.py), never made up.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from pytorch_msssim import ssim as _ssim

from ..errors import DataError
from .weights import ALEXNET, INCEPTION, NIQE_MODEL, locate

log = logging.getLogger(__name__)

TORCHVISION_ALEXNET = ALEXNET.file


def _nchw(img: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) in [0, 1] -> (N, 3, H, W) float32."""
    x = img if img.dim() == 4 else img[None]
    return x.permute(0, 3, 1, 2).float()


def psnr(img: torch.Tensor, gt: torch.Tensor) -> float:
    mse = torch.mean((img.double() - gt.double()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def ssim(img: torch.Tensor, gt: torch.Tensor) -> float:
    return float(_ssim(_nchw(img), _nchw(gt), data_range=1.0, size_average=True, win_size=11, win_sigma=1.5))


def default_backbone_path() -> Path:
    return ALEXNET.cached()


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone; inputs (N, 3, H, W) in [0, 1]."""

    # torchvision AlexNet.features: the ReLU outputs LPIPS compares, as slices of the layer list
    SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))

    def __init__(self, backbone_state: dict):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )
        state = {k.removeprefix("features."): v for k, v in backbone_state.items() if k.startswith("features.")}
        self.features.load_state_dict(state)
        heads = torch.load(
            importlib.resources.files("torchmetrics").joinpath("functional/image/lpips_models/alex.pth"),
            map_location="cpu",
            weights_only=True,
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 192, 384, 256, 256))
        for i, head in enumerate(self.heads):
            head.weight.data.copy_(heads[f"lin{i}.model.1.weight"])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.eval().requires_grad_(False)

    def _taps(self, x):
        x = ((x * 2 - 1) - self.shift) / self.scale
        out = []
        for a, b in self.SLICES:
            for layer in self.features[a:b]:
                x = layer(x)
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(head((a - b) ** 2).mean(dim=(2, 3)) for head, a, b in zip(self.heads, self._taps(x), self._taps(y)))[:, 0]


def load_lpips(backbone: str | Path | None = None, fetch: bool = True) -> LPIPS | None:
    """LPIPS-Alex from `backbone` (torchvision's AlexNet or its features), else the hub cache, else downloaded
    when `fetch`; None (with one warning) when none of them is there."""
    path = locate(ALEXNET, backbone, fetch)
    if path is None:
        return None
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return LPIPS(state)
    except (RuntimeError, KeyError, OSError, EOFError, ValueError, AttributeError, pickle.UnpicklingError) as e:
        raise DataError(f"{path}: not AlexNet weights usable for LPIPS ({type(e).__name__}: {e})") from None


def load_niqe(model: str | Path | None = None, fetch: bool = True):
    """NIQE's pristine model (niqe.NIQEModel) from `model`, the hub cache or a download; None with one warning."""
    from .niqe import load_niqe_model

    path = locate(NIQE_MODEL, model, fetch)
    return None if path is None else load_niqe_model(path)


def load_fid_inception(weights: str | Path | None = None, fetch: bool = True):
    """FID's Inception-v3 (fid.FIDInceptionV3) from `weights`, the hub cache or a download; None with one warning."""
    from .fid import load_inception

    path = locate(INCEPTION, weights, fetch)
    return None if path is None else load_inception(path)


def lpips_distance(lpips: LPIPS, img: torch.Tensor, gt: torch.Tensor) -> float:
    """LPIPS between two HxWx3 images in [0, 1]."""
    with torch.no_grad():
        return float(lpips(_nchw(img), _nchw(gt))[0])


def image_metrics(img: torch.Tensor, gt: torch.Tensor, lpips: LPIPS | None) -> dict[str, float]:
    """PSNR, SSIM and LPIPS (NaN without its model) of one image, for the SR benchmark and 3DSR's per-step scores; the
    tables' per-view scores are metrics.registry.METRICS'."""
    img, gt = img.clamp(0, 1), gt.clamp(0, 1)
    lp = lpips_distance(lpips, img, gt) if lpips is not None else float("nan")
    return {"psnr": psnr(img, gt), "ssim": ssim(img, gt), "lpips": lp}
