"""SR model interface: sampler arithmetic against diffusers, tiling, the tiny prior, per-image SR."""

import json
import shutil

import numpy as np
import pytest
import torch

from threedsr.errors import DataError, ModelUnavailable
from threedsr.imaging import upsample
from threedsr.sr import sampling
from threedsr.sr.sampling import SamplerConfig, ViewNoise, view_seeds
from threedsr.sr.tiling import tiled
from threedsr.sr.tiny import TinySR, build_scheduler, build_unet, pixel_decode, pixel_encode


def _abar():
    return build_scheduler().alphas_cumprod.double()


def test_respaced_timesteps_match_stablesr_turbo():
    assert sampling.respaced_timesteps(1000, 4) == [999, 666, 333, 0]
    assert sampling.respaced_timesteps(1000, 1) == [999]
    assert sampling.respaced_timesteps(1000, 2) == [999, 0]


@pytest.mark.parametrize("ptype", ["epsilon", "v_prediction", "sample"])
def test_parameterizations_round_trip(ptype):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 4, 5, 5, generator=g)
    abar = float(_abar()[400])
    x_t = sampling.noised(x0, abar, eps)
    a, s = abar**0.5, (1 - abar) ** 0.5
    out = {"epsilon": eps, "v_prediction": a * eps - s * x0, "sample": x0}[ptype]
    e, x = sampling.to_eps_x0(out, x_t, abar, ptype)
    torch.testing.assert_close(e, eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x, x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_reproduces_diffusers(eta):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=True, prediction_type="epsilon")
    sched.set_timesteps(3)  # step ratio 333: 666 -> 333
    g = torch.Generator().manual_seed(1)
    x_t, eps, z = (torch.randn(1, 4, 6, 6, generator=g) for _ in range(3))
    ref = sched.step(eps, 666, x_t, eta=eta, variance_noise=z).prev_sample
    abar = sched.alphas_cumprod.double()
    e, x0 = sampling.to_eps_x0(eps, x_t, float(abar[666]), "epsilon")
    ours = sampling.update(SamplerConfig(update="ddim", eta=eta), x_t, x0, e, float(abar[666]), float(abar[333]), z)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_ddpm_posterior_reproduces_diffusers():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", clip_sample=False, prediction_type="sample")
    sched.set_timesteps(timesteps=[999, 666, 333, 0])
    g = torch.Generator().manual_seed(2)
    x_t, x0 = torch.randn(1, 4, 6, 6, generator=g), torch.randn(1, 4, 6, 6, generator=g)
    ref = sched.step(x0, 666, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
    abar = sched.alphas_cumprod.double()
    ours = sampling.ddpm_posterior_step(x0, x_t, float(abar[666]), float(abar[333]), z)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_updates_return_x0_at_the_end_of_the_chain():
    x_t, x0, eps = torch.randn(3, 2, 2, 2)
    abar_t = float(_abar()[0])
    for cfg in (SamplerConfig(update="ddim", eta=1.0), SamplerConfig(update="ddpm_posterior")):
        out = sampling.update(cfg, x_t, x0, eps, abar_t, 1.0, torch.randn(2, 2, 2))
        torch.testing.assert_close(out, x0)


def test_sampler_config_rejects_bad_values():
    with pytest.raises(ValueError, match="update"):
        SamplerConfig(update="euler")
    with pytest.raises(ValueError, match="eta"):
        SamplerConfig(eta=2.0)


def test_view_noise_depends_on_the_view_not_the_batch():
    seeds = view_seeds(0, ["a", "b", "c"])
    assert len(set(seeds)) == 3 and view_seeds(0, ["b"]) == [seeds[1]] and view_seeds(1, ["b"]) != [seeds[1]]
    batch = ViewNoise(seeds)((2, 3), "cpu")
    alone = ViewNoise(seeds[1:2])((2, 3), "cpu")
    torch.testing.assert_close(batch[1], alone[0])


def test_tiling_blends_to_the_untiled_result():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 53, generator=g)
    pointwise = lambda t: t * 2 + 1  # noqa: E731
    torch.testing.assert_close(tiled(pointwise, [x], [1], tile=16, overlap=4), pointwise(x))
    up = lambda t: torch.nn.functional.interpolate(t, scale_factor=4, mode="nearest")  # noqa: E731
    torch.testing.assert_close(tiled(up, [x], [1], out_scale=4, tile=16, overlap=4), up(x))
    # a 3x3 blur sees one pixel past each tile edge: interiors agree once the overlap exceeds that
    blur = lambda t: torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)  # noqa: E731
    out = tiled(blur, [x], [1], tile=16, overlap=6)
    ref = blur(x)
    assert (out - ref).abs().max() < 0.05 and (out - ref).abs().mean() < 5e-3
    # odd sizes are padded up to the network's multiple and cropped back
    assert tiled(pointwise, [x], [1], tile=64, multiple=8).shape == x.shape


