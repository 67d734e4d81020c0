"""Train the `tiny` prior on natural photographs (and optionally a scene's own LR views).

Training pairs are made the way the pipeline makes its LR/HR views: an HR patch from a photo
(seen at a random zoom, antialiased) and its antialiased bicubic ×1/scale downsampling as LR; a
fraction `degrade` of the pairs instead get a mildly degraded LR (blur before the downsampling,
noise, JPEG: Real-ESRGAN's first-order model), so the prior also copes with imperfect LR views.
Timesteps: 40 % at the first sampling timestep (the one-pass prediction from the start latent, a
pure SR regression and the hardest to learn), 30 % on the rest of the respaced grid the sampler
visits, 30 % uniform (so other step counts still work). The UNet's last layer starts at zero, so
training starts from the bicubic upsampling and only learns what improves on it.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from ..imaging import resize, to_float, to_uint8, upsample
from ..io import atomic_dir
from ..progress import progress
from .sampling import respaced_timesteps
from .tiny import TinySR, build_scheduler, build_unet, pixel_encode
from .tiny_config import TinyTrainConfig

log = logging.getLogger(__name__)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (N, C, H, W) images, σ in pixels, edges reflected."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """One (C, H, W) image in [0, 1] encoded as JPEG by PIL at `quality` and decoded."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x.permute(1, 2, 0))).save(buf, format="JPEG", quality=int(quality))
    with Image.open(buf) as im:
        return to_float(np.asarray(im.convert("RGB"))).permute(2, 0, 1)


def _uniform(bounds, g: torch.Generator) -> float:
    lo, hi = bounds
    return float(lo + (hi - lo) * torch.rand(1, generator=g))


