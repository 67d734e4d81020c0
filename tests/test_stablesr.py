"""StableSR-Turbo: converting the released checkpoint layout, and the port built on it.

No weights can be had offline. `data/stablesr_tiny_layout.json` lists every key and shape of the two
released checkpoints (`stablesr_turbo.ckpt`, `vqgan_cfw_00011.ckpt`) at a tiny size, written from the
official StableSR modules (whose outputs were compared with the port's outside this repository; see the
README). Here the keys get random values, are wrapped in Lightning pickles, converted, and traced to
where each one lands.
"""

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from threedsr.errors import DataError, ModelUnavailable
from threedsr.sr import tiling
from threedsr.sr.load import load_sr_model
from threedsr.sr.sampling import SamplerConfig
from threedsr.sr.stablesr import StableSRTurbo
from threedsr.sr.stablesr_convert import convert, empty_prompt_embedding, load_state_dict, scheduler_for

LAYOUT = json.loads((Path(__file__).parent / "data" / "stablesr_tiny_layout.json").read_text())
CONFIG = LAYOUT["config"]
SCHEDULE_KEYS = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
}


def _lightning_save(state: dict, path: Path) -> None:
    """torch.save as PyTorch Lightning 1.4 does: the ModelCheckpoint class itself is a key of `callbacks`."""
    name = "pytorch_lightning.callbacks.model_checkpoint"
    cls = type("ModelCheckpoint", (), {"__module__": name})
    modules = {n: types.ModuleType(n) for n in ("pytorch_lightning", "pytorch_lightning.callbacks", name)}
    modules[name].ModelCheckpoint = cls
    with pytest.MonkeyPatch.context() as m:
        for n, mod in modules.items():
            m.setitem(sys.modules, n, mod)
        torch.save(
            {
                "epoch": 2,
                "global_step": 1500,
                "pytorch-lightning_version": "1.4.2",
                "state_dict": state,
                "callbacks": {cls: {"best_model_score": None, "best_model_path": ""}},
                "optimizer_states": [],
                "lr_schedulers": [],
            },
            path,
        )


def _official_states(seed: int = 0) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)

    def fill(shapes):
        return {k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}

    turbo, cfw = fill(LAYOUT["turbo"]), fill(LAYOUT["cfw"])
    turbo["alphas_cumprod"] = scheduler_for(CONFIG["schedule"]).alphas_cumprod.float()
    for k, v in cfw.items():  # SD's VAE sits in both files (CFW trained only its fusion layers)
        if "first_stage_model." + k in turbo:
            turbo["first_stage_model." + k] = v.clone()
    return turbo, cfw


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    d = tmp_path_factory.mktemp("stablesr")
    turbo, cfw = _official_states()
    _lightning_save(turbo, d / "stablesr_turbo.ckpt")
    _lightning_save(cfw, d / "vqgan_cfw_00011.ckpt")
    return d, turbo, cfw


@pytest.fixture(scope="module")
def converted(official):
    d, _, _ = official
    info = convert(d / "stablesr_turbo.ckpt", d / "vqgan_cfw_00011.ckpt", d / "converted", config=CONFIG)
    return d / "converted", info


def test_lightning_pickles_need_the_one_allowed_global(official):
    d, turbo, _ = official
    with pytest.raises(Exception, match="ModelCheckpoint"):
        torch.load(d / "stablesr_turbo.ckpt", weights_only=True)  # what the stand-in is for
    sd = load_state_dict(d / "stablesr_turbo.ckpt")
    assert sd.keys() == turbo.keys() and torch.equal(sd["model.diffusion_model.out.2.weight"], turbo["model.diffusion_model.out.2.weight"])


