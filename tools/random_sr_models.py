"""SR models with random weights, written in the layout each loader reads: for checks of speed, memory and
the CUDA/fp16 paths where the real weights are absent (no downloads on the GPU check's machine).

Each function writes what `load_sr_model` loads: StableSR-Turbo as the converter's output folder (at the
released shapes with `stablesr_convert.OFFICIAL`, the default), `tiny` as `train_prior`'s folder, Real-ESRGAN
as a safetensors state dict. Random networks say nothing about quality; the outputs only have to be finite.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def stablesr_turbo(
    folder: str | Path, config: dict | None = None, seed: int = 0, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Path:
    """A converted-layout StableSR-Turbo folder (unet/, structure_encoder/, vae/, scheduler/, prompt_embeds, stablesr.json).

    `config` is the converter's LDM configuration (default: the released checkpoints' shapes). The networks
    are initialised on `device` (a GPU makes the 1 B parameters' initialisation take seconds, not a minute)
    and saved in `dtype` (float32, as the converter saves them).
    """
    from safetensors.torch import save_file

    from threedsr.sr.stablesr_convert import OFFICIAL, scheduler_for, unet_config, vae_config
    from threedsr.sr.stablesr_nets import CFWAutoencoder, SFTUNet, TimeAwareEncoder

    config = config or OFFICIAL
    folder = Path(folder)
    keys = ("in_channels", "model_channels", "out_channels", "num_res_blocks", "channel_mult", "attention_resolutions", "num_heads")
    with torch.random.fork_rng(), torch.device(device):
        torch.manual_seed(seed)
        nets = {
            "unet": SFTUNet(unet_config=unet_config(config["unet"]), cond_channels=config["unet"]["semb_channels"]),
            "structure_encoder": TimeAwareEncoder(**{k: config["structcond"][k] for k in keys}),
            "vae": CFWAutoencoder(
                vae_config=vae_config(config["vae"], config["scale_factor"]), num_fuse_block=config["vae"]["num_fuse_block"]
            ),
        }
        prompt = torch.randn(1, 77, config["unet"]["context_dim"]) * 0.5
    for name, net in nets.items():
        torch.nn.Module.to(net, dtype=dtype)  # (ModelMixin.to warns about any cast)
        net.save_pretrained(folder / name)
    scheduler_for(config["schedule"]).save_pretrained(folder / "scheduler")
    save_file({"prompt_embeds": prompt.float().cpu().contiguous()}, str(folder / "prompt_embeds.safetensors"))
    params = sum(p.numel() for n in nets.values() for p in n.parameters())
    (folder / "stablesr.json").write_text(
        json.dumps({"sources": None, "random_weights": {"seed": seed, "parameters": params}, "config": config}, indent=2) + "\n"
    )
    return folder


def tiny(folder: str | Path, block_out_channels=(64, 128, 128), layers_per_block: int = 1, seed: int = 0) -> Path:
    """A `tiny` prior folder (params.yaml's default shape) with random weights."""
    from threedsr.sr.tiny import TinySR, build_scheduler, build_unet

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = build_unet(4, tuple(block_out_channels), layers_per_block)
    TinySR(unet, build_scheduler(), residual_scale=0.1).save_pretrained(folder, photos=[], random_weights={"seed": seed})
    return Path(folder)


def realesrgan(path: str | Path, seed: int = 0) -> Path:
    """An RRDBNet ×4 state dict (Real-ESRGAN ×4plus' shapes) with random weights, as safetensors."""
    from safetensors.torch import save_file

    from threedsr.sr.realesrgan import RRDBNet

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = RRDBNet()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"source": f"random weights, seed {seed}"})
    return Path(path)
