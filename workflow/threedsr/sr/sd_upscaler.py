"""The Stable Diffusion ×4 upscaler (stabilityai/stable-diffusion-x4-upscaler) as a `DiffusionSR`.

The upscaler is a latent diffusion model whose latent grid has the LR image's resolution: the UNet
sees the 4-channel latent x_t concatenated with the (slightly noised) LR image in [-1, 1], is told
the LR noise level as a class label, and cross-attends to a text embedding (the empty prompt by
default, computed once at load). Its VAE maps a latent cell to 4×4 HR pixels.

Everything runs tiled over the latent grid (`tiling.tiled`), so memory stays bounded on any image
size; the UNet's inputs are padded to a multiple of its total downsampling so odd sizes work.

The weights come from a local diffusers folder (`sr.sd_x4_upscaler.path` in params.yaml) or the
Hugging Face hub id, which is only fetched when the hub is reachable and HF_HUB_OFFLINE is unset;
otherwise `ModelUnavailable` says how to get them.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelUnavailable, ThreeDSRError
from . import tiling
from .base import DiffusionSR, auto_dtype, frozen
from .sampling import ViewNoise

log = logging.getLogger(__name__)

HUB_ID = "stabilityai/stable-diffusion-x4-upscaler"
PARAMS_KEY = "sr.sd_x4_upscaler.path"

# What the pipeline needs from the hub repository: configs, the tokenizer and the safetensors
# weights of each component (not the 3.5 GB single-file checkpoints at the top, nor .bin copies).
_HUB_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"]
_WEIGHTED = ("unet", "vae", "text_encoder")
_SCHEDULERS = ("scheduler", "low_res_scheduler")


@dataclass
class SDX4Condition:
    """The UNet's conditioning for one batch of LR images."""

    image: torch.Tensor  # B×3×h×w, the LR image in [-1, 1] noised to `noise_level` (float32)
    class_labels: torch.Tensor  # B, the noise level (long)
    prompt_embeds: torch.Tensor  # B×L×D, the prompt's text embedding (model dtype)


# ------------------------------------------------------------------------------------------------
# Finding the weights


def _advice() -> str:
    return (
        f"Run once with internet access (so it is fetched into the Hugging Face cache), or download it, e.g. "
        f"`hf download {HUB_ID} --exclude '*.bin' --exclude 'x4-upscaler-ema.*' --local-dir <dir>` "
        f"(`huggingface-cli download {HUB_ID} --local-dir <dir>` with older huggingface_hub), "
        f"and set `{PARAMS_KEY}: <dir>` in params.yaml."
    )


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _is_repo_id(s: str) -> bool:
    """'owner/name' and nothing that reads as a file-system path."""
    if s.count("/") != 1 or "\\" in s or s.startswith((".", "~", "/")) or os.path.isabs(s):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(s)
    except HFValidationError:
        return False
    return True


def _check_folder(folder: Path) -> None:
    """ModelUnavailable naming what a diffusers upscaler folder lacks (a partial download, a wrong path)."""
    missing = []
    for sub in _WEIGHTED:
        d = folder / sub
        if not (d / "config.json").is_file():
            missing.append(f"{sub}/config.json")
        if not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
            missing.append(f"{sub}/ weights (*.safetensors)")
    for sub in _SCHEDULERS:
        if not (folder / sub / "scheduler_config.json").is_file():
            missing.append(f"{sub}/scheduler_config.json")
    if not (folder / "tokenizer").is_dir() or not any((folder / "tokenizer").iterdir()):
        missing.append("tokenizer/")
    if missing:
        raise ModelUnavailable(
            f"{folder} is not a complete diffusers folder of the Stable Diffusion x4 upscaler ({HUB_ID}): "
            f"missing {', '.join(missing)}. {_advice()}"
        )


def resolve(path_or_id: str | os.PathLike) -> Path:
    """The local diffusers folder for a folder path or hub id; fetches from the hub only when allowed."""
    s = os.fspath(path_or_id)
    p = Path(s).expanduser()
    if p.is_dir():
        _check_folder(p)
        return p
    if not _is_repo_id(s):
        raise ModelUnavailable(f"{p}: no such folder (the Stable Diffusion x4 upscaler weights, {HUB_ID}). {_advice()}")
    from huggingface_hub import snapshot_download

    offline = _hub_offline()
    try:
        folder = Path(snapshot_download(s, allow_patterns=_HUB_PATTERNS, local_files_only=offline))
    except Exception as e:  # not cached and the hub unreachable, offline mode, unknown or gated repository
        why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else f"{type(e).__name__}: {e}"
        raise ModelUnavailable(
            f"{s}: not a local folder, and this Hugging Face model is neither in the local cache nor downloadable now ({why}). {_advice()}"
        ) from e
    _check_folder(folder)
    return folder


