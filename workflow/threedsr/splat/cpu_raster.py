"""Tile-based alpha compositing of projected Gaussians on the CPU (numba), forward and backward.

The same rules as gsplat's CUDA kernels (RasterizeToPixels3DGS{Fwd,Bwd}): per 16x16 tile, the
Gaussians whose bounding box touches it in front-to-back depth order; per pixel (centre at +0.5)
sigma = 1/2 d^T conic d, alpha = min(0.999, opacity * exp(-sigma)); Gaussians with sigma < 0 or
alpha < 1/255 are skipped; compositing stops before the Gaussian that would bring the
transmittance to 1e-4 or below. The backward pass walks each pixel's list back to front from the
saved final transmittance; gradients are summed in a fixed order, so training is deterministic.

Where the time goes (benchmarks/step_profile.py, docs/speed.md): each Gaussian is tested only on the pixels of
its cutoff ellipse (the tile rows it reaches and, per row, the span of columns, which the forward pass keeps for the
backward), not on every pixel of its tile.
Both passes treat a tile row's pixels as the lanes of vector loops, one Gaussian at a time (front to back in the
forward pass, back to front in the backward), in the images' dtype (float32 in training, as gsplat's kernels;
float64 where the inputs are, as in the tests), with exp written out (`_exp_neg`) so the loops vectorise; the
backward pass's sums over a row's pixels are vector reductions (fastmath `reassoc`), in an order fixed by the code,
not the threads.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .cpu_project import to_numpy
from .kernel_cache import install

install()  # before the kernels below are defined: their compiled code is cached per machine (kernel_cache.py)

ALPHA_MAX = 0.999
ALPHA_THRESHOLD = 1.0 / 255.0
T_MIN = 1e-4


@njit(cache=True)
def tile_grid(width, height, tile):
    """Tiles per image row, per image column and per image (gsplat's info["tile_width"], ["tile_height"], and their
    product)."""
    tw, th = (width + tile - 1) // tile, (height + tile - 1) // tile
    return tw, th, tw * th


@njit(cache=True)
def _tile_pixels(t, tw, per_img, tile, width, height):
    """Tile t's image and pixels [x0, x1) x [y0, y1) (tiles numbered image by image, row by row)."""
    i, tx, ty = t // per_img, (t % per_img) % tw, (t % per_img) // tw
    return i, tx * tile, min(width, tx * tile + tile), ty * tile, min(height, ty * tile + tile)


@njit(cache=True)
def _tile_rect(mean, radius, tile, tw, th):
    """Tiles [x0, x1) x [y0, y1) touched by the bounding box mean +- radius."""
    x0 = max(0, int(np.floor((mean[0] - radius[0]) / tile)))
    x1 = min(tw, int(np.ceil((mean[0] + radius[0]) / tile)))
    y0 = max(0, int(np.floor((mean[1] - radius[1]) / tile)))
    y1 = min(th, int(np.ceil((mean[1] + radius[1]) / tile)))
    return x0, x1, y0, y1


def bin_gaussians(means2d, radii, depths, width, height, tile):
    """CSR lists of Gaussian ids per (image, tile), sorted by depth: (offsets, ids). Ties keep the Gaussians' order
    (a stable sort: numpy's is 2-3x numba's mergesort and gives the same permutation)."""
    order = np.argsort(depths, axis=1, kind="stable")
    return _bin_sorted(means2d, radii, order, width, height, tile)


@njit(cache=True)
def _bin_sorted(means2d, radii, order, width, height, tile):
    """bin_gaussians once each image's Gaussians are in depth order: count the tiles each touches, then fill."""
    n_img, n = radii.shape[0], radii.shape[1]
    tw, th, per_img = tile_grid(width, height, tile)
    counts = np.zeros(n_img * per_img + 1, dtype=np.int64)
    rects = np.zeros((n_img, n, 4), dtype=np.int64)  # each Gaussian's tiles [x0, x1) x [y0, y1), empty when culled
    for i in range(n_img):
        for g in range(n):
            if radii[i, g, 0] <= 0 and radii[i, g, 1] <= 0:
                continue
            x0, x1, y0, y1 = _tile_rect(means2d[i, g], radii[i, g], tile, tw, th)
            rects[i, g, 0], rects[i, g, 1], rects[i, g, 2], rects[i, g, 3] = x0, x1, y0, y1
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    counts[i * per_img + ty * tw + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], dtype=np.int32)
    for i in range(n_img):
        for k in range(n):
            g = order[i, k]
            x0, x1, y0, y1 = rects[i, g, 0], rects[i, g, 1], rects[i, g, 2], rects[i, g, 3]
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    t = i * per_img + ty * tw + tx
                    ids[fill[t]] = g
                    fill[t] += 1
    return offsets, ids


