"""SSIM as the loss uses it, fused on the CPU: one numba pass for the value and one for its gradient.

The same definition as pytorch_msssim's `ssim(x, y, data_range=1, size_average=True)` (Wang et al. 2004 with an 11-tap
Gaussian window of sigma 1.5 applied separably, 'valid' borders, K = (0.01, 0.03), the mean over every pixel of every
channel of every image), which the loss calls on CUDA. On the CPU pytorch_msssim runs ten grouped convolutions and
their autograd graph per call; here each image plane is filtered once for its five moments and the gradient, whose
terms are computed with the value, is one adjoint filtering of three maps (as in the fused-SSIM CUDA kernels of
3DGS trainers). Sums are taken in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numba import njit, prange
from pytorch_msssim import ssim as msssim_ssim

WIN, SIGMA = 11, 1.5
C1, C2 = 0.01**2, 0.03**2


@functools.cache
def _window() -> np.ndarray:
    """pytorch_msssim's 1-D window (`_fspecial_gauss_1d`, computed in float32), as float64 (computed once; read only)."""
    coords = torch.arange(WIN, dtype=torch.float) - WIN // 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    return (g / g.sum()).double().numpy()


@njit(cache=True)
def _filter_rows(src, g, out):
    """out[i, j] = sum_k g[k] src[i, j + k] (valid along the rows)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            acc = 0.0
            for k in range(g.shape[0]):
                acc += g[k] * src[i, j + k]
            out[i, j] = acc


@njit(cache=True)
def _adjoint(src, g, tmp, out):
    """The adjoint of the valid separable filter: out (H, W) = G^T src (H - K + 1, W - K + 1); tmp is (H, W - K + 1)."""
    K = g.shape[0]
    tmp[:] = 0.0
    for i in range(src.shape[0]):
        for k in range(K):
            for j in range(src.shape[1]):
                tmp[i + k, j] += g[k] * src[i, j]
    out[:] = 0.0
    for i in range(tmp.shape[0]):
        for j in range(tmp.shape[1]):
            v = tmp[i, j]
            for k in range(K):
                out[i, j + k] += g[k] * v


@njit(parallel=True, cache=True)
def ssim_forward(x, y, g, sums, d_mu, d_xx, d_xy):
    """Per plane p of x, y (P, H, W): the sum of its SSIM map (sums[p]) and the map's derivatives with respect to
    the filtered x, x*x and x*y (d_mu, d_xx, d_xy, each (P, H - K + 1, W - K + 1))."""
    P, H, W = x.shape
    K = g.shape[0]
    Ho, Wo = H - K + 1, W - K + 1
    for p in prange(P):
        src = np.empty((5, H, W))
        for i in range(H):
            for j in range(W):
                a, b = float(x[p, i, j]), float(y[p, i, j])
                src[0, i, j], src[1, i, j], src[2, i, j], src[3, i, j], src[4, i, j] = a, b, a * a, b * b, a * b
        rows = np.empty((H, Wo))
        m = np.empty((5, Ho, Wo))
        for q in range(5):
            _filter_rows(src[q], g, rows)
            _filter_rows(rows.T, g, m[q].T)  # the same filter along the columns
        total = 0.0
        for i in range(Ho):
            for j in range(Wo):
                mu1, mu2 = m[0, i, j], m[1, i, j]
                s11, s22, s12 = m[2, i, j] - mu1 * mu1, m[3, i, j] - mu2 * mu2, m[4, i, j] - mu1 * mu2
                a1, b1 = 2.0 * mu1 * mu2 + C1, mu1 * mu1 + mu2 * mu2 + C1
                a2, b2 = 2.0 * s12 + C2, s11 + s22 + C2
                total += a1 * a2 / (b1 * b2)
                # d ssim / d (mu1, s11, s12), then through s11 = E[xx] - mu1^2 and s12 = E[xy] - mu1 mu2
                dmu = 2.0 * mu2 * a2 / (b1 * b2) - 2.0 * mu1 * a1 * a2 / (b1 * b1 * b2)
                ds11 = -a1 * a2 / (b1 * b2 * b2)
                ds12 = 2.0 * a1 / (b1 * b2)
                d_mu[p, i, j] = dmu - 2.0 * mu1 * ds11 - mu2 * ds12
                d_xx[p, i, j] = ds11
                d_xy[p, i, j] = ds12
        sums[p] = total


@njit(parallel=True, cache=True)
def ssim_backward(x, y, g, d_mu, d_xx, d_xy, scale, v_x):
    """v_x = scale * (G^T d_mu + 2 x G^T d_xx + y G^T d_xy), per plane."""
    P, H, W = x.shape
    for p in prange(P):
        tmp = np.empty((H, d_mu.shape[2]))
        a, b, c = np.empty((H, W)), np.empty((H, W)), np.empty((H, W))
        _adjoint(d_mu[p], g, tmp, a)
        _adjoint(d_xx[p], g, tmp, b)
        _adjoint(d_xy[p], g, tmp, c)
        for i in range(H):
            for j in range(W):
                v_x[p, i, j] = scale * (a[i, j] + 2.0 * float(x[p, i, j]) * b[i, j] + float(y[p, i, j]) * c[i, j])


class _FusedSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        n, ch, h, w = x.shape
        xs = x.detach().reshape(n * ch, h, w).contiguous().numpy()
        ys = y.detach().to(x.dtype).reshape(n * ch, h, w).contiguous().numpy()
        g = _window()
        shape = (n * ch, h - WIN + 1, w - WIN + 1)
        sums, d_mu, d_xx, d_xy = np.empty(n * ch), np.empty(shape), np.empty(shape), np.empty(shape)
        ssim_forward(xs, ys, g, sums, d_mu, d_xx, d_xy)
        count = n * ch * shape[1] * shape[2]
        ctx.saved = (xs, ys, g, d_mu, d_xx, d_xy, count, x.shape, x.dtype)
        return torch.tensor(sums.sum() / count, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        xs, ys, g, d_mu, d_xx, d_xy, count, shape, dtype = ctx.saved
        v_x = np.empty(xs.shape, dtype=xs.dtype)
        ssim_backward(xs, ys, g, d_mu, d_xx, d_xy, float(grad) / count, v_x)
        return torch.from_numpy(v_x).reshape(shape).to(dtype), None


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of (N, C, H, W) images in [0, 1] against the fixed `y`: the fused pass on the CPU, pytorch_msssim
    elsewhere (and where `y` needs a gradient or the images are smaller than the window)."""
    if x.is_cuda or y.requires_grad or min(x.shape[-2:]) < WIN:
        return msssim_ssim(x, y, data_range=1.0, size_average=True)
    return _FusedSSIM.apply(x, y)
