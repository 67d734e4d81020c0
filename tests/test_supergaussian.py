"""The SuperGaussian baseline: frames rendered along the smooth path and upsampled, and the HR fit to them."""

import numpy as np
import pytest
import torch

from threedsr.data.scene import PreparedScene
from threedsr.data.trajectory import trajectory_from_json
from threedsr.errors import DataError
from threedsr.imaging import resize, to_float, upsample
from threedsr.io import read_image, read_json
from threedsr.methods.fit import fit, hr_lr_loss
from threedsr.methods.supergaussian import make_frames
from threedsr.methods.training_views import frame_views
from threedsr.splat.render import RenderSettings, render_views
from threedsr.splat.trainer import TrainConfig, load_params, photometric_loss
from threedsr.sr.base import SRModel
from threedsr.sr.sampling import SamplerConfig

# the HR fit, plain 3DGS as the LR model: with Mip-Splatting's filter, recomputed from the HR cameras, 30 steps
# are too few to come back to frames drawn with the LR model's wider filter
PLAIN = {"filter_3d": False, "rasterize_mode": "classic", "eps2d": 0.3}
GS = TrainConfig(iterations=30, sh_degree=1, sh_degree_interval=20, refine_start=100, reset_every=10_000, **PLAIN)


class BicubicUpsampler(SRModel):
    """A test double: ×4 bicubic, so that every frame's expected HR image is known exactly."""

    name = "bicubic-double"

    def __init__(self, meta=None):
        self.meta = meta or {}
        self.calls = 0

    def super_resolve(self, lr, sampler, seeds):
        self.calls += 1
        assert len(seeds) == len(lr)
        return upsample(lr, 4)


def test_frames_are_the_upsampled_lr_renders_along_the_path(small_scene_and_lr_model, tmp_path):
    scene_dir, ckpt = small_scene_and_lr_model
    scene = PreparedScene(scene_dir)
    model = BicubicUpsampler()
    info = make_frames(scene_dir, ckpt, tmp_path / "frames", 2, model, SamplerConfig(), 8, torch.device("cpu"))
    keys = sorted(scene.train_views, key=lambda v: v.name)
    assert info["frames"] == 3 * (len(keys) - 1) + 1 == len(list((tmp_path / "frames" / "hr").glob("*.png")))
    assert model.calls == -(-info["frames"] // 8)
    path = read_json(tmp_path / "frames" / "trajectory.json")
    assert len(path) == info["frames"]
    # a key frame is the LR model's render at that training camera; its HR frame is the upsampler's output of it
    params, state = load_params(ckpt)
    (key,) = render_views(params, [keys[1]], RenderSettings.of(state["config"]), "cpu", "lr")[0]
    lr = to_float(read_image(tmp_path / "frames" / "lr" / "frame_0003.png"))
    assert (lr - key).abs().max() <= 0.5 / 255 + 1e-6
    hr = to_float(read_image(tmp_path / "frames" / "hr" / "frame_0003.png"))
    expected = upsample(lr.permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0)
    assert hr.shape == (48, 64, 3) and (hr - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_a_prior_trained_on_the_scenes_photos_is_refused(small_scene_and_lr_model, tmp_path):
    scene_dir, ckpt = small_scene_and_lr_model
    used = PreparedScene(scene_dir).meta["photos_used"]
    model = BicubicUpsampler({"training": {"photos": [used[0]]}})
    with pytest.raises(DataError, match=used[0]):
        make_frames(scene_dir, ckpt, tmp_path / "frames", 1, model, SamplerConfig(), 8, torch.device("cpu"))
    assert not (tmp_path / "frames").exists()


def test_the_lr_term_sees_the_real_lr_views_only_when_asked(small_scene_and_lr_model, tmp_path):
    scene_dir, ckpt = small_scene_and_lr_model
    scene = PreparedScene(scene_dir)
    make_frames(scene_dir, ckpt, tmp_path / "frames", 1, BicubicUpsampler(), SamplerConfig(), 8, torch.device("cpu"))
    frames = frame_views(scene, tmp_path / "frames", 0.0)
    assert all(v.target is not None and v.lr_target is None and v.width == 64 for v in frames)
    both = frame_views(scene, tmp_path / "frames", 0.5)
    real = both[len(frames) :]
    assert len(real) == len(scene.train_views) and all(
        v.target is None and v.lr_target.shape == (12, 16, 3) and v.width == 64 for v in real
    )
    # for those, L = λ·L_lr(L, down(R)) alone
    render = torch.rand(48, 64, 3)
    expected = 0.5 * photometric_loss(resize(render.permute(2, 0, 1), 12, 16).permute(1, 2, 0), real[0].lr_target, 0.2)
    assert hr_lr_loss(0.5, 0.2)(render, real[0]).item() == pytest.approx(expected.item())

    # the HR fit from the LR model gets closer to the frames
    def frames_loss(params, config):  # each model drawn as it was fitted
        with torch.no_grad():
            path = trajectory_from_json(read_json(tmp_path / "frames" / "trajectory.json"))
            renders = render_views(params, path, RenderSettings.of(config), "cpu")[0]
        return np.mean([photometric_loss(r, v.target, 0.2).item() for r, v in zip(renders, frames)])

    trainer = fit(scene_dir, tmp_path / "sg", GS, both, torch.device("cpu"), init=ckpt, loss_fn=hr_lr_loss(0.5, 0.2))
    assert trainer.step == 30
    lr_params, lr_state = load_params(ckpt)
    assert frames_loss(trainer.params, trainer.cfg) < 0.9 * frames_loss(lr_params, lr_state["config"])
