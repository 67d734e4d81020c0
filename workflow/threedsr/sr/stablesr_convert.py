"""Convert StableSR-Turbo's released checkpoints into a folder of safetensors, once.

Inputs (from https://huggingface.co/Iceclear/StableSR): `stablesr_turbo.ckpt` (the LatentDiffusion
model: UNet with SFT under `model.diffusion_model.`, the time-aware encoder under
`structcond_stage_model.`, OpenCLIP ViT-H/14's text tower under `cond_stage_model.model.`, SD's VAE
under `first_stage_model.`, the noise schedule's buffers) and `vqgan_cfw_00011.ckpt` (the CFW
autoencoder: SD's VAE with two fusion layers in its decoder, plus training-only loss networks).

Both are PyTorch Lightning pickles. They are read with `torch.load(weights_only=True)`; the one
Lightning class their pickles name (`ModelCheckpoint`, a key of the `callbacks` dict) is allowed
through `torch.serialization.safe_globals` as an empty stand-in, never by plain unpickling.

The UNet and VAE keys go through diffusers' own LDM converters (`convert_ldm_unet_checkpoint` maps
the SFT keys along with each ResNet block's; `convert_ldm_vae_checkpoint` drops the fusion layers,
which are loaded here). The text tower is run once on the empty prompt, the only prompt StableSR
uses, and kept as its [1, 77, 1024] embedding. Every key of both files is either loaded, or one
this module knows to drop (listed in `stablesr.json`); any other key is an error.

Output (`save_pretrained` folders): unet/, structure_encoder/, vae/, scheduler/,
prompt_embeds.safetensors, stablesr.json.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from ..errors import DataError, ModelUnavailable
from ..io import atomic_dir, write_json
from .names import STABLESR_WEIGHTS_HINT

log = logging.getLogger(__name__)

# configs/stableSRNew/v2-finetune_text_T_512.yaml and configs/autoencoder/autoencoder_kl_64x64x4_resi.yaml
OFFICIAL = {
    "unet": {
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 320,
        "attention_resolutions": [4, 2, 1],
        "num_res_blocks": 2,
        "channel_mult": [1, 2, 4, 4],
        "num_head_channels": 64,
        "transformer_depth": 1,
        "context_dim": 1024,
        "semb_channels": 256,
    },
    "structcond": {
        "in_channels": 4,
        "model_channels": 256,
        "out_channels": 256,
        "num_res_blocks": 2,
        "attention_resolutions": [4, 2, 1],
        "channel_mult": [1, 1, 2, 2],
        "num_heads": 4,
    },
    "vae": {"in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "z_channels": 4, "num_fuse_block": 2},
    "scale_factor": 0.18215,
    "schedule": {"linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000},
}

# OpenCLIP's empty prompt: start, end, then zeros (OpenCLIP pads with 0, not with the end token).
SOT, EOT = 49406, 49407
# Keys dropped on purpose: derived schedule buffers (alphas_cumprod is checked), the EMA counters,
# the text tower's last block and projection (StableSR reads the penultimate layer), the attention
# mask buffer, and the CFW training's loss networks (LPIPS, discriminator).
_SCHEDULE = re.compile(
    r"^(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_\w+|log_one_minus_alphas_cumprod|posterior_\w+|lvlb_weights|logvar|scale_factor)$"
)


class _LightningModelCheckpoint:
    """Stand-in for pytorch_lightning's ModelCheckpoint: the pickles only use the class as a dict key."""


