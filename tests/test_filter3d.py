"""Mip-Splatting's 3D smoothing filter: against a direct float64 computation, the mass its opacity compensation keeps,
gradients through it, its place in densification, checkpoints and resume, the PLY export, and gsplat on CUDA."""

import math

import numpy as np
import pytest
import torch
from test_trainer import _trainer as trainer_of
from test_trainer import _views

from threedsr.splat import filter3d, gaussians
from threedsr.splat.gaussians import activated, export_ply
from threedsr.splat.render import RenderSettings, render, render_views
from threedsr.splat.trainer import Trainer


def _camera(centre, f, width=64, height=48):
    """(world_to_camera, K) of a camera at `centre` looking along +z, principal point at the image centre."""
    w2c = np.eye(4)
    w2c[:3, 3] = -np.asarray(centre, dtype=np.float64)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return w2c, K


def _direct(point, cameras, variance=0.2):
    """sigma_f by the definition, in float64: max focal / depth over cameras with depth > 0.2 and the projection inside
    the image widened by 15 % on each side."""
    best = 0.0
    for w2c, K, width, height in cameras:
        x, y, z = w2c[:3, :3] @ point + w2c[:3, 3]
        if z <= 0.2:
            continue
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        if -0.15 * width <= u <= 1.15 * width and -0.15 * height <= v <= 1.15 * height:
            best = max(best, K[0, 0] / z)
    return math.sqrt(variance) / best if best else None


def _compute(points, cameras, variance=0.2):
    w2c = torch.tensor(np.stack([c[0] for c in cameras]), dtype=torch.float64)
    K = torch.tensor(np.stack([c[1] for c in cameras]), dtype=torch.float64)
    return filter3d.compute(torch.tensor(points, dtype=torch.float64), w2c, K, [c[2] for c in cameras], [c[3] for c in cameras], variance)


def test_the_filter_is_the_highest_sampling_rate_of_the_cameras_that_see_a_centre():
    a = (*_camera([0, 0, 0], 100.0), 64, 48)  # depth 2 -> rate 50
    b = (*_camera([0, 0, -1], 300.0), 64, 48)  # depth 3 -> rate 100: the highest
    behind = (*_camera([0, 0, 5], 1000.0), 64, 48)  # the point is behind it
    too_near = (*_camera([0, 0, 1.9], 1000.0), 64, 48)  # depth 0.1 < 0.2: does not count
    point = np.array([[0.0, 0.0, 2.0]])
    sigma = _compute(point, [a, b, behind, too_near])
    assert float(sigma[0]) == pytest.approx(math.sqrt(0.2) / 100.0, rel=1e-12)
    assert float(sigma[0]) == pytest.approx(_direct(point[0], [a, b, behind, too_near]), rel=1e-12)
    # the 15 % margin: a centre projecting at u = 1.1 W is seen, at u = 1.2 W it is not
    f, z = 100.0, 2.0
    inside = np.array([[(1.1 * 64 - 32) * z / f, 0.0, z]])
    outside = np.array([[(1.2 * 64 - 32) * z / f, 0.0, z]])
    far_cam = (*_camera([0, 0, -8], 100.0), 64, 48)  # sees both (depth 10): rate 10
    s_in, s_out = _compute(np.concatenate([inside, outside]), [a, far_cam])
    assert float(s_in) == pytest.approx(math.sqrt(0.2) / 50.0) and float(s_out) == pytest.approx(math.sqrt(0.2) / 10.0)
    # random points and cameras: the same as the definition, point by point
    rng = np.random.default_rng(0)
    cams = [(*_camera(rng.normal(size=3) * [1, 1, 0.5] - [0, 0, 4], rng.uniform(50, 200)), 64, 48) for _ in range(5)]
    pts = rng.normal(size=(300, 3)) * [1.5, 1.2, 1.0]
    got = _compute(pts, cams, variance=0.3).numpy()
    want = [_direct(p, cams, 0.3) for p in pts]
    unseen = [w is None for w in want]
    assert any(unseen) and not all(unseen)
    np.testing.assert_allclose(got[~np.array(unseen)], [w for w in want if w is not None], rtol=1e-12)
    # a centre no camera sees gets the widest filter of those seen, as the official code
    np.testing.assert_allclose(got[np.array(unseen)], max(w for w in want if w is not None), rtol=1e-12)