@njit(cache=True)
def _gather_tile(means2d, conics, colors, opacities, ids, i, start, end, geo, col):
    """The tile's Gaussians packed contiguously into geo and col (its rows of the per-intersection arrays), in depth
    order: columns x, y, conic a, b, c, opacity, and the sigma beyond which alpha < 1/255 for sure (log(255 *
    opacity) plus a margin), which lets most far pixels skip the exp() without changing any decision of the exact
    test; col: the colours."""
    for j in range(end - start):
        g = ids[start + j]
        geo[j, 0] = means2d[i, g, 0]
        geo[j, 1] = means2d[i, g, 1]
        geo[j, 2] = conics[i, g, 0]
        geo[j, 3] = conics[i, g, 1]
        geo[j, 4] = conics[i, g, 2]
        geo[j, 5] = opacities[i, g]
        geo[j, 6] = np.log(max(opacities[i, g], 1e-30) / ALPHA_THRESHOLD) + 1e-3
        col[j] = colors[i, g]


# Each Gaussian's cutoff ellipse (sigma <= the tile's cutoff column) is turned into the rows of the tile it reaches and,
# per row, the span of pixels inside it, so a pixel visits only the Gaussians that can touch it instead of every
# Gaussian of its tile. The spans are widened by these margins (in sigma and in pixels): they only decide which pixels
# are tested; the test itself is the definition's, so the result is what a scan of every pixel of the tile gives.
# A conic that is not clearly positive definite (or not finite) gets no spans: its rows are scanned whole.
SPAN_MARGIN_SIGMA = 1e-2
SPAN_MARGIN_PX = 1e-3
SPAN_MIN_DET = 1e-12  # det(conic) / (a c) below this: too close to degenerate for spans


@njit(cache=True)
def _tile_rows(geo, y0, n_rows, rows):
    """Per Gaussian of a tile, into rows: the tile-local rows [r0, r1) its cutoff ellipse may reach (columns 0, 1)
    and whether its rows get spans (column 2: 1) or are scanned whole (0)."""
    for j in range(geo.shape[0]):
        a, b, c = float(geo[j, 2]), float(geo[j, 3]), float(geo[j, 4])
        s = float(geo[j, 6]) + SPAN_MARGIN_SIGMA
        det = a * c - b * b
        if not (a > 0.0 and c > 0.0 and det > SPAN_MIN_DET * a * c and np.isfinite(det) and np.isfinite(s)):
            rows[j, 0], rows[j, 1], rows[j, 2] = 0, n_rows, 0
            continue
        if s < 0.0:  # opacity below the threshold: no pixel passes
            rows[j, 0], rows[j, 1], rows[j, 2] = 0, 0, 1
            continue
        h = np.sqrt(2.0 * a * s / det)  # the ellipse's half height
        gy = float(geo[j, 1]) - 0.5 - y0  # in tile-local row coordinates (pixel centres at +0.5)
        rows[j, 0] = int(max(0.0, min(float(n_rows), np.ceil(gy - h - SPAN_MARGIN_PX))))
        rows[j, 1] = int(max(0.0, min(float(n_rows), np.floor(gy + h + SPAN_MARGIN_PX) + 1.0)))
        rows[j, 2] = 1


