"""The CPU rasterizer: against a brute-force float64 reference, finite differences, gsplat's
pure-PyTorch projection and SH, gsplat's DefaultStrategy, and (where CUDA exists) gsplat itself."""

import numpy as np
import pytest
import torch

from threedsr.splat.cpu_raster import ALPHA_MAX, ALPHA_THRESHOLD, T_MIN, RasterizeToPixelsCPU
from threedsr.splat.projection import covariance, project
from threedsr.splat.rasterization import rasterization
from threedsr.splat.sh import sh_to_color

W, H = 40, 28


def _projected(img, alpha, seed=0):
    """Three random weightings of all outputs: gradcheck then needs 3 backward passes, not one per pixel."""
    g = torch.Generator().manual_seed(seed)
    w_img = torch.rand((3,) + img.shape, generator=g, dtype=img.dtype)
    w_alpha = torch.rand((3,) + alpha.shape, generator=g, dtype=alpha.dtype)
    return (w_img * img).flatten(1).sum(1) + (w_alpha * alpha).flatten(1).sum(1)


def _scene(n=60, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([0.6, 0.4, 0.3], dtype=dtype)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.08 + 0.02
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.7 + 0.2
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype)[None].repeat(2, 1, 1)
    viewmats[:, 2, 3] = 3.0
    viewmats[1, 0, 3] = 0.2
    Ks = torch.tensor([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]], dtype=dtype)[None].repeat(2, 1, 1)
    return means, quats, scales, opacities, colors, viewmats, Ks


def _reference(means2d, conics, colors, opacities, depths, radii, background):
    """Per-pixel compositing over all Gaussians in depth order, in float64 numpy (no tiles)."""
    C, N = depths.shape
    out = np.zeros((C, H, W, colors.shape[-1]))
    alphas = np.zeros((C, H, W, 1))
    for c in range(C):
        order = [g for g in np.argsort(depths[c], kind="mergesort") if radii[c, g].max() > 0]
        for py in range(H):
            for px in range(W):
                T, acc = 1.0, np.zeros(colors.shape[-1])
                for g in order:
                    d = means2d[c, g] - (px + 0.5, py + 0.5)
                    a, b, cc = conics[c, g]
                    sigma = 0.5 * (a * d[0] ** 2 + cc * d[1] ** 2) + b * d[0] * d[1]
                    alpha = min(ALPHA_MAX, opacities[c, g] * np.exp(-sigma))
                    if sigma < 0 or alpha < ALPHA_THRESHOLD:
                        continue
                    if T * (1 - alpha) <= T_MIN:
                        break
                    acc += colors[c, g] * alpha * T
                    T *= 1 - alpha
                out[c, py, px] = acc + T * background[c]
                alphas[c, py, px, 0] = 1 - T
    return out, alphas


def _reference_of(info, colors, background):
    """_reference for what `rasterization` projected (its info) of per-Gaussian colours, seen by both cameras."""
    return _reference(
        info["means2d"].detach().numpy(),
        info["conics"].detach().numpy(),
        colors[None].expand(2, -1, -1).numpy(),
        info["opacities"].detach().numpy(),
        info["depths"].detach().numpy(),
        info["radii"].numpy(),
        background,
    )


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_matches_brute_force_reference(mode):
    means, quats, scales, opacities, colors, viewmats, Ks = _scene()
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.5, 1.0]], dtype=torch.float64)
    img, alpha, info = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, W, H, backgrounds=bg, rasterize_mode=mode)
    ref_img, ref_alpha = _reference_of(info, colors, bg.numpy())
    assert (info["radii"] > 0).any(dim=-1).sum() > 50
    np.testing.assert_allclose(img.numpy(), ref_img, atol=1e-12)
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=1e-12)
    assert ref_alpha.max() > 0.7  # the scene really overlaps


def test_early_termination_matches_reference():
    """Many opaque layers: compositing stops at T <= 1e-4, exclusive, as gsplat does."""
    means, quats, scales, opacities, colors, viewmats, Ks = _scene(n=80, seed=3)
    scales = scales * 4
    opacities = torch.full_like(opacities, 0.95)
    img, alpha, info = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, W, H)
    ref_img, ref_alpha = _reference_of(info, colors, np.zeros((2, 3)))
    assert ref_alpha.max() > 1 - 2e-4
    np.testing.assert_allclose(img.numpy(), ref_img, atol=1e-12)


