"""Diffusion sampling arithmetic shared by every SR model and by the 3DSR loop.

Everything here works on latents of any shape and takes ᾱ (alphas_cumprod) values as floats, so
the same update serves one view or a batch, any backend, and an x0 that comes from outside
(3DSR's re-encoded render ẍ0 in place of the model's x̂0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from .names import PREDICTION_TYPES
from .sampler_config import SamplerConfig


def respaced_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down to 0, evenly spaced (StableSR-Turbo's 999, 666, 333, 0 for 4 of 1000).

    One step is t = T-1 alone: a single prediction from the start latent.
    """
    if steps > num_train_timesteps:
        raise ConfigError(f"threedsr.steps ({steps}) is more than the model's {num_train_timesteps} timesteps: steps would repeat")
    if steps == 1:
        return [num_train_timesteps - 1]
    return [int(round(t)) for t in np.linspace(num_train_timesteps - 1, 0, steps)]


def alpha_bar(alphas_cumprod: torch.Tensor, t: int | None) -> float:
    """ᾱ_t; t=None is the clean end of the chain (ᾱ = 1)."""
    return 1.0 if t is None else float(alphas_cumprod[t])


def to_eps_x0(output: torch.Tensor, x_t: torch.Tensor, abar: float, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂0) from a model output in its own parameterization (x_t = √ᾱ x0 + √(1−ᾱ) ε)."""
    a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
    if prediction_type == "epsilon":
        return output, (x_t - s * output) / a
    if prediction_type == "v_prediction":
        return s * x_t + a * output, a * x_t - s * output
    if prediction_type == "sample":
        # ᾱ < 1 at every training timestep, so s > 0.
        return (x_t - a * output) / s, output
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected one of {PREDICTION_TYPES}")


def noised(x0: torch.Tensor, abar: float, noise: torch.Tensor) -> torch.Tensor:
    """q(x_t | x0): √ᾱ x0 + √(1−ᾱ) z."""
    return math.sqrt(abar) * x0 + math.sqrt(1.0 - abar) * noise


def ddim_sigma(abar_t: float, abar_prev: float, eta: float) -> float:
    return eta * math.sqrt((1.0 - abar_prev) / (1.0 - abar_t)) * math.sqrt(max(0.0, 1.0 - abar_t / abar_prev))


def ddim_step(x0: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, eta: float, noise: torch.Tensor | None) -> torch.Tensor:
    """The paper's equation 3: x_{t-1} = √ᾱ_{t-1} x0 + √(1−ᾱ_{t-1}−σ²) ε̂ + σ z.

    ε̂ is the model's own noise prediction at x_t; x0 may come from outside (ẍ0 = E(render)).
    """
    sigma = ddim_sigma(abar_t, abar_prev, eta)
    out = math.sqrt(abar_prev) * x0 + math.sqrt(max(0.0, 1.0 - abar_prev - sigma**2)) * eps
    if sigma > 0:
        out = out + sigma * noise
    return out


def ddpm_posterior_step(x0: torch.Tensor, x_t: torch.Tensor, abar_t: float, abar_prev: float, noise: torch.Tensor | None) -> torch.Tensor:
    """Sample q(x_{t-1} | x_t, x0) for a (possibly respaced) jump t -> t-1 (what the official 3DSR code runs).

    mean = c1·x0 + c2·x_t with c1 = √ᾱ_{t-1} β/(1−ᾱ_t), c2 = √α (1−ᾱ_{t-1})/(1−ᾱ_t), α = ᾱ_t/ᾱ_{t-1}, β = 1−α;
    variance = β (1−ᾱ_{t-1})/(1−ᾱ_t) (diffusers' "fixed_small").
    """
    alpha = abar_t / abar_prev
    beta = 1.0 - alpha
    c1 = math.sqrt(abar_prev) * beta / (1.0 - abar_t)
    c2 = math.sqrt(alpha) * (1.0 - abar_prev) / (1.0 - abar_t)
    var = beta * (1.0 - abar_prev) / (1.0 - abar_t)
    out = c1 * x0 + c2 * x_t
    if var > 0:
        out = out + math.sqrt(var) * noise
    return out


def update(
    cfg: SamplerConfig, x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, noise: torch.Tensor | None
) -> torch.Tensor:
    """x_t -> x_{t-1} with the configured rule; at the end of the chain (ᾱ_prev = 1) both return x0."""
    if cfg.update == "ddim":
        return ddim_step(x0, eps, abar_t, abar_prev, cfg.eta, noise)
    return ddpm_posterior_step(x0, x_t, abar_t, abar_prev, noise)


class ViewNoise:
    """One seeded CPU generator per view, so a view's noise does not depend on batching or device."""

    def __init__(self, seeds: list[int], generators: list[torch.Generator] | None = None):
        self.generators = generators if generators is not None else [torch.Generator().manual_seed(int(s)) for s in seeds]

    def subset(self, indices: list[int]) -> "ViewNoise":
        """The same generators for some of the views (a batch): drawing from it advances them."""
        return ViewNoise([], [self.generators[i] for i in indices])

    def __call__(self, shape: tuple[int, ...], device, dtype=torch.float32) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in self.generators]).to(device=device, dtype=dtype)

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: list[torch.Tensor]) -> None:
        for g, s in zip(self.generators, states, strict=True):
            g.set_state(s)


def view_seeds(seed: int, names: list[str]) -> list[int]:
    """A stable per-view seed from the base seed and the view's name (independent of order and batching)."""
    import zlib

    return [(seed * 1_000_003 + zlib.crc32(n.encode())) % (2**63) for n in names]