def _isolated(filter_sigma=None):
    """One isotropic Gaussian in front of a camera, opacity 0.2 (alpha stays far below the 0.999 clamp)."""
    p = torch.nn.ParameterDict(
        {
            "means": torch.tensor([[0.0, 0.0, 4.0]], dtype=torch.float64),
            "quats": torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
            "scales": torch.log(torch.tensor([[0.05, 0.08, 0.03]], dtype=torch.float64)),
            "opacities": torch.logit(torch.tensor([0.2], dtype=torch.float64)),
            "sh0": torch.zeros(1, 1, 3, dtype=torch.float64),
            "shN": torch.zeros(1, 0, 3, dtype=torch.float64),
        }
    )
    if filter_sigma is not None:
        p[filter3d.KEY] = torch.nn.Parameter(torch.tensor([filter_sigma], dtype=torch.float64), requires_grad=False)
    return p


def test_opacity_compensation_keeps_the_mass_the_filtered_gaussian_should_have():
    """The rendered alpha summed over pixels is the 2D footprint's integral, 2 pi sqrt(det Sigma'_2d) (o' - 1/255) (alpha
    below 1/255 is skipped: integrating o' e^-q over q < ln(255 o') leaves o' - 1/255): with the filter,
    o' = o sqrt(det Sigma / det(Sigma + s^2 I)) and Sigma' = Sigma + s^2 I; the 3D integral o sqrt(det Sigma) is unchanged."""
    W_, H_, f = 96, 96, 400.0
    w2c, K = torch.eye(4, dtype=torch.float64)[None], torch.tensor([[[f, 0, W_ / 2], [0, f, H_ / 2], [0, 0, 1]]], dtype=torch.float64)
    for sigma in (None, 0.01, 0.05):
        p = _isolated(sigma)
        _, alpha, _ = render(p, w2c, K, W_, H_, 0, "classic", eps2d=0.0)
        a = activated(p)
        s2 = a["scales"][0] ** 2
        J = f / 4.0  # the Gaussian is on the axis at depth 4: the 2D covariance is (f/z)^2 diag(s^2)
        mass = (float(a["opacities"][0]) - 1 / 255) * 2 * math.pi * math.sqrt(float(torch.prod(s2[:2])) * J**4)
        assert float(alpha.sum()) == pytest.approx(mass, rel=0.003), sigma
        three_d = float(a["opacities"][0]) * math.sqrt(float(torch.prod(s2)))
        assert three_d == pytest.approx(0.2 * 0.05 * 0.08 * 0.03, rel=1e-9)  # the compensation keeps the 3D integral
    # a filter much smaller than the Gaussian changes nothing that matters
    _, plain, _ = render(_isolated(), w2c, K, W_, H_, 0, "classic", eps2d=0.0)
    _, tiny, _ = render(_isolated(1e-5), w2c, K, W_, H_, 0, "classic", eps2d=0.0)
    torch.testing.assert_close(plain, tiny, atol=1e-6, rtol=1e-4)


def _gradcheck_scene(n=15, seed=3):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    raw = {
        "quats": torch.randn(n, 4, generator=g, dtype=torch.float64),
        "scales": torch.log(torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.06 + 0.02),
        "opacities": torch.logit(torch.rand(n, generator=g, dtype=torch.float64) * 0.6 + 0.2),
        "sh0": torch.randn(n, 1, 3, generator=g, dtype=torch.float64) * 0.3,
    }
    sigma = torch.rand(n, generator=g, dtype=torch.float64) * 0.03 + 0.005
    w2c = torch.eye(4, dtype=torch.float64)[None]
    w2c[0, 2, 3] = 3.0
    K = torch.tensor([[[30.0, 0, 20], [0, 30.0, 14], [0, 0, 1]]], dtype=torch.float64)
    return means, raw, sigma, w2c, K