def degrade(hr: torch.Tensor, size: int, cfg: TinyTrainConfig, g: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN's first-order degradation, mild, of one (C, H, W) HR patch: Gaussian blur (σ from cfg.blur_sigma),
    the pipeline's antialiased bicubic downsampling to size×size, Gaussian noise (σ from cfg.noise_sigma), JPEG at a
    quality from cfg.jpeg_quality. Returns the LR patch in [0, 1]."""
    x = gaussian_blur(hr[None], _uniform(cfg.blur_sigma, g))
    x = resize(x, size, size)[0]
    x = (x + _uniform(cfg.noise_sigma, g) * torch.randn(x.shape, generator=g)).clamp(0, 1)
    q = int(torch.randint(int(cfg.jpeg_quality[0]), int(cfg.jpeg_quality[1]) + 1, (1,), generator=g))
    return jpeg(x, q)


class PatchSampler:
    """Random HR patches (zooms, flips, 90° turns) from the training images, and their LR (clean or degraded).

    zoom_mode "pyramid": crops of 4 fixed zooms of each image; "random": each crop of a region of its own size
    (patch / zoom, zoom uniform in cfg.zoom), resized to the patch (the images stay uint8 in memory)."""

    def __init__(self, images: list[np.ndarray], cfg: TinyTrainConfig, generator: torch.Generator):
        self.cfg, self.g = cfg, generator
        hr = cfg.patch * cfg.scale
        self.pyramid: list[torch.Tensor] = []
        for im in images:
            if cfg.zoom_mode == "random":
                if min(im.shape[:2]) >= hr:
                    self.pyramid.append(torch.from_numpy(np.array(im, copy=True)).permute(2, 0, 1))
                continue
            x = to_float(im).permute(2, 0, 1)
            for zoom in np.linspace(cfg.zoom[0], cfg.zoom[1], 4):
                h, w = int(x.shape[1] * zoom), int(x.shape[2] * zoom)
                if min(h, w) >= hr:
                    self.pyramid.append(resize(x, h, w).clamp(0, 1) if zoom < 1 else x)
        if not self.pyramid:
            raise ValueError(f"no training image is at least {hr} pixels on each side")
        areas = torch.tensor([p.shape[1] * p.shape[2] for p in self.pyramid], dtype=torch.float64)
        self.weights = areas / areas.sum()

    def _crop(self, im: torch.Tensor, hr_size: int) -> torch.Tensor:
        g = self.g
        if self.cfg.zoom_mode == "pyramid":
            size = hr_size
        else:
            zoom = max(_uniform(self.cfg.zoom, g), hr_size / min(im.shape[1:]))
            size = min(min(im.shape[1:]), max(hr_size, int(round(hr_size / zoom))))
        y = int(torch.randint(0, im.shape[1] - size + 1, (1,), generator=g))
        x = int(torch.randint(0, im.shape[2] - size + 1, (1,), generator=g))
        p = im[:, y : y + size, x : x + size]
        if self.cfg.zoom_mode == "random":
            p = p.float() / 255
            if size != hr_size:
                p = resize(p, hr_size, hr_size).clamp(0, 1)
        return p

    def __call__(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr_size, g = self.cfg.patch * self.cfg.scale, self.g
        picks = torch.multinomial(self.weights, n, replacement=True, generator=g)
        out = []
        for i in picks.tolist():
            p = self._crop(self.pyramid[i], hr_size)
            if torch.rand(1, generator=g) < 0.5:
                p = p.flip(2)
            p = torch.rot90(p, int(torch.randint(0, 4, (1,), generator=g)), dims=(1, 2))
            out.append(p)
        hr = torch.stack(out)
        lr = resize(hr, self.cfg.patch, self.cfg.patch).clamp(0, 1)
        if self.cfg.degrade > 0:  # (no draws otherwise: clean-only training keeps its random stream)
            for k in range(n):
                if torch.rand(1, generator=g) < self.cfg.degrade:
                    lr[k] = degrade(hr[k], self.cfg.patch, self.cfg, g)
        return hr, lr


def residual_std(sampler: PatchSampler, scale: int, n: int = 256) -> float:
    hr, lr = sampler(n)
    return float((pixel_encode(hr, scale) - pixel_encode(upsample(lr, scale), scale)).std())


def train(images: dict[str, np.ndarray], cfg: TinyTrainConfig, out_dir: Path, device="cpu") -> dict:
    """Train on {source id: HxWx3 uint8 image} and save_pretrained into out_dir (atomically); returns a summary.

    The source ids are recorded, so a scene textured with one of them can refuse the prior.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    patches = PatchSampler(list(images.values()), cfg, g)
    scheduler = build_scheduler()
    model = TinySR(
        build_unet(cfg.scale, cfg.block_out_channels, cfg.layers_per_block), scheduler, residual_std(patches, cfg.scale), cfg.scale, device
    )
    torch.nn.init.zeros_(model.unet.conv_out.weight)
    torch.nn.init.zeros_(model.unet.conv_out.bias)
    model.unet.train().requires_grad_(True)
    abar = model.alphas_cumprod.float()
    grid = torch.tensor(respaced_timesteps(len(abar), cfg.sampler_steps))
    opt = torch.optim.AdamW(model.unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.iterations) / cfg.iterations))
    )
    rows, start = [], time.perf_counter()
    bar = progress(range(cfg.iterations), desc="train tiny prior", unit="step", mininterval=5)
    for step in bar:
        hr, lr = patches(cfg.batch_size)
        hr, lr = hr.to(device), lr.to(device)
        x0 = pixel_encode(hr, cfg.scale)
        base = pixel_encode(upsample(lr, cfg.scale), cfg.scale)
        n = cfg.batch_size
        u = torch.rand(n, generator=g)
        t = torch.where(
            u < 0.4,
            grid[0],
            torch.where(u < 0.7, grid[torch.randint(0, len(grid), (n,), generator=g)], torch.randint(0, len(abar), (n,), generator=g)),
        )
        z = torch.randn(x0.shape, generator=g).to(device)
        a = abar[t].view(-1, 1, 1, 1).to(device)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * z
        pred = base + model.residual(x_t, t.to(device), lr * 2 - 1)
        loss = (pred - x0).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.unet.parameters(), 1.0)
        opt.step()
        sched.step()
        rows.append({"step": step + 1, "loss": loss.item(), "base_l1": (base - x0).abs().mean().item(), "lr": sched.get_last_lr()[0]})
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", bicubic=f"{rows[-1]['base_l1']:.4f}", refresh=False)
    seconds = time.perf_counter() - start
    model.unet.eval().requires_grad_(False)
    summary = {
        "train_seconds": round(seconds, 1),
        "parameters": sum(p.numel() for p in model.unet.parameters()),
        "photos": sorted(images),
        "config": asdict(cfg),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, training=summary)
        pd.DataFrame(rows).to_csv(tmp / "train_log.csv", index=False)
    log.info("tiny prior: %d steps in %.0f s, %d parameters -> %s", cfg.iterations, seconds, summary["parameters"], out_dir)
    return summary