def test_pixel_transform_is_exactly_invertible():
    hr = torch.rand(2, 3, 16, 24)
    z = pixel_encode(hr, 4)
    assert z.shape == (2, 48, 4, 6)
    torch.testing.assert_close(pixel_decode(z, 4), hr)


def _tiny_model(**kw):
    torch.manual_seed(0)
    return TinySR(build_unet(4, (16, 32), 1), build_scheduler(), residual_scale=0.1, **kw)


def test_tiny_prior_round_trips_and_is_reproducible(tmp_path):
    model = _tiny_model()
    lr = torch.rand(3, 3, 10, 14, generator=torch.Generator().manual_seed(0))
    seeds = view_seeds(0, ["v0", "v1", "v2"])
    cfg = SamplerConfig(steps=4, eta=1.0)
    out = model.super_resolve(lr, cfg, seeds)
    assert out.shape == (3, 3, 40, 56) and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(model.super_resolve(lr, cfg, seeds), out)
    torch.testing.assert_close(model.super_resolve(lr[1:2], cfg, seeds[1:2])[0], out[1], atol=1e-5, rtol=0)
    assert (model.super_resolve(lr, cfg, view_seeds(1, ["v0", "v1", "v2"])) - out).abs().max() > 1e-3
    model.save_pretrained(tmp_path / "prior", training={"photos": ["skimage:rocket"]})
    again = TinySR.from_pretrained(tmp_path / "prior")
    torch.testing.assert_close(again.super_resolve(lr, cfg, seeds), out)
    assert again.meta["training"]["photos"] == ["skimage:rocket"]
    # x̂0 is the bicubic upsampling plus a residual: a zero residual gives bicubic exactly
    model.residual_scale = 0.0
    torch.testing.assert_close(model.super_resolve(lr, SamplerConfig(steps=1), seeds), upsample(lr, 4), atol=1e-6, rtol=0)


def test_tiny_prior_tiles_large_images():
    model = _tiny_model(tile=16, tile_overlap=4)
    lr = torch.rand(1, 3, 30, 41, generator=torch.Generator().manual_seed(0))
    out = model.super_resolve(lr, SamplerConfig(steps=2), [0])
    assert out.shape == (1, 3, 120, 164) and torch.isfinite(out).all()


def test_missing_prior_names_the_rule(tmp_path):
    with pytest.raises(ModelUnavailable, match="train_prior"):
        TinySR.from_pretrained(tmp_path)


def test_training_writes_a_loadable_prior_and_records_its_photos(tmp_path):
    """Seconds of training: what it writes (that training improves on bicubic takes minutes: the shipped prior's test
    below and benchmarks/prior_eval.py show it)."""
    from threedsr.data.photos import PRIOR_PHOTOS, TEXTURE_PHOTOS, load_photo
    from threedsr.sr.train_tiny import TinyTrainConfig, train

    assert not set(PRIOR_PHOTOS) & set(TEXTURE_PHOTOS)
    cfg = TinyTrainConfig(iterations=30, batch_size=4, patch=8, block_out_channels=(16, 32), lr=3e-3, warmup=5)
    photos = {p: load_photo(p) for p in ("skimage:rocket", "skimage:camera")}
    summary = train(photos, cfg, tmp_path / "prior")
    log = (tmp_path / "prior" / "train_log.csv").read_text().splitlines()
    assert len(log) == 31
    loss, bicubic = np.loadtxt(tmp_path / "prior" / "train_log.csv", delimiter=",", skiprows=1, usecols=(1, 2)).T
    assert loss[0] == pytest.approx(bicubic[0], rel=1e-4)  # the last layer starts at zero: training starts at bicubic
    assert np.isfinite(loss).all() and not np.allclose(loss, bicubic)
    model = TinySR.from_pretrained(tmp_path / "prior")
    assert model.meta["training"]["photos"] == sorted(photos) == summary["photos"]
    info = json.loads((tmp_path / "prior" / "tiny_sr.json").read_text())
    assert info["scale"] == 4 and set(info["files"]) == {
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    }


def test_the_shipped_prior_loads_checked_and_super_resolves():
    """The prior in the package (tiny-v2): its files' sha256 hold, it loads without a path (float16 on disk, float32
    here), and it beats bicubic on a photo it never saw (a bundled one; it trained on ../shared's)."""
    from threedsr.data.photos import load_photo
    from threedsr.imaging import resize, to_float
    from threedsr.metrics.image import psnr
    from threedsr.sr.sampling import SamplerConfig
    from threedsr.sr.tiny import SHIPPED

    model = TinySR.from_pretrained()
    assert model.meta["name"] == "tiny-v2" and len(model.meta["training"]["photos"]) == 151
    assert next(model.unet.parameters()).dtype == torch.float32
    assert (SHIPPED / "unet/diffusion_pytorch_model.safetensors").stat().st_size < 9_000_000
    hr = to_float(load_photo("skimage:astronaut")[100:292, 150:406]).permute(2, 0, 1)[None]
    lr = resize(hr, 48, 64).clamp(0, 1)
    sr = model.super_resolve(lr, SamplerConfig(), seeds=[0])
    bicubic = upsample(lr, 4).clamp(0, 1)

    def sharpness(im):  # mean vertical gradient: the detail bicubic blurs away
        return (im[..., 1:, :] - im[..., :-1, :]).abs().mean()

    assert psnr(sr, hr) > psnr(bicubic, hr) + 0.8  # measured: 26.84 vs 25.64 dB
    assert sharpness(sr) > 1.2 * sharpness(bicubic)  # 0.0200 vs 0.0154 (the photo: 0.0279)