def test_every_key_is_consumed_and_lands_in_its_module(official, converted):
    d, turbo, cfw = official
    out, info = converted
    t_path, c_path = str(d / "stablesr_turbo.ckpt"), str(d / "vqgan_cfw_00011.ckpt")
    assert info["used"][t_path] | set(info["dropped"][t_path]) == set(turbo)
    assert info["used"][c_path] | set(info["dropped"][c_path]) == set(cfw)
    assert set(info["dropped"][t_path]) == SCHEDULE_KEYS  # the schedule is checked, then derived anew
    assert {k.split(".")[0] for k in info["dropped"][c_path]} == {"loss"}  # CFW training's LPIPS/discriminator
    assert info["first_stage_equals_cfw_vae"] is True

    saved = {part: load_file(str(out / part / "diffusion_pytorch_model.safetensors")) for part in ("unet", "structure_encoder", "vae")}
    where = {}
    for part, tensors in saved.items():
        for k, v in tensors.items():
            where.setdefault(v.float().contiguous().numpy().tobytes(), []).append(f"{part}/{k}")
    # every weight of the UNet, the time-aware encoder and the CFW autoencoder lands exactly once
    official_keys = {k: v for k, v in turbo.items() if k.startswith(("model.diffusion_model.", "structcond_stage_model."))}
    official_keys.update({k: v for k, v in cfw.items() if not k.startswith("loss.")})
    landed = {k: where.get(v.contiguous().numpy().tobytes(), []) for k, v in official_keys.items()}
    assert all(len(v) == 1 for v in landed.values()), [k for k, v in landed.items() if len(v) != 1][:5]
    assert sum(len(t) for t in saved.values()) == len(official_keys)
    for src, dst in {
        "model.diffusion_model.input_blocks.1.0.spade.mlp_gamma.weight": "unet/sft.down_blocks_0_resnets_0.mlp_gamma.weight",
        "model.diffusion_model.input_blocks.1.0.in_layers.2.weight": "unet/unet.down_blocks.0.resnets.0.conv1.weight",
        "model.diffusion_model.middle_block.2.spade.mlp_beta.bias": "unet/sft.mid_block_resnets_1.mlp_beta.bias",
        "model.diffusion_model.output_blocks.11.0.spade.param_free_norm.weight": "unet/sft.up_blocks_3_resnets_2.param_free_norm.weight",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": "unet/unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "structcond_stage_model.time_embed.2.weight": "structure_encoder/time_embedding.linear_2.weight",
        "structcond_stage_model.input_blocks.1.1.qkv.weight": "structure_encoder/attentions.0.qkv.weight",
        "structcond_stage_model.input_blocks.3.0.op.weight": "structure_encoder/downsamplers.0.weight",
        "structcond_stage_model.input_blocks.4.0.emb_layers.1.weight": "structure_encoder/resnets.2.time_emb_proj.weight",
        "structcond_stage_model.middle_block.1.proj_out.bias": "structure_encoder/mid.1.proj_out.bias",
        "structcond_stage_model.fea_tran.3.out_layers.3.weight": "structure_encoder/heads.3.conv2.weight",
        "decoder.fusion_layer_2.encode_enc_2.1.rdb3.conv5.weight": "vae/fusion.2.encode_enc_2.1.rdb3.conv5.weight",
        "decoder.fusion_layer_1.encode_enc_1.conv_out.weight": "vae/fusion.1.encode_enc_1.conv_out.weight",
        "decoder.up.3.block.0.conv1.weight": "vae/vae.decoder.up_blocks.0.resnets.0.conv1.weight",
        "encoder.down.1.block.0.nin_shortcut.weight": "vae/vae.encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
    }.items():
        assert landed[src] == [dst], (src, landed[src])
    embeds = load_file(str(out / "prompt_embeds.safetensors"))["prompt_embeds"]
    assert embeds.shape == (1, 77, LAYOUT["turbo"]["cond_stage_model.model.token_embedding.weight"][1])