@pytest.mark.parametrize("shape", ["needles", "wide", "flat"])
def test_pixel_spans_miss_no_pixel(shape):
    """Each Gaussian is tested only on the pixels of its cutoff ellipse's spans (cpu_raster._row_span): needles across
    many tiles, Gaussians wider than a tile, and nearly flat ones (no spans: rows scanned whole) composite exactly as
    the reference that tests every Gaussian at every pixel."""
    means, quats, scales, opacities, colors, viewmats, Ks = _scene(n=80, seed=8)
    eps2d = 0.3
    if shape == "needles":
        scales = scales * torch.tensor([12.0, 0.05, 0.05], dtype=scales.dtype)
    elif shape == "wide":
        scales = scales * 6
    else:  # no screen-space dilation and, for half of them, a vanishing axis: conics close to singular
        scales[::2] = scales[::2] * torch.tensor([3.0, 1e-6, 1e-6], dtype=scales.dtype)
        eps2d = 0.0
    img, alpha, info = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, W, H, eps2d=eps2d)
    ref_img, ref_alpha = _reference_of(info, colors, np.zeros((2, 3)))
    assert (info["radii"] > 0).any(dim=-1).sum() > 40 and ref_alpha.max() > 0.5
    np.testing.assert_allclose(img.numpy(), ref_img, atol=1e-12)
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=1e-12)