def _load_part(folder: Path, what: str, load):
    """Run a loader; an error in files that are present (corrupt, wrong model) names the folder."""
    try:
        return load(folder / what)
    except Exception as e:
        raise ThreeDSRError(
            f"{folder / what}: cannot load the upscaler's {what} ({type(e).__name__}: {e}). "
            f"The files may be corrupt or from another model; delete them and download {HUB_ID} again."
        ) from e


def _scheduler_from(folder: Path):
    """A DDPMScheduler from whatever scheduler config is stored (DDIM for the real model): ᾱ and the parameterization."""
    from diffusers import DDPMScheduler

    config = json.loads((folder / "scheduler_config.json").read_text())
    accepted = set(inspect.signature(DDPMScheduler.__init__).parameters) - {"self"}
    return DDPMScheduler.from_config({k: v for k, v in config.items() if k in accepted})


@torch.no_grad()
def encode_prompt(tokenizer, text_encoder, prompt: str) -> torch.Tensor:
    """1×L×D CLIP hidden states for `prompt`, padded to the tokenizer's length (as the diffusers pipeline does)."""
    max_len = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))
    tokens = tokenizer(prompt, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
    if len(tokenizer(prompt).input_ids) > max_len:
        log.warning("prompt %r is longer than %d tokens and was truncated", prompt, max_len)
    mask = tokens.attention_mask if getattr(text_encoder.config, "use_attention_mask", False) else None
    device = next(text_encoder.parameters()).device
    ids = tokens.input_ids.to(device)
    return text_encoder(ids, attention_mask=None if mask is None else mask.to(device)).last_hidden_state


# ------------------------------------------------------------------------------------------------
# The model


class SDX4Upscaler(DiffusionSR):
    """Stable Diffusion ×4 upscaler: a v-prediction latent diffusion model conditioned on the noised LR image."""

    name = "sd-x4-upscaler"
    scale = 4

    def __init__(
        self,
        unet,
        vae,
        low_res_scheduler,
        scheduler,
        prompt_embeds: torch.Tensor,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        noise_level: int = 20,
        tile: int = 128,
        tile_overlap: int = 16,
    ):
        if not 0 <= tile_overlap < tile:
            raise ValueError(f"tile overlap must be in [0, tile), got overlap={tile_overlap}, tile={tile}")
        n_low = int(low_res_scheduler.config.num_train_timesteps)
        if not 0 <= int(noise_level) < n_low:
            raise ValueError(f"noise_level must be in [0, {n_low}), got {noise_level}")
        self.device = torch.device(device)
        self.dtype = dtype
        # The VAE overflows in fp16 (diffusers upcasts it for decoding too, `force_upcast`): keep it in fp32 then.
        self.vae_dtype = torch.float32 if dtype == torch.float16 and getattr(vae.config, "force_upcast", False) else dtype
        self.unet = frozen(unet, self.device, dtype)
        self.vae = frozen(vae, self.device, self.vae_dtype)
        self.low_res_scheduler = low_res_scheduler
        self.noise_level = int(noise_level)
        self.tile, self.tile_overlap = int(tile), int(tile_overlap)
        self.prediction_type = scheduler.config.prediction_type
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to("cpu", torch.float64).clone()
        self.prompt_embeds = prompt_embeds.detach().to(self.device, dtype)
        if self.prompt_embeds.dim() == 2:
            self.prompt_embeds = self.prompt_embeds[None]
        # latent cell -> factor×factor HR pixels; the UNet halves the grid at every down block but the last
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scale = self.vae_factor
        self.scaling_factor = float(vae.config.scaling_factor)
        self.unet_multiple = 2 ** (len(unet.config.down_block_types) - 1)
        n_in = int(unet.config.in_channels)
        if n_in != vae.config.latent_channels + 3:
            raise ValueError(f"the UNet takes {n_in} channels, not latent ({vae.config.latent_channels}) + LR image (3)")

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        noise_level: int = 20,
        prompt: str = "",
        tile: int = 128,
        tile_overlap: int = 16,
    ) -> SDX4Upscaler:
        """Load from a diffusers folder or hub id (None: stabilityai's); the prompt is encoded now and the text encoder dropped."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        if isinstance(dtype, str):
            dtype = auto_dtype(torch.device(device), dtype)
        folder = resolve(path_or_id or HUB_ID)
        index = folder / "model_index.json"
        max_level = json.loads(index.read_text()).get("max_noise_level") if index.is_file() else None
        if max_level is not None and int(noise_level) > int(max_level):
            raise ValueError(f"noise_level must be <= {max_level} (the pipeline's max_noise_level), got {noise_level}")
        tokenizer = _load_part(folder, "tokenizer", lambda p: CLIPTokenizer.from_pretrained(p, local_files_only=True))
        text_encoder = _load_part(
            folder, "text_encoder", lambda p: CLIPTextModel.from_pretrained(p, dtype=torch.float32, local_files_only=True)
        )
        # one forward pass: CPU and fp32 are fine, and the encoder never has to reach the GPU
        prompt_embeds = encode_prompt(tokenizer, text_encoder.eval(), prompt)
        del text_encoder, tokenizer
        gc.collect()
        unet = _load_part(
            folder,
            "unet",
            lambda p: UNet2DConditionModel.from_pretrained(p, torch_dtype=dtype, local_files_only=True, low_cpu_mem_usage=False),
        )
        # fp16 runs keep the VAE in fp32 (see __init__), so load it that way rather than cast it back
        vae_dtype = torch.float32 if dtype == torch.float16 else dtype
        vae = _load_part(
            folder, "vae", lambda p: AutoencoderKL.from_pretrained(p, torch_dtype=vae_dtype, local_files_only=True, low_cpu_mem_usage=False)
        )
        low_res = _load_part(folder, "low_res_scheduler", _scheduler_from)
        scheduler = _load_part(folder, "scheduler", _scheduler_from)
        return cls(
            unet,
            vae,
            low_res,
            scheduler,
            prompt_embeds,
            device=device,
            dtype=dtype,
            noise_level=noise_level,
            tile=tile,
            tile_overlap=tile_overlap,
        )

    # -- E and D --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, hr: torch.Tensor) -> torch.Tensor:
        """HR images in [0, 1] -> latents (VAE mean × scaling factor), float32, one cell per factor×factor pixels."""
        f = self.vae_factor
        if hr.shape[-2] % f or hr.shape[-1] % f:
            raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not a multiple of the VAE's factor {f}")

        def fn(x):
            x = x.to(self.vae_dtype) * 2 - 1
            return self.vae.encode(x).latent_dist.mode().float() * self.scaling_factor

        return tiling.tiled(fn, [hr.to(self.device)], [f], out_scale=1, tile=self.tile, overlap=self.tile_overlap, multiple=1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, cond=None) -> torch.Tensor:
        """Latents -> HR images in [0, 1], float32."""

        def fn(x):
            img = self.vae.decode(x.to(self.vae_dtype) / self.scaling_factor).sample.float()
            return (img + 1) / 2

        out = tiling.tiled(fn, [z.to(self.device)], [1], out_scale=self.vae_factor, tile=self.tile, overlap=self.tile_overlap, multiple=1)
        return out.clamp(0, 1)

    # -- the noise predictor --------------------------------------------------------------------

    @torch.no_grad()
    def condition(self, lr: torch.Tensor, noise: ViewNoise) -> SDX4Condition:
        """The LR image in [-1, 1] noised to `noise_level` with each view's own noise, its class label, the prompt."""
        lr = lr.to(self.device, torch.float32)
        b = lr.shape[0]
        n = noise(tuple(lr.shape[1:]), lr.device)
        levels = torch.full((b,), self.noise_level, dtype=torch.long, device=self.device)
        image = self.low_res_scheduler.add_noise(lr * 2 - 1, n, levels)
        embeds = self.prompt_embeds.expand(b, -1, -1)
        return SDX4Condition(image=image, class_labels=levels, prompt_embeds=embeds)

    @torch.no_grad()
    def model_output(self, x_t: torch.Tensor, t: int, cond: SDX4Condition) -> torch.Tensor:
        """v (for the real model) at (x_t, t), float32, tiled over the latent grid."""
        if x_t.shape[0] != cond.image.shape[0]:
            raise ValueError(f"{x_t.shape[0]} latents but a condition for {cond.image.shape[0]} images")

        def fn(x, img):
            inp = torch.cat([x.to(self.dtype), img.to(self.dtype)], dim=1)
            out = self.unet(inp, int(t), encoder_hidden_states=cond.prompt_embeds, class_labels=cond.class_labels, return_dict=False)[0]
            return out.float()

        return tiling.tiled(
            fn,
            [x_t.to(self.device), cond.image],
            [1, 1],
            out_scale=1,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.unet_multiple,
        )
