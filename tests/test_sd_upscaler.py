"""SDX4Upscaler on a tiny, randomly initialised model with the real upscaler's structure.

The model is built here, saved as a diffusers StableDiffusionUpscalePipeline folder and loaded back
through `SDX4Upscaler.from_pretrained`, so loading, conditioning, tiling and the v-prediction
arithmetic are all exercised without the 3.5 GB weights or a network.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from threedsr.errors import ModelUnavailable, ThreeDSRError  # noqa: E402
from threedsr.sr import sampling  # noqa: E402
from threedsr.sr.sampling import SamplerConfig, ViewNoise  # noqa: E402
from threedsr.sr.sd_upscaler import HUB_ID, PARAMS_KEY, SDX4Upscaler  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model is fastest on one thread; several spin-wait badly when the cores are busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def hf_home(tmp_path, monkeypatch):
    """Keep every Hugging Face cache (and any accidental write) inside the test's tmp folder."""
    import huggingface_hub.constants as hc

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hc, "HF_HOME", str(home))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(home / "hub"))
    return home


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in "abcdefghijklmnopqrstuvwxyz":
            vocab[c + suffix] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A saved tiny StableDiffusionUpscalePipeline: v-prediction DDIM scheduler, 1000 noise-level classes, VAE ×4."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("sdx4")
    tokenizer = _tokenizer(root / "vocab")
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=7,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        num_class_embeds=1000,
        norm_num_groups=8,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=0.08333,
    )
    low_res = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, num_train_timesteps=1000)
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=low_res,
        scheduler=scheduler,
        max_noise_level=350,
    )
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


@pytest.fixture(scope="module")
def model(tiny_dir) -> SDX4Upscaler:
    return SDX4Upscaler.from_pretrained(tiny_dir)


def _lr(b=2, h=20, w=28, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_loaded_attributes(model):
    assert model.name == "sd-x4-upscaler" and model.is_diffusion
    assert model.scale == 4 and model.vae_factor == 4  # 3 VAE blocks: 2**(3-1)
    assert model.unet_multiple == 4  # 3 UNet down blocks
    assert model.prediction_type == "v_prediction"
    assert model.alphas_cumprod.dtype == torch.float64 and model.alphas_cumprod.device.type == "cpu"
    assert model.num_train_timesteps == 1000
    assert model.scaling_factor == pytest.approx(0.08333)
    assert model.prompt_embeds.shape == (1, 77, 32)
    assert not hasattr(model, "text_encoder") and not hasattr(model, "tokenizer")
    assert not model.unet.training and not model.vae.training


def test_alphas_match_stored_scheduler(model, tiny_dir):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler.from_pretrained(tiny_dir / "scheduler")
    torch.testing.assert_close(model.alphas_cumprod, ref.alphas_cumprod.double())


def test_prompt_changes_embedding(tiny_dir, model):
    other = SDX4Upscaler.from_pretrained(tiny_dir, prompt="a cat")
    assert not torch.allclose(other.prompt_embeds, model.prompt_embeds)


def test_super_resolve_shape_and_range(model):
    out = model.super_resolve(_lr(), SamplerConfig(steps=2), seeds=[1, 2])
    assert out.shape == (2, 3, 80, 112) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_encode_decode_shapes(model):
    hr = _lr(h=40, w=44)
    z = model.encode(hr)
    assert z.shape == (2, 4, 10, 11)
    img = model.decode(z)
    assert img.shape == (2, 3, 40, 44) and img.min() >= 0 and img.max() <= 1
    with pytest.raises(ValueError, match="multiple"):
        model.encode(hr[..., :42])


def test_seeds_reproducible_and_batch_independent(model):
    cfg = SamplerConfig(steps=2)
    lr = _lr()
    a = model.super_resolve(lr, cfg, seeds=[5, 6])
    b = model.super_resolve(lr, cfg, seeds=[5, 6])
    c = model.super_resolve(lr, cfg, seeds=[7, 8])
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    alone = model.super_resolve(lr[1:], cfg, seeds=[6])
    torch.testing.assert_close(alone[0], a[1], atol=1e-5, rtol=0)


def test_condition_noises_lr_with_view_noise(model):
    lr = _lr()
    cond = model.condition(lr, ViewNoise([3, 4]))
    n = ViewNoise([3, 4])((3, 20, 28), "cpu")
    ab = float(model.low_res_scheduler.alphas_cumprod[model.noise_level])
    torch.testing.assert_close(cond.image, ab**0.5 * (lr * 2 - 1) + (1 - ab) ** 0.5 * n)
    assert cond.class_labels.tolist() == [20, 20]
    assert cond.prompt_embeds.shape == (2, 77, 32)


def test_model_output_matches_direct_unet_call(model):
    x = torch.randn(2, 4, 16, 20, generator=torch.Generator().manual_seed(1))
    cond = model.condition(_lr(h=16, w=20), ViewNoise([0, 1]))
    out = model.model_output(x, 500, cond)
    direct = model.unet(torch.cat([x, cond.image], 1), 500, encoder_hidden_states=cond.prompt_embeds, class_labels=cond.class_labels).sample
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, direct)


