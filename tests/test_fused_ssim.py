"""The loss's fused SSIM (numba, CPU) against pytorch_msssim, which defines it (and runs it on CUDA)."""

import pytest
import torch
from pytorch_msssim import ssim as reference

from threedsr.splat.fused_ssim import fused_ssim


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(1, 3, 48, 64), (2, 3, 37, 29)])
def test_value_and_gradient_match_pytorch_msssim(dtype, tol, shape):
    g = torch.Generator().manual_seed(shape[2])
    y = torch.rand(shape, generator=g, dtype=dtype)
    x = (y + 0.2 * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a = reference(xa, y, data_range=1.0, size_average=True)
    b = fused_ssim(xb, y)
    (ga,) = torch.autograd.grad(3 * a, xa)
    (gb,) = torch.autograd.grad(3 * b, xb)
    assert b.dtype == dtype and gb.dtype == dtype
    torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    torch.testing.assert_close(gb, ga, rtol=tol, atol=tol * float(ga.abs().max()))


def test_channels_last_views_and_identical_images():
    """The loss passes permuted (H, W, 3) renders; SSIM of an image with itself is 1 with a zero gradient."""
    img = torch.rand(1, 40, 50, 3, dtype=torch.float64)
    x = img.clone().requires_grad_(True)
    value = fused_ssim(x.permute(0, 3, 1, 2), img.permute(0, 3, 1, 2))
    (grad,) = torch.autograd.grad(value, x)
    assert float(value) == pytest.approx(1.0, abs=1e-12)
    assert float(grad.abs().max()) < 1e-10


def test_small_images_and_targets_with_gradients_use_pytorch_msssim():
    y = torch.rand(1, 3, 8, 8)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    with pytest.warns(UserWarning, match="Skipping Gaussian Smoothing"):
        assert torch.equal(fused_ssim(x, y), reference(x, y, data_range=1.0, size_average=True))
    y2 = torch.rand(1, 3, 20, 20, requires_grad=True)
    x2 = torch.rand(1, 3, 20, 20)
    assert fused_ssim(x2, y2).grad_fn is not None and "Fused" not in type(fused_ssim(x2, y2).grad_fn).__name__