@njit(cache=True)
def _row_span(geo, j, spans, fy, x0, x1):
    """Columns [lo, hi) of the row at pixel-centre height fy (within [x0, x1)) where Gaussian j may pass the test."""
    if spans == 0:
        return x0, x1
    a, b, c = float(geo[j, 2]), float(geo[j, 3]), float(geo[j, 4])
    s = float(geo[j, 6]) + SPAN_MARGIN_SIGMA
    dy = float(geo[j, 1]) - fy
    disc = (b * b - a * c) * dy * dy + 2.0 * a * s
    if disc < 0.0:
        return x0, x0
    root = np.sqrt(disc)
    # sigma <= s for dx = gx - fx in [(-b dy - root) / a, (-b dy + root) / a], pixel column px = fx - 0.5
    gx = float(geo[j, 0]) - 0.5
    lo = max(float(x0), min(float(x1), np.ceil(gx - (root - b * dy) / a - SPAN_MARGIN_PX)))
    hi = max(float(x0), min(float(x1), np.floor(gx + (root + b * dy) / a + SPAN_MARGIN_PX) + 1.0))
    return int(lo), int(hi)


# exp(-s) on the sigmas that can pass the alpha test (0 <= s <= log(255) + margins < 6), without a call to libm, so
# the loops over a tile row's pixels vectorise: exp(-s) = exp(-s / 16) ** 16, the first by its Taylor series to
# degree 12 (relative error below 1e-15 on [0, 0.4]; 16 times that after the squarings).
EXP_TERMS = 13
CONSTANTS = (0.5, 1.0, ALPHA_MAX, ALPHA_THRESHOLD, T_MIN, 0.0, 1.0 / 16.0) + tuple(
    (-1.0) ** i / np.prod(np.arange(1, i + 1, dtype=np.float64)) for i in range(EXP_TERMS)
)
HALF, ONE, AMAX, ATHR, TMIN, ZERO, SIXTEENTH, EXP0 = range(8)


def constants(dtype) -> np.ndarray:
    """The kernels' constants in the images' dtype, so float32 inputs are composited in float32."""
    return np.array(CONSTANTS, dtype=dtype)


@njit(cache=True)
def _exp_neg(s, k):
    """exp(-s) for 0 <= s < 6 (see EXP_TERMS), in the dtype of the constants k."""
    u = s * k[SIXTEENTH]
    p = k[EXP0 + EXP_TERMS - 1]
    for i in range(EXP_TERMS - 2, -1, -1):
        p = p * u + k[EXP0 + i]
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(cache=True)
def _centres(x0, y0, tile, k):
    """A tile's pixel-centre coordinates along x and y, in the dtype of k."""
    fxs, fys = np.empty(tile, dtype=k.dtype), np.empty(tile, dtype=k.dtype)
    for q in range(tile):
        fxs[q] = x0 + q + 0.5
        fys[q] = y0 + q + 0.5
    return fxs, fys


