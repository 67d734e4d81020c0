"""Fitting 3DGS on the CPU: the loss falls, a resumed run equals an uninterrupted one, the PLY is standard."""

import numpy as np
import pytest
import torch

from threedsr.imaging import to_float
from threedsr.methods.training_views import train_view
from threedsr.splat.gaussians import export_ply, init_from_points
from threedsr.splat.trainer import TrainConfig, Trainer, photometric_loss, render, scene_scale


def _views(scene, res="lr"):
    """The training views with their images at "lr" or "hr" (torch tensors as the trainer wants them)."""
    return [train_view(v, res, to_float(scene.image(v, res))) for v in scene.train_views]


SCHEDULE = dict(iterations=60, sh_degree=1, sh_degree_interval=20, refine_start=10, refine_every=10, reset_every=30, refine_stop=50)


def _trainer(scene, res="lr", **cfg):
    xyz, rgb = scene.points()
    config = TrainConfig(**(SCHEDULE | cfg))
    return Trainer(init_from_points(xyz, rgb, 1), _views(scene, res), config, scene_scale([v.world_to_camera for v in scene.train_views]))


def _mean_loss(t, views):
    with torch.no_grad():
        return np.mean(
            [
                photometric_loss(
                    render(t.params, v.world_to_camera[None], v.K[None], v.width, v.height, 1, "classic", eps2d=0.3)[0][0], v.target, 0.2
                ).item()
                for v in views
            ]
        )


def test_training_reduces_the_loss(tiny_scene):
    t = _trainer(tiny_scene, reset_every=1000)
    before = _mean_loss(t, t.views)
    t.train(60)
    assert t.step == 60
    assert _mean_loss(t, t.views) < 0.6 * before


def test_resumed_training_equals_uninterrupted(tiny_scene, tmp_path):
    straight = _trainer(tiny_scene)
    straight.train(60)
    first = _trainer(tiny_scene)
    first.train(25)  # past a densification and before the opacity reset
    first.save(tmp_path / "ckpt.pt")
    resumed = Trainer.load(tmp_path / "ckpt.pt", _views(tiny_scene))
    assert resumed.step == 25
    resumed.train(60)
    assert len(resumed.params["means"]) == len(straight.params["means"]) != len(tiny_scene.points()[0])
    for k in straight.params:
        assert torch.equal(resumed.params[k], straight.params[k]), k


