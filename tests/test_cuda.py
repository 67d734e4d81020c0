"""The CUDA path (`pytest -m cuda`; every test here is skipped without a GPU, see conftest.py):
gsplat's kernels against the project's CPU rasterizer on values and gradients, the wrapper handing every
option to gsplat, the fit loop on CUDA against the same loop on the CPU, and the SR models' fp16 path on
CUDA against fp32 on the CPU. `tools/gpu_check.sh` runs them on a GPU machine.

Tolerances are first estimates (no GPU where they were written): float32 on both sides, but gsplat is
built with fast math and sums gradients with atomics, so gradients are compared by relative norm.
"""

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_splat import H, W, _scene

from threedsr.splat.rasterization import rasterization

pytestmark = pytest.mark.cuda

# (rasterize_mode, eps2d): gsplat's default screen-space dilation and a smaller one. The fit cases go through
# `render` -> `activated`, so a model with the 3D filter is the last case of FIT_CASES.
RASTER_CASES = [("classic", 0.3), ("classic", 0.1), ("antialiased", 0.3), ("antialiased", 0.1)]
# (rasterize_mode, eps2d, Mip-Splatting's 3D filter): 3DGS, the 2D Mip filter alone, and the paper presets' Mip-Splatting
FIT_CASES = [("classic", 0.3, False), ("antialiased", 0.1, False), ("antialiased", 0.1, True)]


