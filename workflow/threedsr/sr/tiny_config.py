"""How the offline prior `tiny` is trained (no torch here: settings.py takes params.yaml's sr.tiny defaults from it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .sampler_config import SamplerConfig


@dataclass
class TinyTrainConfig:
    # the recipe of the shipped prior (tiny-v2, docs/sr-models.md): 151 photos, 2750 steps, ~45 min on one CPU core
    iterations: int = 2750  # training steps
    batch_size: int = 16
    patch: int = 24  # LR pixels (HR patches are patch * scale)
    lr: float = 0.0003  # Adam; 2e-3 diverges with this UNet
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    zoom_mode: str = "random"  # pyramid: 4 fixed zooms spanning `zoom`; random: each crop at its own zoom, uniform in `zoom`
    seed: int = 0
    # (the fields above are params.yaml's sr.tiny training keys, with their defaults; the ones below are not)
    sampler_steps: int = SamplerConfig.steps  # the sampling steps whose timesteps training favours (threedsr.steps)
    warmup: int = 100  # learning-rate warm-up steps
    scale: int = 4
    zoom: tuple[float, float] = (0.3, 1.0)  # photos are seen at these fractions of their size
    degrade: float = 0.0  # fraction of pairs whose LR side is degraded (Real-ESRGAN's first order, mild); the rest stay clean
    blur_sigma: tuple[float, float] = (0.2, 1.5)  # degraded pairs: Gaussian blur of the HR patch before downsampling, σ in HR pixels
    noise_sigma: tuple[float, float] = (0.0, 0.02)  # degraded pairs: Gaussian noise on the LR patch, σ in [0, 1] units (0.02 ≈ 5/255)
    jpeg_quality: tuple[int, int] = (60, 95)  # degraded pairs: the LR patch re-encoded as JPEG (PIL) at a quality in this range
    threads: int = 0  # 0: torch's default
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.zoom_mode not in ("pyramid", "random"):
            raise ValueError(f"zoom_mode must be pyramid or random, got {self.zoom_mode!r}")
        if not 0.0 <= self.degrade <= 1.0:
            raise ValueError(f"degrade must be in [0, 1], got {self.degrade}")

    @classmethod
    def from_params(cls, tiny: dict, sampler_steps: int, threads: int = 0) -> "TinyTrainConfig":
        """From params.yaml's sr.tiny block (checked by its schema; its path and photos are not training settings)
        and threedsr.steps."""
        values = {k: v for k, v in tiny.items() if k not in ("path", "photos")}
        values["block_out_channels"] = tuple(tiny.get("block_out_channels", cls.block_out_channels))
        return cls(**values, sampler_steps=sampler_steps, threads=threads)
