"""The interface every SR model implements, and the generic sampler built on it.

`SRModel.super_resolve` is all that per-image SR needs. Diffusion models (`DiffusionSR`) also
expose the pieces the 3DSR loop drives one step at a time: E (`encode`), D (`decode`), ᾱ_t,
the respaced timesteps, the prediction at (x_t, t, condition) as both ε̂ and x̂0, the start
latent, and the update x_t -> x_{t-1} with an x0 from outside (`sampling.update`).

Images are B×3×H×W float in [0, 1]; LR images are ×`scale` smaller than HR ones.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any

import torch

from ..imaging import upsample
from . import sampling
from .sampling import SamplerConfig, ViewNoise


def auto_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere, unless params.yaml names one."""
    if dtype == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def frozen(module: torch.nn.Module, device, dtype: torch.dtype) -> torch.nn.Module:
    """A network for inference on `device` in `dtype`: eval mode, no gradients.

    Casts only when needed: diffusers warns about casting a loaded model with .to(dtype).
    """
    if any(p.dtype != dtype for p in module.parameters() if p.is_floating_point()):
        module = module.to(dtype=dtype)
    return module.to(device).eval().requires_grad_(False)


def _setting(value) -> str:
    return str(value) if isinstance(value, (torch.device, torch.dtype)) else type(value).__qualname__


class SRModel(ABC):
    """Maps LR images to ×`scale` images."""

    name: str = "sr"
    scale: int = 4
    is_diffusion: bool = False
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def super_resolve(self, lr: torch.Tensor, sampler: SamplerConfig, seeds: list[int]) -> torch.Tensor:
        """B LR images -> B SR images; `seeds` (one per image) make stochastic models reproducible."""

    def fingerprint(self) -> str:
        """sha256 of what this model computes with: every network's weights, every tensor and setting it holds, and its
        class; what a job resuming from images the model made earlier checks (partial.PartialImages, 3DSR's state.pt)."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(type(self).__qualname__.encode())
            for name, value in sorted(vars(self).items()):
                h.update(name.encode())
                if isinstance(value, torch.nn.Module):
                    for key, t in value.state_dict().items():
                        h.update(key.encode() + str((t.dtype, tuple(t.shape))).encode())
                        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
                elif isinstance(value, torch.Tensor):
                    h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
                elif hasattr(value, "config"):  # a diffusers scheduler
                    h.update(json.dumps(dict(value.config), sort_keys=True, default=str).encode())
                else:  # settings; an object's repr may hold its address, so only its type counts
                    h.update(json.dumps(value, sort_keys=True, default=_setting).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class DiffusionSR(SRModel):
    """A conditional diffusion SR model in some latent space (pixels count as one)."""

    is_diffusion = True
    prediction_type: str
    alphas_cumprod: torch.Tensor  # float64, CPU, one per training timestep

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    def timesteps(self, steps: int) -> list[int]:
        return sampling.respaced_timesteps(self.num_train_timesteps, steps)

    def abar(self, t: int | None) -> float:
        return sampling.alpha_bar(self.alphas_cumprod, t)

    @abstractmethod
    def encode(self, hr: torch.Tensor) -> torch.Tensor:
        """E: HR images -> latents."""

    @abstractmethod
    def decode(self, z: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """D: latents -> HR images in [0, 1]; `cond` (the batch's `condition`) for decoders that read the LR image."""

    @abstractmethod
    def condition(self, lr: torch.Tensor, noise: ViewNoise) -> Any:
        """What the noise predictor is conditioned on, computed once per batch of LR images."""

    @abstractmethod
    def model_output(self, x_t: torch.Tensor, t: int, cond: Any) -> torch.Tensor:
        """The network's raw output at (x_t, t) in its own parameterization (`prediction_type`)."""

    def predict(self, x_t: torch.Tensor, t: int, cond: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂0) at (x_t, t): equation 1 of the paper, whatever the parameterization."""
        out = self.model_output(x_t, t, cond).float()
        return sampling.to_eps_x0(out, x_t.float(), self.abar(t), self.prediction_type)

    def start_latent(self, lr: torch.Tensor, t0: int, init: str, noise: ViewNoise) -> torch.Tensor:
        """x_T: the LR image (bicubic-upsampled, encoded) noised to t0, or pure noise."""
        z_lr = self.encode(upsample(lr, self.scale))
        z = noise(tuple(z_lr.shape[1:]), z_lr.device)
        if init == "noise":
            return z
        return sampling.noised(z_lr, self.abar(t0), z)

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor, sampler: SamplerConfig, seeds: list[int]) -> torch.Tensor:
        x, cond = self.sample(lr, sampler, seeds)
        return self.decode(x, cond)

    @torch.no_grad()
    def sample(self, lr: torch.Tensor, sampler: SamplerConfig, seeds: list[int]) -> tuple[torch.Tensor, Any]:
        """The plain sampler (no 3D in the loop): the final latent x0 for each LR image, and the condition."""
        noise = ViewNoise(seeds)
        lr = lr.to(self.device)
        cond = self.condition(lr, noise)
        ts = self.timesteps(sampler.steps)
        x = self.start_latent(lr, ts[0], sampler.init, noise)
        for i, t in enumerate(ts):
            eps, x0 = self.predict(x, t, cond)
            prev = ts[i + 1] if i + 1 < len(ts) else None
            z = noise(tuple(x.shape[1:]), x.device)  # drawn every step so η does not shift later noise
            x = sampling.update(sampler, x, x0, eps, self.abar(t), self.abar(prev), z) if prev is not None else x0
        return x, cond