@njit(parallel=True, cache=True, fastmath={"contract"})
def composite_forward(
    means2d,
    conics,
    colors,
    opacities,
    background,
    offsets,
    ids,
    width,
    height,
    tile,
    k,
    out_color,
    t_final,
    n_done,
    isect_geo,
    isect_col,
    isect_rows,
    spans,
):
    """n_done[pixel] = how many of its tile's Gaussians (in order) it went through, up to the last one composited.
    Each tile row's pixels are the lanes of the inner loops (one Gaussian at a time, front to back).
    What the backward pass needs again is kept instead of computed twice: per intersection its Gaussian's packed
    geometry and colour (isect_geo, isect_col: _gather_tile), the tile rows it reaches (isect_rows: _tile_rows), and
    spans[intersection, 0 or 1, tile row] = the tile-local columns [lo, hi) its row span covers, for every pair the
    pass reached."""
    n_img, n_ch = colors.shape[0], colors.shape[2]
    tw, th, per_img = tile_grid(width, height, tile)
    for t in prange(n_img * per_img):
        i, x0, x1, y0, y1 = _tile_pixels(t, tw, per_img, tile, width, height)
        start, end = offsets[t], offsets[t + 1]
        geo, col, rows = isect_geo[start:end], isect_col[start:end], isect_rows[start:end]
        _gather_tile(means2d, conics, colors, opacities, ids, i, start, end, geo, col)
        _tile_rows(geo, y0, y1 - y0, rows)
        n_x = x1 - x0
        half, one, zero, amax, athr, tmin = k[HALF], k[ONE], k[ZERO], k[AMAX], k[ATHR], k[TMIN]
        fxs, fys = _centres(x0, y0, tile, k)
        T = np.empty(tile, dtype=k.dtype)
        live = np.empty(tile, dtype=k.dtype)  # 1 until the pixel's transmittance would fall to T_MIN
        w = np.empty(tile, dtype=k.dtype)
        acc = np.empty((n_ch, tile), dtype=k.dtype)
        last = np.empty(tile, dtype=np.int64)
        for py in range(y0, y1):
            r = py - y0
            fy = fys[r]
            T[:] = one
            acc[:] = zero
            last[:] = 0
            for q in range(tile):
                live[q] = one if q < n_x else zero
            n_live = n_x
            for j in range(end - start):
                if n_live == 0:
                    break
                if r < rows[j, 0] or r >= rows[j, 1]:
                    continue
                lo, hi = _row_span(geo, j, rows[j, 2], fy, x0, x1)
                spans[start + j, 0, r], spans[start + j, 1, r] = lo - x0, hi - x0
                if lo >= hi:
                    continue
                gx, gy, ca, cb, cc, op, cut = geo[j, 0], geo[j, 1], geo[j, 2], geo[j, 3], geo[j, 4], geo[j, 5], geo[j, 6]
                dy = gy - fy
                q_lo, q_hi = lo - x0, hi - x0
                stops = 0
                cdd = cc * dy * dy
                for q in range(tile):
                    dx = gx - fxs[q]
                    sigma = half * (ca * dx * dx + cdd) + cb * dx * dy
                    alpha = min(amax, op * _exp_neg(min(max(sigma, zero), cut), k))
                    ok = (q >= q_lo) & (q < q_hi) & (live[q] > zero) & (sigma <= cut) & (sigma >= zero) & (alpha >= athr)
                    next_T = T[q] * (one - alpha)
                    stop = ok & (next_T <= tmin)
                    blend = ok & (next_T > tmin)
                    w[q] = alpha * T[q] if blend else zero
                    T[q] = next_T if blend else T[q]
                    last[q] = j + 1 if blend else last[q]
                    live[q] = zero if stop else live[q]
                    stops += 1 if stop else 0
                n_live -= stops
                for c in range(n_ch):
                    col_c = col[j, c]
                    for q in range(tile):
                        acc[c, q] += col_c * w[q]
            for q in range(n_x):
                for c in range(n_ch):
                    out_color[i, py, x0 + q, c] = acc[c, q] + T[q] * background[i, c]
                t_final[i, py, x0 + q] = T[q]
                n_done[i, py, x0 + q] = last[q]


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def composite_backward(
    background,
    offsets,
    width,
    height,
    tile,
    k,
    t_final,
    n_done,
    isect_geo,
    isect_col,
    isect_rows,
    spans,
    v_color,
    v_alpha,
    v_isect_geo,
    v_isect_col,
    v_tile_background,
):
    """Gradients per intersection (each tile owns its slice of the CSR lists, so no two threads
    write the same element) and per tile for the background; `scatter_gradients` sums them in a
    fixed order, so results do not depend on the thread scheduling. Each pixel walks its list back
    to front; an intersection's gradient is summed over a tile row's pixels (the lanes) row by row."""
    n_img, n_ch = t_final.shape[0], isect_col.shape[1]
    tw, th, per_img = tile_grid(width, height, tile)
    for t in prange(n_img * per_img):
        i, x0, x1, y0, y1 = _tile_pixels(t, tw, per_img, tile, width, height)
        start, end = offsets[t], offsets[t + 1]
        geo, col, rows = isect_geo[start:end], isect_col[start:end], isect_rows[start:end]  # the forward pass's
        v_geo = v_isect_geo[start:end]  # x, y, conic a, b, c, opacity
        v_col = v_isect_col[start:end]
        n_x = x1 - x0
        half, one, zero, amax, athr = k[HALF], k[ONE], k[ZERO], k[AMAX], k[ATHR]
        fxs, fys = _centres(x0, y0, tile, k)
        T = np.zeros(tile, dtype=k.dtype)
        T_end = np.zeros(tile, dtype=k.dtype)
        nd = np.zeros(tile, dtype=np.int64)
        vc = np.zeros((n_ch, tile), dtype=k.dtype)
        buf = np.empty((n_ch, tile), dtype=k.dtype)
        bg_va = np.zeros(tile, dtype=k.dtype)  # T_end * (v_alpha - background . v_color)
        fac = np.empty(tile, dtype=k.dtype)
        ra = np.empty(tile, dtype=k.dtype)  # 1 / (1 - alpha) where the pixel composited the Gaussian, else 0
        vis = np.empty(tile, dtype=k.dtype)
        v_a = np.empty(tile, dtype=k.dtype)
        for py in range(y0, y1):
            r = py - y0
            fy = fys[r]
            j_end = 0
            for q in range(n_x):
                px = x0 + q
                T_end[q] = t_final[i, py, px]
                T[q] = T_end[q]
                nd[q] = n_done[i, py, px]
                dot = zero
                for c in range(n_ch):
                    vc[c, q] = v_color[i, py, px, c]
                    dot += background[i, c] * vc[c, q]
                    v_tile_background[t, c] += T_end[q] * vc[c, q]
                bg_va[q] = T_end[q] * (v_alpha[i, py, px] - dot)
                j_end = max(j_end, nd[q])
            buf[:] = zero
            for j in range(j_end - 1, -1, -1):
                if r < rows[j, 0] or r >= rows[j, 1]:
                    continue
                q_lo, q_hi = spans[start + j, 0, r], spans[start + j, 1, r]  # the forward pass's, for this pair
                if q_lo >= q_hi:
                    continue
                gx, gy, c0, c1, c2, op, cut = geo[j, 0], geo[j, 1], geo[j, 2], geo[j, 3], geo[j, 4], geo[j, 5], geo[j, 6]
                dy = gy - fy
                cdd = c2 * dy * dy
                for q in range(tile):
                    dx = gx - fxs[q]
                    sigma = half * (c0 * dx * dx + cdd) + c1 * dx * dy
                    e = _exp_neg(min(max(sigma, zero), cut), k)
                    alpha = min(amax, op * e)
                    ok = (q >= q_lo) & (q < q_hi) & (j < nd[q]) & (sigma <= cut) & (sigma >= zero) & (alpha >= athr)
                    rq = one / (one - alpha)
                    T[q] = T[q] * rq if ok else T[q]
                    vis[q] = e
                    ra[q] = rq if ok else zero
                    fac[q] = alpha * T[q] if ok else zero
                    v_a[q] = bg_va[q] * rq if ok else zero
                for c in range(n_ch):
                    col_c = col[j, c]
                    s = zero
                    for q in range(tile):
                        s += fac[q] * vc[c, q]
                        v_a[q] += (col_c * T[q] - buf[c, q] * ra[q]) * vc[c, q]
                        buf[c, q] += col_c * fac[q]
                    v_col[j, c] += s
                g0 = g1 = g2 = g3 = g4 = g5 = zero
                for q in range(tile):
                    dx = gx - fxs[q]
                    on = (ra[q] != zero) & (op * vis[q] <= amax)
                    v_sigma = -op * vis[q] * v_a[q] if on else zero
                    g0 += v_sigma * (c0 * dx + c1 * dy)
                    g1 += v_sigma * (c1 * dx + c2 * dy)
                    g2 += half * v_sigma * dx * dx
                    g3 += v_sigma * dx * dy
                    g4 += half * v_sigma * dy * dy
                    g5 += vis[q] * v_a[q] if on else zero
                v_geo[j, 0] += g0
                v_geo[j, 1] += g1
                v_geo[j, 2] += g2
                v_geo[j, 3] += g3
                v_geo[j, 4] += g4
                v_geo[j, 5] += g5


