"""StableSR-Turbo (Wang et al., IJCV 2024; the SR model 3DSR's paper uses) as a `DiffusionSR`.

A latent diffusion model on SD 2.1-base's latent grid (8 HR pixels per cell): the LR image is
bicubic-upsampled ×4 and encoded; that clean latent feeds the time-aware encoder, whose features
steer the SFT UNet (ε-prediction, cross-attending to the empty prompt's embedding). The CFW decoder
fuses the upsampled LR image's encoder features into D (weight `cfw_weight`, official 0.5).

Sampling as the official 4-step script (and 3DSR's code): t = 999, 666, 333, 0 on SD's schedule, x_T
= the LR latent noised to 999, the DDPM posterior between steps (`threedsr.update: ddpm_posterior`),
no clipping, no guidance; the UNet and encoder run on 64-cell latent tiles overlapping by 32,
their ε blended with Gaussian weights. Per-image SR ends with the wavelet colour fix (`colorfix`).

Deviations, on purpose: latents are the VAE posterior's mean (the official code draws a sample,
whose spread is negligible for SD's VAE); HR sizes not divisible by 8 are reflect-padded to the next
multiple of 8 (official: 32) and cropped back; images whose upsampled short side is under 512 px
are not enlarged to 512 first (the official script does; the pipeline fixes the HR size).

Weights: `threedsr convert-stablesr` (rule `convert_stablesr`) turns the released checkpoints into
the folder `from_pretrained` reads (`stablesr_convert`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ModelUnavailable, ThreeDSRError
from ..imaging import upsample
from . import tiling
from .base import DiffusionSR, auto_dtype, frozen
from .colorfix import color_fix
from .names import STABLESR_WEIGHTS_HINT
from .sampling import SamplerConfig, ViewNoise

VAE_TILE, VAE_TILE_OVERLAP = 96, 16  # latent cells (768 / 128 px): the VAE's memory, not the method


@dataclass
class StableSRCondition:
    """What one batch of LR images conditions on."""

    z_lr: torch.Tensor  # B×4×h×w, the clean latent of the bicubic-upsampled LR image (float32)
    lr_up: torch.Tensor  # B×3×H×W, that upsampled image in [0, 1], padded to the latent grid (CFW's input)
    hr_size: tuple[int, int]  # the HR size before padding


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    ph, pw = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class StableSRTurbo(DiffusionSR):
    name = "stablesr-turbo"
    scale = 4
    prediction_type = "epsilon"

    def __init__(
        self,
        unet,
        encoder,
        vae,
        scheduler,
        prompt_embeds: torch.Tensor,
        device="cpu",
        dtype=torch.float32,
        cfw_weight: float = 0.5,
        tile: int = 64,
        tile_overlap: int = 32,
        colorfix: str = "wavelet",
        meta: dict | None = None,
    ):
        if not 0 <= tile_overlap < tile:
            raise ValueError(f"tile overlap must be in [0, tile), got overlap={tile_overlap}, tile={tile}")
        if scheduler.config.prediction_type != "epsilon":
            raise ValueError(f"StableSR-Turbo predicts ε; this scheduler says {scheduler.config.prediction_type}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.vae_dtype = torch.float32 if dtype == torch.float16 else dtype  # SD's VAE overflows in fp16
        self.unet = frozen(unet, self.device, dtype)
        self.encoder = frozen(encoder, self.device, dtype)
        self.vae = frozen(vae, self.device, self.vae_dtype)
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to("cpu", torch.float64).clone()
        self.prompt_embeds = prompt_embeds.detach().to(self.device, dtype).reshape(1, *prompt_embeds.shape[-2:])
        self.cfw_weight = float(cfw_weight)
        self.tile, self.tile_overlap = int(tile), int(tile_overlap)
        self.colorfix = colorfix
        vae_cfg = vae.vae.config
        self.vae_factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
        self.scaling_factor = float(vae_cfg.scaling_factor)
        self.unet_multiple = 2 ** (len(unet.unet.config.down_block_types) - 1)
        self.meta = {
            **(meta or {}),
            "cfw_weight": self.cfw_weight,
            "tile": self.tile,
            "tile_overlap": self.tile_overlap,
            "colorfix": colorfix,
        }

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None, device="cpu", dtype: torch.dtype | str = torch.float32, **options
    ) -> StableSRTurbo:
        """Load a folder written by `stablesr_convert.convert`."""
        from diffusers import DDPMScheduler
        from safetensors.torch import load_file

        from .stablesr_nets import CFWAutoencoder, SFTUNet, TimeAwareEncoder

        if isinstance(dtype, str):
            dtype = auto_dtype(torch.device(device), dtype)
        if not path:
            raise ModelUnavailable(f"StableSR-Turbo has no converted weights; {STABLESR_WEIGHTS_HINT}")
        folder = Path(path)
        parts = ["unet", "structure_encoder", "vae", "scheduler", "prompt_embeds.safetensors", "stablesr.json"]
        missing = [p for p in parts if not (folder / p).exists()]
        if missing:
            raise ModelUnavailable(
                f"{folder}: not a converted StableSR-Turbo folder (missing {', '.join(missing)}); "
                f"run `threedsr convert-stablesr` (the convert_stablesr rule) after you {STABLESR_WEIGHTS_HINT}"
            )
        try:
            unet = SFTUNet.from_pretrained(folder / "unet", torch_dtype=dtype, low_cpu_mem_usage=False)
            encoder = TimeAwareEncoder.from_pretrained(folder / "structure_encoder", torch_dtype=dtype, low_cpu_mem_usage=False)
            vae = CFWAutoencoder.from_pretrained(
                folder / "vae", torch_dtype=torch.float32 if dtype == torch.float16 else dtype, low_cpu_mem_usage=False
            )
            scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
            prompt = load_file(str(folder / "prompt_embeds.safetensors"))["prompt_embeds"]
            meta = json.loads((folder / "stablesr.json").read_text())
        except Exception as e:
            raise ThreeDSRError(
                f"{folder}: cannot load the converted StableSR-Turbo ({type(e).__name__}: {e}); delete it and convert again"
            ) from e
        known = {k: options[k] for k in ("cfw_weight", "tile", "tile_overlap", "colorfix") if k in options}
        return cls(unet, encoder, vae, scheduler, prompt, device=device, dtype=dtype, meta={"sources": meta.get("sources")}, **known)

    # -- E and D --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, hr: torch.Tensor) -> torch.Tensor:
        """HR images in [0, 1] -> latents × scaling factor (float32), one cell per 8×8 pixels (padded up)."""
        f = self.vae_factor

        def fn(x):
            return self.vae.encode(x.to(self.vae_dtype) * 2 - 1)[0].float() * self.scaling_factor

        x = _pad_to(hr.to(self.device), f)
        return tiling.tiled(fn, [x], [f], out_scale=1, tile=VAE_TILE, overlap=VAE_TILE_OVERLAP)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, cond: StableSRCondition | None = None) -> torch.Tensor:
        """Latents -> HR images in [0, 1]; with the condition, CFW fuses the LR image in and the padding is cropped."""
        f = self.vae_factor
        w = self.cfw_weight if cond is not None else 0.0

        def fn(zt, lr_up):
            # the LR features are recomputed per call: at paper size they are ~1 GB per view, too much
            # to keep in every batch's condition for the whole 3DSR run
            enc = self.vae.encode(lr_up.to(self.vae_dtype) * 2 - 1)[1] if w else None
            img = self.vae.decode(zt.to(self.vae_dtype) / self.scaling_factor, enc, w).float()
            return (img + 1) / 2

        z = z.to(self.device)
        lr_up = cond.lr_up if cond is not None else torch.zeros(z.shape[0], 3, z.shape[-2] * f, z.shape[-1] * f, device=self.device)
        out = tiling.tiled(fn, [z, lr_up], [1, f], out_scale=f, tile=VAE_TILE, overlap=VAE_TILE_OVERLAP)
        if cond is not None:
            out = out[..., : cond.hr_size[0], : cond.hr_size[1]]
        return out.clamp(0, 1)

    # -- the noise predictor --------------------------------------------------------------------

    @torch.no_grad()
    def condition(self, lr: torch.Tensor, noise: ViewNoise | None = None) -> StableSRCondition:
        up = upsample(lr.to(self.device, torch.float32), self.scale)
        padded = _pad_to(up, self.vae_factor)
        return StableSRCondition(z_lr=self.encode(padded), lr_up=padded, hr_size=tuple(up.shape[-2:]))

    @torch.no_grad()
    def model_output(self, x_t: torch.Tensor, t: int, cond: StableSRCondition) -> torch.Tensor:
        """ε̂ at (x_t, t), float32: encoder + SFT UNet per 64-cell tile, tiles blended with Gaussian weights."""
        if x_t.shape != cond.z_lr.shape:
            raise ValueError(f"latents {tuple(x_t.shape)} do not match the condition's {tuple(cond.z_lr.shape)}")

        def fn(x, z_lr):
            ts = torch.full((x.shape[0],), int(t), device=self.device, dtype=torch.long)
            features = self.encoder(z_lr.to(self.dtype), ts)
            ctx = self.prompt_embeds.expand(x.shape[0], -1, -1)
            return self.unet(x.to(self.dtype), ts, ctx, features).float()

        return tiling.tiled(
            fn,
            [x_t.to(self.device), cond.z_lr],
            [1, 1],
            out_scale=1,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.unet_multiple,
            blend="gaussian",
        )

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor, sampler: SamplerConfig, seeds: list[int]) -> torch.Tensor:
        """The plain sampler's D(x0), colour-fixed against the bicubic LR as the official script does."""
        out = super().super_resolve(lr, sampler, seeds)
        return color_fix(out, upsample(lr.to(out.device, torch.float32), self.scale), self.colorfix)
