"""`tiny`: the offline default prior, a small conditional diffusion SR model in pixel space.

E is a fixed pixel transform: HR pixels in [-1, 1], space-to-depth by the scale (×4 → 48 channels
at the LR resolution), so the latent lives on the LR grid like Stable Diffusion's ×4 upscaler and
the UNet runs on 16× fewer positions than the HR image. D is its exact inverse.

The UNet (diffusers' UNet2DModel) sees √ᾱ_t·x_t and the LR image and predicts the clean latent as
a residual over the bicubic upsampling: x̂0 = E(up(L)) + s·UNet(√ᾱ_t·x_t, L, t), with s the residual's
standard deviation on the training data ("sample" prediction). Its noise schedule is an ordinary
diffusers scheduler stored beside it, so `from_pretrained` gives back exactly what was trained.

tiny_sr.json lists every file's sha256 (`files`), checked on load: a truncated or altered prior is an error naming
the file. The trained default ships in the package (shipped/tiny, `SHIPPED`); train_prior writes others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DataError, ModelUnavailable
from ..imaging import upsample
from ..io import file_hashes
from .base import DiffusionSR, frozen
from .sampling import ViewNoise
from .tiling import tiled

CONFIG_NAME = "tiny_sr.json"
SHIPPED = Path(__file__).parent / "shipped" / "tiny"  # the trained prior the package ships (docs/sr-models.md)
UNHASHED = (CONFIG_NAME, "train_log.csv")  # the files tiny_sr.json's `files` leaves out: itself and train_prior's log


def _remedy(path: Path) -> str:
    return (
        "reinstall threedsr (its package ships this prior)"
        if path.resolve() == SHIPPED.resolve()
        else f"delete {path} and rerun train_prior"
    )


def check_files(path: Path, meta: dict) -> None:
    """Every file tiny_sr.json lists has its sha256 (a prior without the list, written before it, is not checked)."""
    actual = file_hashes(path, skip=UNHASHED) if "files" in meta else {}
    for rel, expected in meta.get("files", {}).items():
        f = path / rel
        got = actual.get(rel, "missing")
        if got != expected:
            raise DataError(
                f"{f}: the tiny SR prior's file is {'missing' if got == 'missing' else 'altered or truncated'} "
                f"(sha256 {got[:16]}, expected {expected[:16]} by {path / CONFIG_NAME}): {_remedy(path)}"
            )


def pixel_encode(hr: torch.Tensor, scale: int) -> torch.Tensor:
    return F.pixel_unshuffle(hr * 2 - 1, scale)


def pixel_decode(z: torch.Tensor, scale: int) -> torch.Tensor:
    return ((F.pixel_shuffle(z, scale) + 1) / 2).clamp(0, 1)


def build_unet(scale: int = 4, block_out_channels=(64, 128, 128), layers_per_block: int = 1):
    from diffusers import UNet2DModel

    c = 3 * scale * scale
    return UNet2DModel(
        in_channels=c + 3,
        out_channels=c,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * len(block_out_channels),
        up_block_types=("UpBlock2D",) * len(block_out_channels),
        norm_num_groups=16,
    )


def build_scheduler(num_train_timesteps: int = 1000):
    from diffusers import DDPMScheduler

    # DDPM's linear betas: the later sampling steps stay noisy enough that predictions lean on the LR
    # condition (close to the regression optimum) rather than on detail hallucinated from x_t.
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", prediction_type="sample", clip_sample=False)


class TinySR(DiffusionSR):
    name = "tiny"
    prediction_type = "sample"

    def __init__(
        self,
        unet,
        scheduler,
        residual_scale: float,
        scale: int = 4,
        device="cpu",
        dtype=torch.float32,
        tile: int = 128,
        tile_overlap: int = 16,
        meta: dict | None = None,
    ):
        self.unet = frozen(unet, device, dtype)
        self.scheduler = scheduler
        self.alphas_cumprod = scheduler.alphas_cumprod.double().cpu()
        self.residual_scale = float(residual_scale)
        self.scale = scale
        self.device = torch.device(device)
        self.dtype = dtype
        self.tile, self.tile_overlap = tile, tile_overlap
        self.meta = meta or {}
        self.multiple = 2 ** (len(unet.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device="cpu", dtype=torch.float32, tile: int = 128, tile_overlap: int = 16
    ) -> TinySR:
        """The prior in `path` (a folder train_prior or save_pretrained wrote); None: the one the package ships."""
        from diffusers import DDPMScheduler, UNet2DModel

        path = Path(path) if path is not None else SHIPPED
        if not (path / CONFIG_NAME).is_file():
            raise ModelUnavailable(
                f"{path}: no trained tiny SR prior here ({CONFIG_NAME} missing); the workflow's train_prior rule writes one "
                "(sr.tiny.path: null uses the prior the package ships)"
            )
        try:
            meta = json.loads((path / CONFIG_NAME).read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path / CONFIG_NAME}: not readable JSON ({e}): {_remedy(path)}") from None
        check_files(path, meta)
        try:
            unet = UNet2DModel.from_pretrained(path / "unet", low_cpu_mem_usage=False)  # small: no `accelerate` (nor its warning)
            scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
        except (OSError, ValueError, RuntimeError, KeyError) as e:  # a truncated safetensors, a cut-off JSON
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(
                f"{path}: the tiny SR prior there is truncated or corrupt ({first}): delete {path} and rerun "
                "(Snakemake's train_prior writes it again)"
            ) from None
        return cls(unet, scheduler, meta["residual_scale"], meta["scale"], device, dtype, tile, tile_overlap, meta)

    def save_pretrained(self, path: str | Path, **meta) -> None:
        path = Path(path)
        self.unet.save_pretrained(path / "unet")
        self.scheduler.save_pretrained(path / "scheduler")
        info = {**self.meta, **meta, "residual_scale": self.residual_scale, "scale": self.scale, "files": file_hashes(path, skip=UNHASHED)}
        (path / CONFIG_NAME).write_text(json.dumps(info, indent=2) + "\n")

    def encode(self, hr: torch.Tensor) -> torch.Tensor:
        return pixel_encode(hr.to(self.device, torch.float32), self.scale)

    def decode(self, z: torch.Tensor, cond=None) -> torch.Tensor:
        return pixel_decode(z.float(), self.scale)

    def condition(self, lr: torch.Tensor, noise: ViewNoise | None = None) -> dict[str, Any]:
        lr = lr.to(self.device, torch.float32)
        return {"lr": lr * 2 - 1, "base": self.encode(upsample(lr, self.scale))}

    def residual(self, x_t: torch.Tensor, t: torch.Tensor | int, lr_signed: torch.Tensor) -> torch.Tensor:
        """The UNet's scaled residual (differentiable; training calls this directly).

        x_t enters scaled by √ᾱ_t: near t = T it is almost pure noise, and unscaled its 48 noise
        channels drown the 3 LR channels the prediction must come from there.
        """
        if not torch.is_tensor(t):
            t = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        c_in = self.alphas_cumprod.to(x_t.device, torch.float32)[t.long()].sqrt().view(-1, 1, 1, 1)
        inp = torch.cat([x_t * c_in, lr_signed], dim=1).to(self.unet.dtype)
        return self.unet(inp, t).sample.float() * self.residual_scale

    def model_output(self, x_t: torch.Tensor, t: int, cond: dict[str, Any]) -> torch.Tensor:
        res = tiled(
            lambda x, l: self.residual(x, t, l),
            [x_t.to(self.device, torch.float32), cond["lr"]],
            [1, 1],
            out_scale=1,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.multiple,
        )
        return cond["base"] + res