def test_compositing_gradients_match_finite_differences():
    means, quats, scales, opacities, colors, viewmats, Ks = _scene(n=25, seed=1)
    radii, means2d, depths, conics, opac = project(means, covariance(quats, scales), opacities, viewmats, Ks, W, H)
    bg = torch.rand(2, 3, dtype=torch.float64)
    inputs = [x.detach().clone().requires_grad_(True) for x in (means2d, conics, colors[None].expand(2, -1, -1).contiguous(), opac, bg)]

    def f(m, c, col, op, b):
        return _projected(*RasterizeToPixelsCPU.apply(m, c, col, op, b, radii, depths, W, H, 16))

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_end_to_end_gradients_match_finite_differences():
    """Through projection (autograd) and compositing (hand-written backward), SH colours and depth."""
    means, quats, scales, opacities, _, viewmats, Ks = _scene(n=20, seed=2)
    sh = torch.randn(20, 4, 3, dtype=torch.float64) * 0.3

    def f(means, quats, scales, opacities, sh):
        img, alpha, _ = rasterization(
            means, quats, scales, opacities, sh, viewmats, Ks, W, H, sh_degree=1, render_mode="RGB+ED", rasterize_mode="antialiased"
        )
        return _projected(img, alpha)

    inputs = [x.clone().requires_grad_(True) for x in (means, quats, scales, opacities, sh)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_projection_matches_gsplat_torch_impl():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    means, quats, scales, opacities, _, viewmats, Ks = _scene(n=200, seed=4)
    covars = covariance(quats, scales)
    ref_covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(covars, ref_covars)
    _, means2d, depths, conics, opac = project(means, covars, opacities, viewmats, Ks, W, H, antialiased=True)
    ref_radii, ref_means2d, ref_depths, ref_conics, ref_comp = _fully_fused_projection(
        means, covars, viewmats, Ks, W, H, calc_compensations=True
    )
    valid = ref_radii.max(dim=-1).values > 0
    torch.testing.assert_close(means2d[valid], ref_means2d[valid])
    torch.testing.assert_close(depths, ref_depths)
    torch.testing.assert_close(conics[valid], ref_conics[valid])
    torch.testing.assert_close(opac[valid], (opacities[None] * ref_comp)[valid])


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_fused_projection_matches_the_pytorch_definitions(antialiased, degree):
    """cpu_project.ProjectGaussians (numba, hand-written backward) against projection.project, covariance and sh_to_color
    (PyTorch, autograd): outputs and every input's gradient to float64 rounding, with Gaussians whose Jacobian point is
    clamped (large ones beside the image) among them."""
    from threedsr.splat.cpu_project import ProjectGaussians

    means, quats, scales, opacities, _, viewmats, Ks = _scene(n=200, seed=4)
    means[:12, 0] += torch.linspace(-3, 3, 12, dtype=means.dtype)  # beside the field of view ...
    scales[:12] *= 8  # ... and large enough to reach into it
    g = torch.Generator().manual_seed(degree)
    sh = torch.randn(200, 16, 3, generator=g, dtype=torch.float64) * 0.3
    ref_in = [x.clone().requires_grad_(True) for x in (means, quats, scales, opacities, sh)]
    radii, m2, depths, conics, opac = project(
        ref_in[0], covariance(ref_in[1], ref_in[2]), ref_in[3], viewmats, Ks, W, H, 0.1, antialiased=antialiased
    )
    campos = torch.inverse(viewmats)[:, :3, 3]
    colors = torch.clamp_min(sh_to_color(degree, ref_in[0][None] - campos[:, None], ref_in[4][None].expand(2, -1, -1, -1)) + 0.5, 0.0)
    ref = (m2, depths, conics, opac, colors)
    new_in = [x.clone().requires_grad_(True) for x in (means, quats, scales, opacities, sh)]
    new_radii, *new = ProjectGaussians.apply(*new_in, viewmats, Ks, W, H, 0.1, 0.01, 1e10, 0.0, antialiased, degree)
    assert torch.equal(new_radii, radii)
    valid = (radii > 0).any(dim=-1)
    tz, tx = depths.detach(), (torch.einsum("cij,nj->cni", viewmats[:, :3, :3], means) + viewmats[:, None, :3, 3])[..., 0]
    assert ((tx / tz).abs() > 1.3 * W / 2 / Ks[:, 0, 0, None])[valid].sum() >= 2  # some Jacobians are clamped
    for a, b in zip(ref, new):
        torch.testing.assert_close(b[valid], a[valid], rtol=1e-12, atol=1e-12)
    weights = [torch.randn(x.shape, generator=g, dtype=torch.float64) * valid.reshape(valid.shape + (1,) * (x.dim() - 2)) for x in ref]
    for a, b in zip(torch.autograd.grad(ref, ref_in, weights), torch.autograd.grad(new, new_in, weights)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_impl(degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(100, 3, generator=g, dtype=torch.float64)
    coeffs = torch.randn(100, 16, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(sh_to_color(degree, dirs, coeffs), _spherical_harmonics(degree, dirs, coeffs))


def test_info_feeds_gsplat_default_strategy():
    from gsplat.strategy import DefaultStrategy

    means, quats, scales, opacities, colors, viewmats, Ks = (x.float() for x in _scene(n=200, seed=5))
    params = torch.nn.ParameterDict(
        {"means": means, "quats": quats, "scales": scales.log(), "opacities": torch.logit(opacities), "colors": colors}
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=2, grow_grad2d=1e-9)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    for step in range(3):
        img, _, info = rasterization(
            params["means"],
            params["quats"],
            params["scales"].exp(),
            torch.sigmoid(params["opacities"]),
            params["colors"],
            viewmats,
            Ks,
            W,
            H,
        )
        strategy.step_pre_backward(params, optimizers, state, step, info)
        img.mean().backward()
        strategy.step_post_backward(params, optimizers, state, step, info)
    assert len(params["means"]) > 200  # the 2D gradients reached the strategy, which densified


@pytest.mark.cuda  # skipped without a GPU (conftest.py); tests/test_cuda.py has the gradients and eps2d
def test_cpu_backend_matches_gsplat_cuda():
    import gsplat

    args = [x.float() for x in _scene(n=500, seed=6)]
    for mode in ("classic", "antialiased"):
        cpu_img, cpu_alpha, _ = rasterization(*args, W, H, rasterize_mode=mode, render_mode="RGB+ED")
        gpu_img, gpu_alpha, _ = gsplat.rasterization(
            *(x.cuda() for x in args), W, H, rasterize_mode=mode, render_mode="RGB+ED", packed=False
        )
        torch.testing.assert_close(cpu_img, gpu_img.cpu(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cpu_alpha, gpu_alpha.cpu(), atol=1e-5, rtol=1e-5)


def _one_step(strategy, step):
    means, quats, scales, opacities, colors, viewmats, Ks = (x.float() for x in _scene(n=50, seed=7))
    params = torch.nn.ParameterDict(
        {
            "means": means,
            "quats": quats,
            "scales": scales.log(),
            "opacities": torch.logit(torch.full_like(opacities, 0.9)),
            "colors": colors,
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    state = strategy.initialize_state()
    img, _, info = rasterization(
        params["means"], params["quats"], params["scales"].exp(), torch.sigmoid(params["opacities"]), params["colors"], viewmats, Ks, W, H
    )
    strategy.step_pre_backward(params, optimizers, state, step, info)
    img.mean().backward()
    strategy.step_post_backward(params, optimizers, state, step, info)
    return torch.sigmoid(params["opacities"]).max().item()


def test_opacity_reset_happens_as_documented():
    from gsplat.strategy import DefaultStrategy

    from threedsr.splat.strategy import OpacityResetStrategy

    kw = dict(refine_start_iter=10_000, reset_every=4, prune_opa=0.005)
    assert _one_step(OpacityResetStrategy(**kw), step=4) == pytest.approx(0.01, rel=1e-4)
    assert _one_step(OpacityResetStrategy(**kw), step=5) > 0.89  # only every reset_every steps
    # the upstream precedence bug this works around (if gsplat fixes it, this line says so)
    assert _one_step(DefaultStrategy(**kw), step=4) > 0.89