def test_the_prompt_embedding_is_the_penultimate_layer(official):
    _, turbo, _ = official
    text = {k: v for k, v in turbo.items() if k.startswith("cond_stage_model.")}
    base = empty_prompt_embedding(text)
    last = max(int(k.split(".")[4]) for k in text if ".resblocks." in k)
    changed_last = {k: (v + 1 if f".resblocks.{last}." in k else v) for k, v in text.items()}
    changed_before = {k: (v + 1 if f".resblocks.{last - 1}." in k else v) for k, v in text.items()}
    torch.testing.assert_close(empty_prompt_embedding(changed_last), base, rtol=0, atol=0)
    assert (empty_prompt_embedding(changed_before) - base).abs().max() > 1e-2


def test_the_converted_model_runs_the_sampler(converted):
    out, _ = converted
    options = {"path": str(out), "weights_dir": None, "cfw_weight": 0.5, "tile": 16, "tile_overlap": 8, "colorfix": "wavelet"}
    model = load_sr_model("stablesr-turbo", options, torch.device("cpu"))
    assert isinstance(model, StableSRTurbo) and model.timesteps(4) == [999, 666, 333, 0]
    lr = torch.rand(2, 3, 19, 21)  # HR 76x84: not a multiple of 8, padded and cropped back; latent 10x11, two tiles
    sampler = SamplerConfig(steps=4, update="ddpm_posterior", eta=0.0, init="noised_lr", seed=0)
    sr = model.super_resolve(lr, sampler, [1, 2])
    assert sr.shape == (2, 3, 76, 84) and torch.isfinite(sr).all() and 0 <= sr.min() and sr.max() <= 1
    torch.testing.assert_close(model.super_resolve(lr[1:], sampler, [2]), sr[1:], rtol=0, atol=1e-6)  # per-view seeds
    cond = model.condition(lr)
    assert model.encode(torch.rand(2, 3, 76, 84)).shape == cond.z_lr.shape == (2, 4, 10, 11)
    x, _ = model.sample(lr, sampler, [1, 2])
    plain = load_sr_model("stablesr-turbo", {**options, "cfw_weight": 0.0}, torch.device("cpu"))
    assert (model.decode(x, cond) - plain.decode(x, cond)).abs().max() > 1e-4  # CFW fuses the LR features in


def test_gaussian_tiles_blend_to_the_input():
    x = torch.rand(1, 2, 20, 27)
    out = tiling.tiled(lambda t: t * 1.0, [x], [1], tile=8, overlap=4, blend="gaussian")
    torch.testing.assert_close(out, x)
    w = tiling._gaussian(8, 8)
    assert w.argmax() == 4 * 8 + 3  # StableSR centres y at h/2, x at (w-1)/2


def test_missing_and_broken_weights_say_what_to_do(official, converted, tmp_path):
    with pytest.raises(ModelUnavailable, match=r"sr\.stablesr_turbo\.weights_dir"):
        load_sr_model("stablesr-turbo", {"path": None}, torch.device("cpu"))
    with pytest.raises(ModelUnavailable, match="not a converted StableSR-Turbo folder"):
        StableSRTurbo.from_pretrained(tmp_path)
    with pytest.raises(ModelUnavailable, match=r"no such file.*sr\.stablesr_turbo\.weights_dir"):
        load_state_dict(tmp_path / "stablesr_turbo.ckpt")
    d, turbo, cfw = official
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((d / "vqgan_cfw_00011.ckpt").read_bytes()[:100_000])
    with pytest.raises(DataError, match="cut.ckpt"):
        load_state_dict(cut)
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "hook": print}, hostile)  # a global nobody allowed
    with pytest.raises(DataError, match="hostile.ckpt"):
        load_state_dict(hostile)
    odd = tmp_path / "odd.ckpt"
    _lightning_save({**turbo, "model.diffusion_model.extra.weight": torch.zeros(3)}, odd)
    with pytest.raises(DataError, match="odd.ckpt"):
        convert(odd, d / "vqgan_cfw_00011.ckpt", tmp_path / "out", config=CONFIG)
    assert not (tmp_path / "out").exists()