def test_gradients_reach_scales_and_opacities_through_the_filter():
    """Finite differences of the rendered image w.r.t. the raw log-scales and logit-opacities, the filter in between."""
    means, raw, sigma, w2c, K = _gradcheck_scene()
    weights = torch.rand(2, 28, 40, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def f(scales, opacities):
        p = {
            "means": means,
            "quats": raw["quats"],
            "scales": scales,
            "opacities": opacities,
            "sh0": raw["sh0"],
            "shN": torch.zeros(len(means), 0, 3, dtype=torch.float64),
            filter3d.KEY: sigma,
        }  # a dict: a ParameterDict would copy
        img, alpha, _ = render(p, w2c, K, 40, 28, 0, "antialiased", eps2d=0.1)
        out = torch.cat([img, alpha], dim=-1)[0]
        return (weights * out).flatten(1).sum(1)

    inputs = [raw["scales"].clone().requires_grad_(True), raw["opacities"].clone().requires_grad_(True)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _trainer(scene, res="lr", **cfg):
    """test_trainer's fit with Mip-Splatting: the 3D filter (recomputed every 10 steps after densification) and the 2D filter."""
    mip = dict(refine_stop=40, filter_3d=True, filter_3d_every=10, rasterize_mode="antialiased", eps2d=0.1)
    return trainer_of(scene, res, **(mip | cfg))


def _fresh_filter(t):
    vs = t.views
    return filter3d.compute(
        t.params["means"].detach(),
        torch.stack([v.world_to_camera for v in vs]),
        torch.stack([v.K for v in vs]),
        [v.width for v in vs],
        [v.height for v in vs],
        t.cfg.filter_3d_variance,
    )


def test_densification_keeps_the_filter_aligned_and_recomputed(tiny_scene):
    t = _trainer(tiny_scene)
    assert torch.equal(t.params[filter3d.KEY], _fresh_filter(t)) and not t.params[filter3d.KEY].requires_grad
    counts = set()
    for step in range(60):
        t.train(step + 1)
        n = len(t.params["means"])
        counts.add(n)
        assert t.params[filter3d.KEY].shape == (n,), step
        if t._filter_due(step):  # right after a densification, or every 10 steps after it stopped
            assert torch.equal(t.params[filter3d.KEY], _fresh_filter(t)), step
    assert len(counts) > 2  # it did split, clone and prune
    assert set(t.optimizers) == set(gaussians.KEYS)  # the filter is not trained


def test_the_filter_follows_the_cameras_a_fit_trains_on(tiny_scene):
    """HR cameras sample 4x more densely: the HR fit's filter is a quarter of the LR fit's."""
    lr, hr = _trainer(tiny_scene, "lr"), _trainer(tiny_scene, "hr")
    torch.testing.assert_close(hr.params[filter3d.KEY], lr.params[filter3d.KEY] / 4, rtol=1e-5, atol=0)
    off = _trainer(tiny_scene, filter_3d=False)
    assert filter3d.KEY not in off.params


def test_checkpoints_and_resume_are_bit_exact_with_the_filter(tiny_scene, tmp_path):
    straight = _trainer(tiny_scene)
    straight.train(60)
    first = _trainer(tiny_scene)
    first.train(25)  # inside densification: the stored filter is not what the moved centres would give now
    first.save(tmp_path / "ckpt.pt")
    resumed = Trainer.load(tmp_path / "ckpt.pt", _views(tiny_scene, "lr"))
    assert torch.equal(resumed.params[filter3d.KEY], first.params[filter3d.KEY])
    resumed.train(60)
    for k in straight.params:
        assert torch.equal(resumed.params[k], straight.params[k]), k
    # rendered from the checkpoint alone, with the settings it was fitted with
    straight.save(tmp_path / "final.pt")
    from threedsr.splat.trainer import load_params

    params, state = load_params(tmp_path / "final.pt")
    assert not params[filter3d.KEY].requires_grad and RenderSettings.of(state["config"]) == RenderSettings(1, "antialiased", 0.1)
    a, _ = render_views(params, tiny_scene.test_views, RenderSettings.of(state["config"]), "cpu")
    b, _ = render_views(straight.params, tiny_scene.test_views, RenderSettings(1, "antialiased", 0.1), "cpu")
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_the_ply_bakes_the_filter_into_scales_and_opacities(tmp_path):
    p = _isolated(0.04)
    export_ply(p, tmp_path / "p.ply")
    raw = (tmp_path / "p.ply").read_bytes()
    header, body = raw.split(b"end_header\n")
    assert b"filter" not in header
    names = [ln.split()[-1].decode() for ln in header.splitlines() if ln.startswith(b"property")]
    row = dict(zip(names, np.frombuffer(body, dtype="<f4")))
    s = np.array([0.05, 0.08, 0.03])
    np.testing.assert_allclose(np.exp([row["scale_0"], row["scale_1"], row["scale_2"]]), np.sqrt(s**2 + 0.04**2), rtol=1e-5)
    o = 0.2 * np.sqrt(np.prod(s**2 / (s**2 + 0.04**2)))
    assert 1 / (1 + np.exp(-row["opacity"])) == pytest.approx(o, rel=1e-5)


@pytest.mark.cuda
def test_a_filtered_model_renders_the_same_on_cpu_and_gsplat_cuda(tiny_scene):
    t = _trainer(tiny_scene, "hr")
    t.train(30)
    settings = RenderSettings.of(t.cfg)
    cpu, cpu_d = render_views(t.params, tiny_scene.test_views, settings, "cpu")
    gpu, gpu_d = render_views(t.params.to("cuda"), tiny_scene.test_views, settings, "cuda")
    for a, b in zip(cpu + cpu_d, gpu + gpu_d):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
