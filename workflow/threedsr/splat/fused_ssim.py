"""SSIM as the loss uses it, fused on the CPU: one numba pass for the value and one for its gradient.

The same definition as pytorch_msssim's `ssim(x, y, data_range=1, size_average=True)` (Wang et al. 2004 with an 11-tap
Gaussian window of sigma 1.5 applied separably, 'valid' borders, K = (0.01, 0.03), the mean over every pixel of every
channel of every image), which the loss calls on CUDA. On the CPU pytorch_msssim runs ten grouped convolutions and
their autograd graph per call; here one pass filters the five moments and computes the map and its derivatives, row
by row of the map, and the gradient, whose terms are computed with the value, is one adjoint filtering of three maps
(as in the fused-SSIM CUDA kernels of 3DGS trainers). Every loop runs along an image row, so it vectorises, and the
rows are the threads' work. Sums are taken in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numba import njit, prange
from pytorch_msssim import ssim as msssim_ssim

from .kernel_cache import install

install()  # before the kernels below are defined: their compiled code is cached per machine (kernel_cache.py)

WIN, SIGMA = 11, 1.5
C1, C2 = 0.01**2, 0.03**2


@functools.cache
def _window() -> np.ndarray:
    """pytorch_msssim's 1-D window (`_fspecial_gauss_1d`, computed in float32), as float64 (computed once; read only)."""
    coords = torch.arange(WIN, dtype=torch.float) - WIN // 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    return (g / g.sum()).double().numpy()


@njit(parallel=True, cache=True)
def ssim_forward(x, y, g, row_sums, d_mu, d_xx, d_xy):
    """Per output row t = (plane p, row i) of the SSIM map of x, y (P, H, W): the sum of its values (row_sums[t]) and
    the map's derivatives with respect to the filtered x, x*x and x*y (d_mu, d_xx, d_xy, each (P, H - K + 1, W - K + 1)).
    Each row filters its K input rows down the columns, then along the row: both loops run along the row, so they
    vectorise, and rows are independent work for the threads."""
    P, H, W = x.shape
    K = g.shape[0]
    Ho, Wo = H - K + 1, W - K + 1
    for t in prange(P * Ho):
        p, i = t // Ho, t % Ho
        # the five moments' images filtered down the columns at this row (separate arrays: the loops vectorise)
        v0, v1, v2, v3, v4 = np.zeros(W), np.zeros(W), np.zeros(W), np.zeros(W), np.zeros(W)
        for k in range(K):
            gk = g[k]
            xr, yr = x[p, i + k], y[p, i + k]
            for j in range(W):
                a, b = float(xr[j]), float(yr[j])
                v0[j] += gk * a
                v1[j] += gk * b
                v2[j] += gk * (a * a)
                v3[j] += gk * (b * b)
                v4[j] += gk * (a * b)
        # ... and along the row
        m0, m1, m2, m3, m4 = np.zeros(Wo), np.zeros(Wo), np.zeros(Wo), np.zeros(Wo), np.zeros(Wo)
        for k in range(K):
            gk = g[k]
            for j in range(Wo):
                m0[j] += gk * v0[j + k]
                m1[j] += gk * v1[j + k]
                m2[j] += gk * v2[j + k]
                m3[j] += gk * v3[j + k]
                m4[j] += gk * v4[j + k]
        s = np.empty(Wo)  # the SSIM map's row
        dm, dxx, dxy = d_mu[p, i], d_xx[p, i], d_xy[p, i]
        for j in range(Wo):
            mu1, mu2 = m0[j], m1[j]
            s11, s22, s12 = m2[j] - mu1 * mu1, m3[j] - mu2 * mu2, m4[j] - mu1 * mu2
            a1, b1 = 2.0 * mu1 * mu2 + C1, mu1 * mu1 + mu2 * mu2 + C1
            a2, b2 = 2.0 * s12 + C2, s11 + s22 + C2
            s[j] = a1 * a2 / (b1 * b2)
            # d ssim / d (mu1, s11, s12), then through s11 = E[xx] - mu1^2 and s12 = E[xy] - mu1 mu2
            dmu = 2.0 * mu2 * a2 / (b1 * b2) - 2.0 * mu1 * a1 * a2 / (b1 * b1 * b2)
            ds11 = -a1 * a2 / (b1 * b2 * b2)
            ds12 = 2.0 * a1 / (b1 * b2)
            dm[j] = dmu - 2.0 * mu1 * ds11 - mu2 * ds12
            dxx[j] = ds11
            dxy[j] = ds12
        total = 0.0
        for j in range(Wo):
            total += s[j]
        row_sums[t] = total


@njit(parallel=True, cache=True)
def ssim_backward(x, y, g, d_mu, d_xx, d_xy, scale, v_x):
    """v_x = scale * (G^T d_mu + 2 x G^T d_xx + y G^T d_xy), per plane; G^T (the adjoint of the valid separable
    filter) along the rows of the derivatives' maps, then down the columns, both row by row."""
    P, H, W = x.shape
    K = g.shape[0]
    Ho, Wo = d_mu.shape[1], d_mu.shape[2]
    h0, h1, h2 = np.zeros((P, Ho, W)), np.zeros((P, Ho, W)), np.zeros((P, Ho, W))
    for t in prange(P * Ho):
        p, i = t // Ho, t % Ho
        a, b, c = d_mu[p, i], d_xx[p, i], d_xy[p, i]
        r0, r1, r2 = h0[p, i], h1[p, i], h2[p, i]
        for k in range(K):
            gk = g[k]
            for j in range(Wo):
                r0[j + k] += gk * a[j]
                r1[j + k] += gk * b[j]
                r2[j + k] += gk * c[j]
    for t in prange(P * H):
        p, i = t // H, t % H
        o0, o1, o2 = np.zeros(W), np.zeros(W), np.zeros(W)
        for k in range(max(0, i - Ho + 1), min(K, i + 1)):  # the map's rows i - k that the filter took row i into
            gk = g[k]
            r0, r1, r2 = h0[p, i - k], h1[p, i - k], h2[p, i - k]
            for j in range(W):
                o0[j] += gk * r0[j]
                o1[j] += gk * r1[j]
                o2[j] += gk * r2[j]
        xr, yr, out = x[p, i], y[p, i], v_x[p, i]
        for j in range(W):
            out[j] = scale * (o0[j] + 2.0 * float(xr[j]) * o1[j] + float(yr[j]) * o2[j])


class _FusedSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        n, ch, h, w = x.shape
        xs = x.detach().reshape(n * ch, h, w).contiguous().numpy()
        ys = y.detach().to(x.dtype).reshape(n * ch, h, w).contiguous().numpy()
        g = _window()
        shape = (n * ch, h - WIN + 1, w - WIN + 1)
        sums, d_mu, d_xx, d_xy = np.empty(n * ch * shape[1]), np.empty(shape), np.empty(shape), np.empty(shape)
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


def fused_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of (N, C, H, W) images in [0, 1] against the fixed `y`: the fused pass on the CPU, pytorch_msssim
    elsewhere (and where `y` needs a gradient or the images are smaller than the window)."""
    if x.is_cuda or y.requires_grad or min(x.shape[-2:]) < WIN:
        return msssim_ssim(x, y, data_range=1.0, size_average=True)
    return _FusedSSIM.apply(x, y)