@njit(cache=True)
def scatter_gradients(offsets, ids, per_img, v_isect_geo, v_isect_col, v_means2d, v_conics, v_colors, v_opacities):
    for t in range(len(offsets) - 1):
        i = t // per_img
        for j in range(offsets[t], offsets[t + 1]):
            g = ids[j]
            v_means2d[i, g, 0] += v_isect_geo[j, 0]
            v_means2d[i, g, 1] += v_isect_geo[j, 1]
            v_conics[i, g, 0] += v_isect_geo[j, 2]
            v_conics[i, g, 1] += v_isect_geo[j, 3]
            v_conics[i, g, 2] += v_isect_geo[j, 4]
            v_opacities[i, g] += v_isect_geo[j, 5]
            for k in range(v_isect_col.shape[1]):
                v_colors[i, g, k] += v_isect_col[j, k]


class RasterizeToPixelsCPU(torch.autograd.Function):
    """(means2d, conics, colors, opacities, backgrounds) of C images -> (colors (C,H,W,D), alphas (C,H,W,1))."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, backgrounds, radii, depths, width, height, tile_size):
        dtype = colors.dtype
        m, c, col, op, bg = (to_numpy(x.to(dtype)) for x in (means2d, conics, colors, opacities, backgrounds))
        offsets, ids = bin_gaussians(m, to_numpy(radii), to_numpy(depths), width, height, tile_size)
        n_img, n_ch = col.shape[0], col.shape[2]
        out = np.empty((n_img, height, width, n_ch), dtype=col.dtype)
        t_final = np.empty((n_img, height, width), dtype=col.dtype)
        n_done = np.empty((n_img, height, width), dtype=np.int64)
        n_isect = len(ids)
        isect_geo = np.empty((n_isect, 7), dtype=m.dtype)
        isect_col = np.empty((n_isect, n_ch), dtype=col.dtype)
        isect_rows = np.empty((n_isect, 3), dtype=np.int64)
        # tile-local columns; only the pairs the forward pass reached are set
        spans = np.empty((n_isect, 2, tile_size), dtype=np.int8 if tile_size <= 127 else np.int16)
        k = constants(col.dtype)
        composite_forward(
            m, c, col, op, bg, offsets, ids, width, height, tile_size, k, out, t_final, n_done, isect_geo, isect_col, isect_rows, spans
        )
        ctx.arrays = (col, bg, offsets, ids, t_final, n_done, isect_geo, isect_col, isect_rows, spans, k)
        ctx.dims = (width, height, tile_size)
        ctx.dtypes = tuple(x.dtype for x in (means2d, conics, colors, opacities, backgrounds))
        alphas = torch.from_numpy(1.0 - t_final)[..., None]
        return torch.from_numpy(out), alphas

    @staticmethod
    def backward(ctx, v_render, v_alphas):
        col, bg, offsets, ids, t_final, n_done, isect_geo, isect_col, isect_rows, spans, k = ctx.arrays
        width, height, tile = ctx.dims
        n_img, n, n_ch = col.shape
        n_tiles = len(offsets) - 1
        v_isect_geo = np.zeros((len(ids), 6), dtype=col.dtype)
        v_isect_col = np.zeros((len(ids), n_ch), dtype=col.dtype)
        v_tile_bg = np.zeros((n_tiles, n_ch), dtype=col.dtype)
        composite_backward(
            bg,
            offsets,
            width,
            height,
            tile,
            k,
            t_final,
            n_done,
            isect_geo,
            isect_col,
            isect_rows,
            spans,
            to_numpy(v_render.to(ctx.dtypes[2])),
            to_numpy(v_alphas[..., 0].to(ctx.dtypes[2])),
            v_isect_geo,
            v_isect_col,
            v_tile_bg,
        )
        out = [np.zeros(shape, dtype=col.dtype) for shape in ((n_img, n, 2), (n_img, n, 3), (n_img, n, n_ch), (n_img, n))]
        scatter_gradients(offsets, ids, n_tiles // n_img, v_isect_geo, v_isect_col, *out)
        v_bg = v_tile_bg.reshape(n_img, n_tiles // n_img, n_ch).sum(axis=1)
        grads = [torch.from_numpy(g).to(dt) for g, dt in zip((*out, v_bg), ctx.dtypes)]
        return (*grads, None, None, None, None, None)
