"""RealBasicVSR (SuperGaussian's video upsampler): flow warping, SPyNet's pyramid, temporal propagation, and
loading the authors' checkpoint layout. No weights are available offline: networks here are small and random."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from threedsr import config as config_module
from threedsr.errors import ConfigError, DataError, ModelUnavailable
from threedsr.imaging import to_float, to_uint8
from threedsr.io import read_image
from threedsr.methods.supergaussian import upsample_frames
from threedsr.partial import PartialImages
from threedsr.sr.realbasicvsr import RealBasicVSR, RealBasicVSRNet, SPyNet, flow_warp
from threedsr.sr.sampling import SamplerConfig


def _net(seed=0, channels=8, propagation=2, cleaning=1):
    torch.manual_seed(seed)
    net = RealBasicVSRNet(channels, propagation, cleaning)
    for p in net.parameters():  # small weights: the random network stays in a sensible range
        p.data.mul_(0.3)
    return net.eval()


def test_flow_warp_samples_at_pixel_plus_flow():
    x = torch.rand(1, 2, 5, 7)
    flow = torch.zeros(1, 5, 7, 2)
    flow[..., 0], flow[..., 1] = 1.0, 2.0
    out = flow_warp(x, flow)
    torch.testing.assert_close(out[..., :3, :6], x[..., 2:, 1:])
    assert out[..., 3:, :].abs().max() == 0 and out[..., :, 6].abs().max() == 0  # outside: zeros
    half = torch.zeros(1, 5, 7, 2)
    half[..., 0] = 0.5
    torch.testing.assert_close(flow_warp(x, half)[..., :6], (x[..., :6] + x[..., 1:]) / 2)


@pytest.mark.parametrize("w", [64, 48])
def test_spynet_refines_coarse_to_fine_and_rescales_to_the_input_size(w):
    net = SPyNet()
    for p in net.parameters():
        p.data.zero_()
    for level in net.basic_module:
        level.basic_module[-1].conv.bias.data = torch.tensor([1.0, 0.0])
    # each level doubles the coarser flow and adds 1 px: 1, 3, 7, 15, 31, 63 px at the 32-multiple size
    flow = net(torch.rand(1, 3, 32, w), torch.rand(1, 3, 32, w))
    assert flow.shape == (1, 2, 32, w)
    torch.testing.assert_close(flow[:, 0], torch.full((1, 32, w), 63.0 * w / 64))
    assert flow[:, 1].abs().max() == 0


def test_without_residuals_the_network_is_bilinear_upsampling():
    net = _net()
    for m in (net.image_cleaning[1], net.basicvsr.conv_last):
        m.weight.data.zero_()
        m.bias.data.zero_()
    lr = torch.rand(1, 3, 3, 12, 16)
    with torch.no_grad():
        out = net(lr)
    torch.testing.assert_close(out[0], F.interpolate(lr[0], scale_factor=4, mode="bilinear", align_corners=False))


def test_every_output_frame_draws_on_the_whole_sequence():
    torch.manual_seed(0)
    net = RealBasicVSRNet(8, 2, 1).eval()  # default init: a random network attenuates what it propagates, but not to 0
    for p in net.basicvsr.spynet.parameters():  # zero flow: random flows would carry features out of the frame
        p.data.zero_()
    lr = torch.rand(1, 4, 3, 12, 16)
    later_changed = lr.clone()
    later_changed[:, 3] = torch.rand(3, 12, 16)
    with torch.no_grad():
        a, b = net(lr), net(later_changed)
    assert a.shape == (1, 4, 3, 48, 64)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-5  # frame 0 sees frame 3 through backward propagation (exactly 0 if not)
    single = RealBasicVSRNet(8, 2, 1)
    single.load_state_dict(net.state_dict())
    with torch.no_grad():
        alone = single(lr[:, :1])
    assert (alone[:, 0] - a[:, 0]).abs().max() > 1e-4  # and differs from the frame upsampled on its own


def _official_checkpoint(path, ema, other, meta_extra=None):
    """The layout of RealBasicVSR_x4.pth: an mmcv checkpoint of the whole GAN, generator weights twice."""
    state = {f"generator_ema.{k}": v for k, v in ema.state_dict().items()}
    state |= {f"generator.{k}": v for k, v in other.state_dict().items()}
    state |= {
        "discriminator.conv0.weight_orig": torch.rand(64, 3, 3, 3),
        "discriminator.conv0.weight_u": torch.rand(64),
        "step_counter": torch.tensor(300000),
    }
    torch.save(
        {
            "meta": {"mmcv_version": "1.5.0", "config": "model = dict(type='RealBasicVSR')", "iter": 300000, **(meta_extra or {})},
            "state_dict": state,
        },
        path,
    )


def test_the_authors_checkpoint_layout_loads_the_ema_generator(tmp_path):
    ema, other = _net(0), _net(1)
    _official_checkpoint(tmp_path / "RealBasicVSR_x4.pth", ema, other)
    model = RealBasicVSR.from_pretrained(tmp_path / "RealBasicVSR_x4.pth", device=torch.device("cpu"), max_seq_len=3)
    assert (model.net.basicvsr.channels, len(model.net.basicvsr.backward_resblocks.main[2]), len(model.net.image_cleaning[0].main[2])) == (
        8,
        2,
        1,
    )
    for k, v in ema.state_dict().items():
        assert torch.equal(model.net.state_dict()[k], v), k
    frames = torch.rand(5, 3, 12, 16)
    out = model.super_resolve_video(frames)
    assert out.shape == (5, 3, 48, 64) and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():  # chunks of max_seq_len frames, each a sequence of its own
        expected = torch.cat([ema(frames[None, :3])[0], ema(frames[None, 3:])[0]]).clamp(0, 1)
    torch.testing.assert_close(out, expected)


def test_a_wrong_or_unsafe_checkpoint_is_an_error_naming_it(tmp_path):
    ema = _net(0)
    state = {f"generator_ema.{k}": v for k, v in ema.state_dict().items()}
    broken = dict(state)
    del broken["generator_ema.basicvsr.conv_hr.weight"]
    torch.save({"state_dict": broken}, tmp_path / "missing.pth")
    with pytest.raises(DataError, match=r"missing.pth.*basicvsr\.conv_hr\.weight"):
        RealBasicVSR.from_pretrained(tmp_path / "missing.pth", device=torch.device("cpu"))
    torch.save({"state_dict": {k: v for k, v in state.items() if "image_cleaning" not in k}}, tmp_path / "nocleaning.pth")
    with pytest.raises(DataError, match="nocleaning.pth"):
        RealBasicVSR.from_pretrained(tmp_path / "nocleaning.pth", device=torch.device("cpu"))
    wrong = dict(state)
    wrong["generator_ema.basicvsr.conv_hr.bias"] = torch.zeros(5)
    torch.save({"state_dict": wrong}, tmp_path / "wrongshape.pth")
    with pytest.raises(DataError, match=r"wrongshape.pth.*conv_hr\.bias has shape \(5,\)"):
        RealBasicVSR.from_pretrained(tmp_path / "wrongshape.pth", device=torch.device("cpu"))
    # the SPyNet normalisation constants may be left out of a checkpoint
    constants = {k: v for k, v in state.items() if not k.endswith(("spynet.mean", "spynet.std"))}
    torch.save({"state_dict": constants}, tmp_path / "noconstants.pth")
    model = RealBasicVSR.from_pretrained(tmp_path / "noconstants.pth", device=torch.device("cpu"))
    assert torch.equal(model.net.basicvsr.spynet.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    _official_checkpoint(tmp_path / "unsafe.pth", ema, ema, {"hook": copy.Error("a pickled object")})
    with pytest.raises(DataError, match="unsafe.pth.*weights_only"):
        RealBasicVSR.from_pretrained(tmp_path / "unsafe.pth", device=torch.device("cpu"))


def test_without_weights_the_error_says_where_to_put_them(tmp_path):
    for path in (None, tmp_path / "RealBasicVSR_x4.pth"):
        with pytest.raises(ModelUnavailable, match=r"RealBasicVSR_x4\.pth.*sr\.realbasicvsr\.path"):
            RealBasicVSR.from_pretrained(path, device=torch.device("cpu"))
    cfg = config_module.load("params.yaml")
    cfg["supergaussian"]["upsampler"] = "realbasicvsr"
    with pytest.raises(ConfigError, match=r"sr\.realbasicvsr\.path"):
        config_module.validate(cfg)


def test_supergaussian_hands_a_video_model_the_whole_path_in_order(tmp_path):
    ema = _net(0)
    _official_checkpoint(tmp_path / "r.pth", ema, ema)
    model = RealBasicVSR.from_pretrained(tmp_path / "r.pth", device=torch.device("cpu"))
    frames = [(torch.rand(12, 16, 3) * 255).round().byte().numpy() for _ in range(4)]
    views = [SimpleNamespace(name=f"f{i}", hr=SimpleNamespace(height=48, width=64)) for i in range(4)]
    partial = PartialImages(tmp_path / "frames", "key", fault="frames:batch-saved")
    upsample_frames(model, frames, views, SamplerConfig(), [0, 1, 2, 3], 1, partial)
    with torch.no_grad():
        expected = ema(torch.stack([to_float(f).permute(2, 0, 1) for f in frames])[None])[0].clamp(0, 1)
    out = [read_image(partial.dir / f"f{i}.png") for i in range(4)]
    assert np.array_equal(np.stack(out), np.stack([to_uint8(e.permute(1, 2, 0)) for e in expected]))