def test_checkpoint_loads_with_weights_only(tiny_scene, tmp_path):
    t = _trainer(tiny_scene)
    t.train(3)
    t.save(tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    stored_filter = {"filter_3d"} if t.cfg.filter_3d else set()  # Mip-Splatting's 3D filter (the default) is part of the model
    assert ckpt["step"] == 3 and set(ckpt["params"]) == {"means", "scales", "quats", "opacities", "sh0", "shN"} | stored_filter


def test_ply_export_has_the_3dgs_layout(tmp_path):
    xyz = np.random.default_rng(0).normal(size=(50, 3))
    params = init_from_points(xyz, np.full((50, 3), 128), sh_degree=3)
    export_ply(params, tmp_path / "point_cloud.ply")
    raw = (tmp_path / "point_cloud.ply").read_bytes()
    header, body = raw.split(b"end_header\n")
    props = [line.split()[-1] for line in header.decode().splitlines() if line.startswith("property")]
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert props[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.frombuffer(body, dtype="<f4").reshape(50, 62)
    np.testing.assert_allclose(data[:, :3], xyz, rtol=1e-6)


def _killed_fit(scene, out, cfg, views, monkeypatch, at=25):
    """fit() killed after step `at` (resume.pt written every 20 steps)."""
    from threedsr.methods.fit import fit

    real = Trainer.train

    def dying(self, until, **kw):
        real(self, at, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        fit(scene.root, out, cfg, views, torch.device("cpu"), checkpoint_every=20)
    monkeypatch.setattr(Trainer, "train", real)


def test_a_killed_fit_resumes_from_its_last_checkpoint(tiny_scene, tmp_path, monkeypatch):
    from threedsr.methods.fit import fit
    from threedsr.methods.training_views import lr_views

    cfg = _trainer(tiny_scene).cfg
    straight = fit(tiny_scene.root, tmp_path / "straight", cfg, lr_views(tiny_scene), torch.device("cpu"))
    _killed_fit(tiny_scene, tmp_path / "killed", cfg, lr_views(tiny_scene), monkeypatch)
    # what the killed job left behind: resume.pt, and no ckpt.pt
    assert (tmp_path / "killed" / "resume.pt").exists() and not (tmp_path / "killed" / "ckpt.pt").exists()
    resumed = fit(tiny_scene.root, tmp_path / "killed", cfg, lr_views(tiny_scene), torch.device("cpu"))
    for k in straight.params:
        assert torch.equal(resumed.params[k], straight.params[k]), k
    assert (tmp_path / "killed" / "ckpt.pt").exists() and not (tmp_path / "killed" / "resume.pt").exists()


def test_a_resume_point_for_other_targets_is_not_used(tiny_scene, tmp_path, monkeypatch, caplog):
    from dataclasses import replace as dc_replace

    from threedsr.methods.fit import fit
    from threedsr.methods.training_views import lr_views

    cfg = _trainer(tiny_scene).cfg
    _killed_fit(tiny_scene, tmp_path / "out", cfg, lr_views(tiny_scene), monkeypatch)
    other = [dc_replace(v, target=v.target.flip(1)) for v in lr_views(tiny_scene)]  # the same settings, other images
    t = fit(tiny_scene.root, tmp_path / "out", cfg, other, torch.device("cpu"))
    assert "other settings, targets" in caplog.text and t.step == cfg.iterations


def test_a_stale_resume_checkpoint_is_not_used(tiny_scene, tmp_path, caplog):
    from dataclasses import replace

    from threedsr.methods.fit import fit
    from threedsr.methods.training_views import lr_views

    partial = _trainer(tiny_scene)
    partial.train(20)
    (tmp_path / "out").mkdir()
    partial.save(tmp_path / "out" / "resume.pt")
    t = fit(
        tiny_scene.root, tmp_path / "out", replace(partial.cfg, iterations=30, delta_dssim=0.5), lr_views(tiny_scene), torch.device("cpu")
    )
    assert "other settings" in caplog.text and t.step == 30


def test_a_truncated_checkpoint_is_an_error_naming_it(tiny_scene, tmp_path):
    from threedsr.errors import DataError
    from threedsr.splat.trainer import load_params

    t = _trainer(tiny_scene)
    t.save(tmp_path / "ckpt.pt")
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "ckpt.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{tmp_path / 'ckpt.pt'}: truncated, corrupt or not a checkpoint"):
        load_params(tmp_path / "ckpt.pt")
    (tmp_path / "foreign.pt").write_bytes(b"PK\x03\x04 not a checkpoint at all")
    with pytest.raises(DataError, match="foreign.pt"):
        Trainer.load(tmp_path / "foreign.pt", _views(tiny_scene))
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "other.pt")  # a torch file from another project
    with pytest.raises(DataError, match=r"other.pt: not a checkpoint of this project \(no 'params', 'config'\); delete it"):
        load_params(tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"other.pt: not a checkpoint of this project \(no 'step'"):
        Trainer.load(tmp_path / "other.pt", _views(tiny_scene))


def test_a_truncated_resume_point_is_set_aside_and_the_fit_starts_over(tiny_scene, tmp_path, caplog):
    from threedsr.methods.fit import fit
    from threedsr.methods.training_views import lr_views

    partial = _trainer(tiny_scene)
    partial.train(20)
    (tmp_path / "out").mkdir()
    partial.save(tmp_path / "out" / "resume.pt")
    data = (tmp_path / "out" / "resume.pt").read_bytes()
    (tmp_path / "out" / "resume.pt").write_bytes(data[:1000])  # a kill or a full disk in the middle of a write
    t = fit(tiny_scene.root, tmp_path / "out", partial.cfg, lr_views(tiny_scene), torch.device("cpu"))
    assert t.step == partial.cfg.iterations and "starting over" in caplog.text
    assert (tmp_path / "out" / "resume.pt.corrupt").exists() and (tmp_path / "out" / "ckpt.pt").exists()