def _loss_weights(img, alpha, seed=0):
    """Fixed random weights of every output, drawn on the CPU so both devices see the same ones."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(img.shape, generator=g), torch.rand(alpha.shape, generator=g)


def _render_and_grads(fn, device, inputs, viewmats, Ks, **kw):
    xs = [x.detach().to(device).requires_grad_(True) for x in inputs]
    img, alpha, info = fn(*xs, viewmats.to(device), Ks.to(device), W, H, **kw)
    w_img, w_alpha = _loss_weights(img, alpha)
    ((img * w_img.to(device)).sum() + (alpha * w_alpha.to(device)).sum()).backward()
    return img.detach().cpu(), alpha.detach().cpu(), [x.grad.detach().cpu() for x in xs], info


@pytest.mark.parametrize("mode, eps2d", RASTER_CASES)
def test_cpu_rasterizer_matches_gsplat_values_and_gradients(mode, eps2d):
    import gsplat

    means, quats, scales, opacities, _, viewmats, Ks = (x.float() for x in _scene(n=400, seed=11))
    sh = torch.randn(400, 16, 3, generator=torch.Generator().manual_seed(12)) * 0.3
    inputs = (means, quats, scales, opacities, sh)
    kw = dict(sh_degree=3, eps2d=eps2d, rasterize_mode=mode, render_mode="RGB+ED", packed=False)
    cpu_img, cpu_alpha, cpu_grads, _ = _render_and_grads(rasterization, "cpu", inputs, viewmats, Ks, **kw)
    gpu_img, gpu_alpha, gpu_grads, info = _render_and_grads(gsplat.rasterization, "cuda", inputs, viewmats, Ks, **kw)
    assert (info["radii"] > 0).any(dim=-1).sum() > 200 and cpu_alpha.max() > 0.7  # a scene that overlaps
    torch.testing.assert_close(cpu_img, gpu_img, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cpu_alpha, gpu_alpha, atol=1e-5, rtol=1e-5)
    for name, g_cpu, g_gpu in zip(("means", "quats", "scales", "opacities", "sh"), cpu_grads, gpu_grads):
        assert torch.isfinite(g_gpu).all(), name
        rel = ((g_cpu - g_gpu).norm() / g_gpu.norm()).item()
        assert g_gpu.norm() > 0 and rel < 5e-3, f"{name}: |cpu - gsplat| / |gsplat| = {rel:.2e}"


def test_eps2d_changes_the_image():
    """The cases above are distinct: eps2d reaches the projection on both devices."""
    import gsplat

    args = [x.float().cuda() for x in _scene(n=400, seed=11)]
    for mode in ("classic", "antialiased"):
        a, _, _ = gsplat.rasterization(*args, W, H, eps2d=0.3, rasterize_mode=mode)
        b, _, _ = gsplat.rasterization(*args, W, H, eps2d=0.1, rasterize_mode=mode)
        assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("mode, eps2d", RASTER_CASES)
def test_wrapper_hands_every_option_to_gsplat(mode, eps2d, monkeypatch):
    import gsplat

    real, calls = gsplat.rasterization, []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(gsplat, "rasterization", spy)
    args = [x.float().cuda() for x in _scene(n=400, seed=11)]
    img, alpha, info = rasterization(*args, W, H, eps2d=eps2d, rasterize_mode=mode, render_mode="RGB+ED", near_plane=0.02)
    assert len(calls) == 1
    assert {k: calls[0][k] for k in ("eps2d", "rasterize_mode", "render_mode", "near_plane", "packed")} == {
        "eps2d": eps2d,
        "rasterize_mode": mode,
        "render_mode": "RGB+ED",
        "near_plane": 0.02,
        "packed": False,
    }
    ref_img, ref_alpha, _ = real(*args, W, H, eps2d=eps2d, rasterize_mode=mode, render_mode="RGB+ED", near_plane=0.02)
    torch.testing.assert_close(img, ref_img, rtol=0, atol=0)
    assert img.is_cuda and {"means2d", "radii", "gaussian_ids"} <= set(info)


def _model_and_views(seed=0, n=300, sh_degree=1):
    """A random 3DGS (activation space) and two views whose targets are CPU renders of a perturbed copy of it."""
    from threedsr.splat.trainer import TrainView, render

    means, quats, scales, opacities, colors, viewmats, Ks = (x.float() for x in _scene(n=n, seed=seed))
    g = torch.Generator().manual_seed(seed + 1)
    params = torch.nn.ParameterDict(
        {
            "means": means,
            "quats": quats,
            "scales": scales.log(),
            "opacities": torch.logit(opacities),
            "sh0": ((colors - 0.5) / 0.28209479177387814)[:, None],
            "shN": torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=g) * 0.1,
        }
    )
    truth = copy.deepcopy(params)
    with torch.no_grad():
        truth["means"] += torch.randn(means.shape, generator=g) * 0.02
        truth["sh0"] += torch.randn(truth["sh0"].shape, generator=g) * 0.3
        targets, _, _ = render(truth, viewmats, Ks, W, H, sh_degree, "classic", eps2d=0.3)
    views = [TrainView(viewmats[i], Ks[i], W, H, targets[i].clamp(0, 1)) for i in range(len(viewmats))]
    return params, views


@pytest.mark.parametrize("mode, eps2d, filter_3d", FIT_CASES)
def test_fit_loop_on_cuda_follows_the_cpu_one(mode, eps2d, filter_3d):
    from threedsr.splat import filter3d
    from threedsr.splat.trainer import TrainConfig, Trainer

    params, views = _model_and_views()
    cfg = TrainConfig(
        iterations=12, sh_degree=1, sh_degree_interval=1000, refine_start=10_000, rasterize_mode=mode, eps2d=eps2d, filter_3d=filter_3d
    )
    losses = {}
    for device in ("cpu", "cuda"):
        t = Trainer(copy.deepcopy(params), views, cfg, scale=1.0, device=device)
        seq = []
        t.train(cfg.iterations, on_step=lambda _t, loss: seq.append(loss))
        assert all(math.isfinite(x) for x in seq) and t.params["means"].device.type == device
        assert (filter3d.KEY in t.params) == filter_3d
        losses[device] = seq
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)
    assert losses["cuda"][-1] < losses["cuda"][0]


def test_densification_runs_on_cuda():
    """gsplat's DefaultStrategy reads the 2D gradients gsplat's kernels leave in info['means2d']."""
    from threedsr.splat.trainer import TrainConfig, Trainer

    params, views = _model_and_views()
    cfg = TrainConfig(iterations=8, sh_degree=1, refine_start=2, refine_stop=8, refine_every=2, grow_grad2d=1e-9)
    t = Trainer(params, views, cfg, scale=1.0, device="cuda")
    seq = []
    t.train(cfg.iterations, on_step=lambda _t, loss: seq.append(loss))
    assert len(t.params["means"]) > 300 and all(math.isfinite(x) for x in seq)


@pytest.mark.parametrize("name", ["tiny", "stablesr-turbo", "realesrgan"])
def test_sr_fp16_on_cuda_matches_fp32_on_the_cpu(name, tmp_path):
    """Random weights in each loader's layout (tools/random_sr_models.py); fp16 is what `sr.dtype: auto` picks on CUDA."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import random_sr_models as random_models

    from threedsr.sr.load import load_sr_model
    from threedsr.sr.sampling import SamplerConfig

    if name == "tiny":
        options, sampler, tol = {"path": str(random_models.tiny(tmp_path / "tiny"))}, SamplerConfig(steps=4), 5e-3
    elif name == "realesrgan":
        options, sampler, tol = (
            {"path": str(random_models.realesrgan(tmp_path / "r.safetensors")), "tile": 16, "tile_overlap": 4},
            SamplerConfig(),
            5e-3,
        )
    else:  # the converter's tiny layout (tests/data), the official sampler
        config = json.loads((Path(__file__).parent / "data" / "stablesr_tiny_layout.json").read_text())["config"]
        path = random_models.stablesr_turbo(tmp_path / "stablesr", config, dtype=torch.float32)
        options, sampler, tol = {"path": str(path), "tile": 16, "tile_overlap": 8}, SamplerConfig(steps=4, update="ddpm_posterior"), 2e-2
    lr = torch.rand(2, 3, 19, 26, generator=torch.Generator().manual_seed(3))
    cpu = load_sr_model(name, options, torch.device("cpu"))
    gpu = load_sr_model(name, options, torch.device("cuda"))
    assert gpu.dtype == torch.float16
    ref = cpu.super_resolve(lr, sampler, [1, 2])
    out = gpu.super_resolve(lr, sampler, [1, 2])
    assert out.is_cuda and out.shape == ref.shape == (2, 3, 76, 104)
    out = out.float().cpu()
    assert torch.isfinite(out).all()
    err = (out - ref).abs().mean().item()
    assert err < tol, f"{name}: mean |fp16 CUDA - fp32 CPU| = {err:.2e} (tolerance {tol:.0e})"