def test_an_altered_shipped_or_trained_prior_is_refused(tmp_path, monkeypatch):
    from threedsr.sr import tiny
    from threedsr.sr.tiny import SHIPPED

    shutil.copytree(SHIPPED, tmp_path / "prior")
    weights = tmp_path / "prior" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(
        DataError, match=r"diffusion_pytorch_model.safetensors: the tiny SR prior's file is altered or truncated.*rerun train_prior"
    ):
        TinySR.from_pretrained(tmp_path / "prior")
    weights.unlink()
    with pytest.raises(DataError, match="is missing"):
        TinySR.from_pretrained(tmp_path / "prior")
    # the package's own copy altered: the remedy is a reinstall, not a training
    monkeypatch.setattr(tiny, "SHIPPED", tmp_path / "prior")
    with pytest.raises(DataError, match="is missing.*reinstall threedsr"):
        TinySR.from_pretrained()


def test_prior_refuses_a_scene_textured_with_its_photos(tmp_path):
    from threedsr.sr.run import check_no_leak

    class Scene:
        root = tmp_path
        meta = {"photos_used": ["skimage:rocket"]}

    model = _tiny_model(meta={"training": {"photos": ["skimage:rocket", "skimage:camera"]}})
    with pytest.raises(DataError, match="rocket"):
        check_no_leak(model, Scene())
    Scene.meta = {"photos_used": ["skimage:coffee"]}
    check_no_leak(model, Scene())


def test_isr_loss_adds_the_lr_term():
    from threedsr.imaging import resize
    from threedsr.methods.fit import hr_lr_loss
    from threedsr.splat.trainer import TrainView, photometric_loss

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(32, 48, 3, generator=g)
    lr = resize(hr.permute(2, 0, 1), 8, 12).permute(1, 2, 0)
    view = TrainView(torch.eye(4), torch.eye(3), 48, 32, target=hr, lr_target=lr)
    assert hr_lr_loss(1.0, 0.2)(hr, view) < 1e-3  # a render that is the target matches at both scales
    other = torch.rand(32, 48, 3, generator=g)
    l_hr = photometric_loss(other, hr, 0.2)
    l_lr = photometric_loss(resize(other.permute(2, 0, 1), 8, 12).permute(1, 2, 0), lr, 0.2)
    torch.testing.assert_close(hr_lr_loss(0.0, 0.2)(other, view), l_hr)
    torch.testing.assert_close(hr_lr_loss(2.0, 0.2)(other, view), l_hr + 2 * l_lr)


@pytest.mark.parametrize(
    "part, message",
    [
        (
            "unet/diffusion_pytorch_model.safetensors",
            "prior/unet/diffusion_pytorch_model.safetensors: the tiny SR prior's file is altered or truncated",
        ),
        ("tiny_sr.json", "prior/tiny_sr.json: not readable JSON"),
        ("unhashed", "prior: the tiny SR prior there is truncated or corrupt"),  # one written before tiny_sr.json listed hashes
    ],
)
def test_a_truncated_prior_is_one_line_naming_it(tmp_path, part, message):
    """A prior cut short (a full disk, a killed copy) was a diffusers OSError traceback."""
    from threedsr.errors import DataError

    _tiny_model().save_pretrained(tmp_path / "prior")
    if part == "unhashed":
        info = json.loads((tmp_path / "prior/tiny_sr.json").read_text())
        (tmp_path / "prior/tiny_sr.json").write_text(json.dumps({k: v for k, v in info.items() if k != "files"}))
        part = "unet/diffusion_pytorch_model.safetensors"
    f = tmp_path / "prior" / part
    assert f.is_file(), sorted(p.name for p in (tmp_path / "prior").rglob("*"))
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(DataError, match=rf"{tmp_path}/{message}.*delete"):
        TinySR.from_pretrained(tmp_path / "prior")


def test_loading_the_prior_says_nothing_about_accelerate(tmp_path, capfd):
    """Every log of a job that loads the prior warned that `accelerate` was missing (a package this CPU install does
    not need): the prior is small, loaded without it. (diffusers writes to stderr through its own handler.)"""
    _tiny_model().save_pretrained(tmp_path / "prior")
    capfd.readouterr()
    TinySR.from_pretrained(tmp_path / "prior")
    assert "accelerate" not in capfd.readouterr().err