def test_model_output_odd_sizes_and_tiles(tiny_dir):
    small = SDX4Upscaler.from_pretrained(tiny_dir, tile=8, tile_overlap=2)
    x = torch.randn(1, 4, 17, 23, generator=torch.Generator().manual_seed(2))
    cond = small.condition(_lr(b=1, h=17, w=23), ViewNoise([0]))
    out = small.model_output(x, 250, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    sr = small.super_resolve(_lr(b=1, h=17, w=23), SamplerConfig(steps=2), seeds=[0])
    assert sr.shape == (1, 3, 68, 92) and torch.isfinite(sr).all()


def test_predict_v_matches_diffusers_ddim_step(model, tiny_dir):
    """ddim_step(η=0) on predict()'s (ε̂, x̂0) is diffusers' v-prediction DDIM step (750 -> 500 with 4 steps)."""
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_pretrained(tiny_dir / "scheduler")
    assert ddim.config.prediction_type == "v_prediction"
    ddim.set_timesteps(4)
    t, prev = 750, 500
    assert t in ddim.timesteps.tolist()
    x = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(3))
    cond = model.condition(_lr(h=12, w=12), ViewNoise([0, 1]))
    v = model.model_output(x, t, cond)
    eps, x0 = model.predict(x, t, cond)
    ours = sampling.ddim_step(x0, eps, model.abar(t), model.abar(prev), 0.0, None)
    theirs = ddim.step(v, t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x0, ddim.step(v, t, x, eta=0.0).pred_original_sample, atol=1e-5, rtol=1e-5)


def test_offline_hub_id_raises_model_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as e:
        SDX4Upscaler.from_pretrained(HUB_ID)
    msg = str(e.value)
    assert PARAMS_KEY in msg and HUB_ID in msg and "download" in msg


def test_missing_folder_raises_model_unavailable(tmp_path):
    missing = tmp_path / "no" / "such" / "upscaler"
    with pytest.raises(ModelUnavailable) as e:
        SDX4Upscaler.from_pretrained(missing)
    assert str(missing) in str(e.value) and PARAMS_KEY in str(e.value)


def test_incomplete_folder_raises_model_unavailable(tiny_dir, tmp_path):
    copy = shutil.copytree(tiny_dir, tmp_path / "partial")
    for f in (copy / "vae").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelUnavailable, match="vae/"):
        SDX4Upscaler.from_pretrained(copy)


def test_corrupt_weights_name_the_path(tiny_dir, tmp_path):
    copy = shutil.copytree(tiny_dir, tmp_path / "corrupt")
    (copy / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ThreeDSRError) as e:
        SDX4Upscaler.from_pretrained(copy)
    assert not isinstance(e.value, ModelUnavailable)
    assert str(copy / "unet") in str(e.value)


def test_offline_hub_id_uses_the_cache(tiny_dir, hf_home, monkeypatch):
    """A hub id already in the Hugging Face cache loads with HF_HUB_OFFLINE=1."""
    repo = hf_home / "hub" / "models--someone--tiny-upscaler"
    commit = "0" * 40
    shutil.copytree(tiny_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = SDX4Upscaler.from_pretrained("someone/tiny-upscaler")
    assert m.prediction_type == "v_prediction"


def test_invalid_settings(tiny_dir):
    with pytest.raises(ValueError, match="overlap"):
        SDX4Upscaler.from_pretrained(tiny_dir, tile=8, tile_overlap=8)
    with pytest.raises(ValueError, match="noise_level"):
        SDX4Upscaler.from_pretrained(tiny_dir, noise_level=351)  # max_noise_level of the pipeline


def test_cli_super_resolves_a_scene_with_params_options(tiny_dir, tmp_path):
    """What the super_resolve rule runs: params.yaml's sr block reaches the model (path, noise level, prompt)."""
    from threedsr import cli, settings
    from threedsr.data import synthetic
    from threedsr.data.poses import load_scene_poses
    from threedsr.data.prepare import prepare_scene
    from threedsr.data.scene import PreparedScene
    from threedsr.io import read_image, read_json

    synthetic.generate_scene("forward", tmp_path / "raw", 128, 96, 1, 500, 0)
    prepare_scene(tmp_path / "raw", load_scene_poses(tmp_path / "raw", tmp_path / "work"), tmp_path / "scene", 8, 2, 8)
    sr = {  # the whole block, as the rule passes it
        **settings.SR().to_dict(),
        "model": "sd-x4-upscaler",
        "batch_size": 2,
        "sd_x4_upscaler": {"path": str(tiny_dir), "noise_level": 30, "prompt": ""},
    }
    sampler = {"steps": 2, "update": "ddpm_posterior", "eta": 0.0, "init": "noised_lr", "seed": 0}

    def args(out, sr):
        params = {"sr": sr, "threedsr": sampler, "device": "cpu"}
        return [
            "super-resolve",
            "--scene",
            str(tmp_path / "scene"),
            "--out",
            str(out),
            "--model",
            "sd-x4-upscaler",
            "--views",
            "test",
            "--params",
            json.dumps(params),
        ]

    assert cli.main(args(tmp_path / "sr", sr)) == 0
    scene = PreparedScene(tmp_path / "scene")
    for v in scene.test_views:
        assert read_image(tmp_path / "sr" / f"{v.name}.png").shape == (v.hr.height, v.hr.width, 3)
    info = read_json(tmp_path / "sr" / "sr.json")
    assert info["model"] == "sd-x4-upscaler" and info["views"] == len(scene.test_views) and info["sampler"]["update"] == "ddpm_posterior"
    # offline without weights: one readable error, no traceback, nothing that looks finished
    sr["sd_x4_upscaler"]["path"] = str(tmp_path / "missing")
    assert cli.main(args(tmp_path / "sr2", sr)) == 1
    assert not (tmp_path / "sr2").exists()
