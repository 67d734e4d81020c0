"""Build the SR model params.yaml names (`sr.model`) with its options."""

from __future__ import annotations

import torch

from .base import SRModel, auto_dtype
from .names import MODELS, VIDEO_MODELS


def load_sr_model(name: str, options: dict, device: torch.device, dtype: str = "auto") -> SRModel:
    """The SR model `name`, on `device` (fp16 on CUDA unless `dtype` says otherwise)."""
    dt = auto_dtype(device, dtype)
    tile = {k: options[k] for k in ("tile", "tile_overlap") if k in options}
    if name == "tiny":
        from .tiny import TinySR

        return TinySR.from_pretrained(options["path"], device=device, dtype=dt, **tile)
    if name == "sd-x4-upscaler":
        from .sd_upscaler import SDX4Upscaler

        extra = {k: options[k] for k in ("noise_level", "prompt") if k in options}
        return SDX4Upscaler.from_pretrained(options.get("path") or "stabilityai/stable-diffusion-x4-upscaler", device=device, dtype=dt, **tile, **extra)
    if name == "stablesr-turbo":
        from .stablesr import StableSRTurbo

        extra = {k: options[k] for k in ("cfw_weight", "tile", "tile_overlap", "colorfix") if k in options}
        return StableSRTurbo.from_pretrained(options.get("path"), device=device, dtype=dt, **extra)
    if name == "realesrgan":
        from .realesrgan import RealESRGAN

        return RealESRGAN.from_pretrained(options.get("path"), device=device, dtype=dt, **tile)
    if name == "realbasicvsr":
        from .realbasicvsr import RealBasicVSR

        return RealBasicVSR.from_pretrained(options.get("path"), device=device, dtype=dt, max_seq_len=options.get("max_seq_len", 100))
    raise ValueError(f"unknown SR model {name!r}; known: {', '.join(MODELS + VIDEO_MODELS)}")