_LIGHTNING_GLOBALS = [(_LightningModelCheckpoint, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint")]


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning .ckpt (or a bare state dict), read without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"{path}: no such file; {STABLESR_WEIGHTS_HINT}")
    try:
        with torch.serialization.safe_globals(_LIGHTNING_GLOBALS):
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                ckpt = torch.load(path, map_location="cpu", weights_only=True)  # a legacy (non-zip) file
    except Exception as e:
        raise DataError(
            f"{path}: cannot read it as a checkpoint with weights_only=True ({type(e).__name__}: {e}). "
            f"A truncated download or another file; {STABLESR_WEIGHTS_HINT}"
        ) from e
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DataError(f"{path}: no state_dict of tensors in it")
    return sd


# ------------------------------------------------------------------------------------------------
# diffusers configs from the LDM ones


def unet_config(p: dict) -> dict:
    """UNet2DConditionModel config for an SD2-style LDM UNet (linear projections, heads of num_head_channels)."""
    boc = [p["model_channels"] * m for m in p["channel_mult"]]
    res, down, up = 1, [], []
    for i in range(len(boc)):
        down.append("CrossAttnDownBlock2D" if res in p["attention_resolutions"] else "DownBlock2D")
        res *= 2 if i < len(boc) - 1 else 1
    for _ in boc:
        up.append("CrossAttnUpBlock2D" if res in p["attention_resolutions"] else "UpBlock2D")
        res //= 2
    return {
        "sample_size": 64,
        "in_channels": p["in_channels"],
        "out_channels": p["out_channels"],
        "down_block_types": down,
        "up_block_types": up,
        "block_out_channels": boc,
        "layers_per_block": p["num_res_blocks"],
        "cross_attention_dim": p["context_dim"],
        # diffusers' "attention_head_dim" of SD2 configs holds the number of heads per block
        "attention_head_dim": [c // p["num_head_channels"] for c in boc],
        "use_linear_projection": True,
        "transformer_layers_per_block": p["transformer_depth"],
    }


def vae_config(p: dict, scale_factor: float) -> dict:
    boc = [p["ch"] * m for m in p["ch_mult"]]
    n = len(boc)
    return {
        "in_channels": p["in_channels"],
        "out_channels": p["out_ch"],
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": boc,
        "latent_channels": p["z_channels"],
        "layers_per_block": p["num_res_blocks"],
        "scaling_factor": scale_factor,
        "sample_size": 512,
    }


def scheduler_for(schedule: dict):
    """The LDM 'linear' schedule (a linspace of √β, squared) is diffusers' scaled_linear."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=schedule["timesteps"],
        beta_start=schedule["linear_start"],
        beta_end=schedule["linear_end"],
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
    )


# ------------------------------------------------------------------------------------------------
# key maps for what diffusers has no converter for


_RESNET = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
]


def _resnet_key(rest: str) -> str:
    for old, new in _RESNET:
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    raise KeyError(rest)


def structure_encoder_keys(p: dict) -> dict[str, str]:
    """Official EncoderUNetModelWT module prefixes -> `TimeAwareEncoder` prefixes (resnets get `_resnet_key`)."""
    prefixes = {
        "time_embed.0.": "time_embedding.linear_1.",
        "time_embed.2.": "time_embedding.linear_2.",
        "input_blocks.0.0.": "conv_in.",
        "middle_block.0.": "mid.0.",
        "middle_block.1.": "mid.1.",
        "middle_block.2.": "mid.2.",
    }
    k, r = 1, 0
    levels = len(p["channel_mult"])
    for level in range(levels):
        for _ in range(p["num_res_blocks"]):
            prefixes[f"input_blocks.{k}.0."] = f"resnets.{r}."
            prefixes[f"input_blocks.{k}.1."] = f"attentions.{r}."
            k, r = k + 1, r + 1
        if level < levels - 1:
            prefixes[f"input_blocks.{k}.0.op."] = f"downsamplers.{level}."
            k += 1
    for i in range(levels):
        prefixes[f"fea_tran.{i}."] = f"heads.{i}."
    return prefixes


def _map_structure_encoder(sd: dict, prefix: str, p: dict) -> dict[str, torch.Tensor]:
    prefixes = sorted(structure_encoder_keys(p).items(), key=lambda kv: -len(kv[0]))
    out = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix) :]
        for old, new in prefixes:
            if k.startswith(old):
                rest = k[len(old) :]
                is_resnet = new.startswith(("resnets.", "heads.")) or new in ("mid.0.", "mid.2.")
                out[new + (_resnet_key(rest) if is_resnet else rest)] = value
                break
        else:
            raise DataError(f"unexpected time-aware encoder key {key}")
    return out


def _sft_key(diffusers_key: str) -> tuple[str, str] | None:
    """'down_blocks.0.resnets.1.spade.mlp_gamma.weight' -> ('sft.down_blocks_0_resnets_1.', 'mlp_gamma.weight')."""
    m = re.match(r"^(.*\.resnets\.\d+)\.spade\.(.*)$", diffusers_key)
    return (f"sft.{m.group(1).replace('.', '_')}.", m.group(2)) if m else None


# ------------------------------------------------------------------------------------------------
# the conversion


@torch.no_grad()
def empty_prompt_embedding(sd: dict, prefix: str = "cond_stage_model.model.") -> torch.Tensor:
    """OpenCLIP's text tower (sizes read from the weights) on the empty prompt, penultimate layer + ln_final."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    width = sd[prefix + "token_embedding.weight"].shape[1]
    layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.", k)))
    config = CLIPTextConfig(
        vocab_size=sd[prefix + "token_embedding.weight"].shape[0],
        hidden_size=width,
        intermediate_size=sd[prefix + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers - 1,
        num_attention_heads=width // 64,
        hidden_act="gelu",
        max_position_embeddings=sd[prefix + "positional_embedding"].shape[0],
        projection_dim=width,
    )
    model = CLIPTextModel(config).eval()
    # diffusers' SD2 converter drops block 23 and the projection; at other sizes drop the last block here
    state = {
        k: v
        for k, v in convert_open_clip_checkpoint(model, sd, prefix).items()
        if not k.startswith(f"text_model.encoder.layers.{layers - 1}.") and not k.startswith("text_projection")
    }
    if not any(k.startswith("text_model.") for k in model.state_dict()):  # transformers 5 has no text_model wrapper
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    ids = torch.zeros(1, config.max_position_embeddings, dtype=torch.long)
    ids[0, :2] = torch.tensor([SOT, EOT])
    return model(ids).last_hidden_state.float().contiguous()


def _check_schedule(sd: dict, path: Path, config: dict) -> None:
    """The file's own schedule and latent scale, where it records them, are the ones this port assumes."""
    schedule = config["schedule"]
    if "scale_factor" in sd and abs(float(sd["scale_factor"]) - config["scale_factor"]) > 1e-6:
        raise DataError(f"{path}: latent scale factor {float(sd['scale_factor'])}, expected {config['scale_factor']}")
    if "alphas_cumprod" not in sd:
        return
    expected = scheduler_for(schedule).alphas_cumprod.double()
    got = sd["alphas_cumprod"].double()
    if got.shape != expected.shape or (got - expected).abs().max() > 1e-5:
        raise DataError(
            f"{path}: its noise schedule is not SD's linear {schedule['linear_start']}-{schedule['linear_end']} one; not a StableSR checkpoint?"
        )


def convert(turbo_ckpt: str | os.PathLike, cfw_ckpt: str | os.PathLike, out_dir: str | os.PathLike, config: dict = OFFICIAL) -> dict:
    """The two checkpoints -> `out_dir` (see the module doc); returns what was loaded and dropped."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from safetensors.torch import save_file

    from .stablesr_nets import CFWAutoencoder, SFTUNet, TimeAwareEncoder

    turbo_ckpt, cfw_ckpt = Path(turbo_ckpt), Path(cfw_ckpt)
    sd = load_state_dict(turbo_ckpt)
    cfw = load_state_dict(cfw_ckpt)
    used: dict[str, set[str]] = {str(turbo_ckpt): set(), str(cfw_ckpt): set()}
    dropped: dict[str, list[str]] = {str(turbo_ckpt): [], str(cfw_ckpt): []}

    # UNet + SFT: diffusers maps both (the spade layers ride along with their ResNet block)
    ucfg = unet_config(config["unet"])
    unet = SFTUNet(unet_config=ucfg, cond_channels=config["unet"]["semb_channels"])
    unet_keys = [k for k in sd if k.startswith("model.diffusion_model.")]
    converted = convert_ldm_unet_checkpoint({k: sd[k] for k in unet_keys}, ucfg)
    if len(converted) != len(unet_keys):
        raise DataError(f"{turbo_ckpt}: {len(unet_keys)} UNet weights but {len(converted)} converted; not the StableSR UNet this expects")
    state = {}
    for k, v in converted.items():
        sft = _sft_key(k)
        state[sft[0] + sft[1] if sft else "unet." + k] = v
    _load(unet, state, turbo_ckpt, "UNet")
    used[str(turbo_ckpt)].update(unet_keys)

    encoder = TimeAwareEncoder(
        **{
            k: config["structcond"][k]
            for k in (
                "in_channels",
                "model_channels",
                "out_channels",
                "num_res_blocks",
                "channel_mult",
                "attention_resolutions",
                "num_heads",
            )
        }
    )
    enc_keys = [k for k in sd if k.startswith("structcond_stage_model.")]
    _load(encoder, _map_structure_encoder(sd, "structcond_stage_model.", config["structcond"]), turbo_ckpt, "time-aware encoder")
    used[str(turbo_ckpt)].update(enc_keys)

    text_prefix = "cond_stage_model.model."
    if text_prefix + "token_embedding.weight" not in sd:
        raise DataError(f"{turbo_ckpt}: no OpenCLIP text tower ({text_prefix}*); not the StableSR-Turbo checkpoint?")
    prompt_embeds = empty_prompt_embedding(sd, text_prefix)
    used[str(turbo_ckpt)].update(k for k in sd if k.startswith(text_prefix))

    # the VAE: CFW's file has it whole (encoder and decoder frozen at SD's, fusion layers trained)
    vcfg = vae_config(config["vae"], config["scale_factor"])
    vae = CFWAutoencoder(vae_config=vcfg, num_fuse_block=config["vae"]["num_fuse_block"])
    vae_keys = [
        k
        for k in cfw
        if k.split(".")[0] in ("encoder", "decoder", "quant_conv", "post_quant_conv") and not k.startswith("decoder.fusion_layer_")
    ]
    vstate = {"vae." + k: v for k, v in convert_ldm_vae_checkpoint({k: cfw[k] for k in vae_keys}, vcfg).items()}
    if len(vstate) != len(vae_keys):
        raise DataError(f"{cfw_ckpt}: {len(vae_keys)} autoencoder weights but {len(vstate)} converted")
    fusion_keys = [k for k in cfw if k.startswith("decoder.fusion_layer_")]
    for k in fusion_keys:
        level, rest = re.match(r"^decoder\.fusion_layer_(\d+)\.(.*)$", k).groups()
        vstate[f"fusion.{level}.{rest}"] = cfw[k]
    _load(vae, vstate, cfw_ckpt, "CFW autoencoder")
    used[str(cfw_ckpt)].update(vae_keys + fusion_keys)

    # SD's VAE inside the turbo file: the official code encodes with it; CFW's encoder is the same, frozen
    first = {k[len("first_stage_model.") :]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    # (equal up to fp16 rounding: either file may store half precision)
    same = all(
        k in cfw and cfw[k].shape == v.shape and torch.allclose(cfw[k].float(), v.float(), rtol=1e-3, atol=1e-4) for k, v in first.items()
    )
    if first and not same:
        log.warning("%s: its first-stage VAE differs from %s's; latents are encoded with the CFW file's encoder", turbo_ckpt, cfw_ckpt)
    used[str(turbo_ckpt)].update("first_stage_model." + k for k in first)

    _check_schedule(sd, turbo_ckpt, config)
    for path, state_dict, droppable in (
        (turbo_ckpt, sd, lambda k: bool(_SCHEDULE.match(k)) or k.startswith("model_ema.")),
        (cfw_ckpt, cfw, lambda k: k.startswith("loss.")),
    ):
        rest = [k for k in state_dict if k not in used[str(path)]]
        unknown = [k for k in rest if not droppable(k)]
        if unknown:
            raise DataError(f"{path}: {len(unknown)} keys this converter does not know, e.g. {unknown[:5]}; not a StableSR checkpoint?")
        dropped[str(path)] = rest

    info = {
        "sources": {
            str(p): {"bytes": p.stat().st_size, "loaded": len(used[str(p)]), "dropped": len(dropped[str(p)])}
            for p in (turbo_ckpt, cfw_ckpt)
        },
        "dropped_kinds": {str(p): sorted({k.split(".")[0] for k in dropped[str(p)]}) for p in (turbo_ckpt, cfw_ckpt)},
        "first_stage_equals_cfw_vae": bool(same) if first else None,
        "config": config,
    }
    with atomic_dir(Path(out_dir)) as tmp:
        unet.save_pretrained(tmp / "unet")
        encoder.save_pretrained(tmp / "structure_encoder")
        vae.save_pretrained(tmp / "vae")
        scheduler_for(config["schedule"]).save_pretrained(tmp / "scheduler")
        save_file({"prompt_embeds": prompt_embeds}, str(tmp / "prompt_embeds.safetensors"))
        write_json(tmp / "stablesr.json", info)
    log.info("converted %s + %s -> %s", turbo_ckpt, cfw_ckpt, out_dir)
    return {"used": used, "dropped": dropped, **info}


def _load(module: torch.nn.Module, state: dict, path: Path, what: str) -> None:
    """Strict load, with an error naming the file instead of torch's bare RuntimeError."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise DataError(
            f"{path}: the {what} weights do not fit ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}; wrong shapes: {wrong[:3]})"
        )
    module.load_state_dict(state, strict=True)
