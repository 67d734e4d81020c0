"""Projection and SH colours on the CPU in one pass per Gaussian (numba), forward and backward.

What `projection.project`, `projection.covariance` and `sh.sh_to_color` compute in PyTorch (the reference definitions,
and gsplat's fully fused projection and spherical harmonics), fused the way gsplat's CUDA kernels are: one loop over
the Gaussians, each thread computing a Gaussian's rotation, covariance, camera-space position, EWA Jacobian, 2D
conic, opacity compensation, culling radius and view-dependent colour, and a hand-written backward pass through the
same chain (gsplat's `*_vjp` rules). Some hundred small tensor operations and their autograd graph become two
calls; the arithmetic is done in float64 and stored in the inputs' dtype.

As in gsplat, a Gaussian culled in a view (radius 0) gets no gradient from it, and the colour is clamped at 0 after
adding 0.5 to the SH sum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from .kernel_cache import install
from .sh import C0, C1, C2, C3

install()  # before the kernels below are defined: their compiled code is cached per machine (kernel_cache.py)

ALPHA_THRESHOLD = 1.0 / 255.0
NORMALIZE_EPS = 1e-12  # F.normalize's
CHUNK = 64  # Gaussians per parallel task (its scratch arrays are allocated once per task)


@njit(cache=True)
def _rotmat(w, x, y, z):
    return (
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y - w * z),
        2.0 * (x * z + w * y),
        2.0 * (x * y + w * z),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z - w * x),
        2.0 * (x * z - w * y),
        2.0 * (y * z + w * x),
        1.0 - 2.0 * (x * x + y * y),
    )


@njit(cache=True)
def _sh_basis(degree, x, y, z, out):
    out[0] = C0
    if degree >= 1:
        out[1] = -C1 * y
        out[2] = C1 * z
        out[3] = -C1 * x
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out[4] = C2[0] * x * y
        out[5] = C2[1] * y * z
        out[6] = C2[2] * (3.0 * zz - 1.0)
        out[7] = C2[3] * x * z
        out[8] = C2[4] * (xx - yy)
    if degree >= 3:
        out[9] = C3[0] * y * (3.0 * xx - yy)
        out[10] = C3[1] * x * y * z
        out[11] = C3[2] * y * (5.0 * zz - 1.0)
        out[12] = C3[3] * z * (5.0 * zz - 3.0)
        out[13] = C3[4] * x * (5.0 * zz - 1.0)
        out[14] = C3[5] * z * (xx - yy)
        out[15] = C3[6] * x * (xx - 3.0 * yy)


@njit(cache=True)
def _sh_basis_vjp(degree, x, y, z, v):
    """d(sum_k v[k] basis_k)/d(x, y, z) at the (normalised) direction (x, y, z)."""
    gx = gy = gz = 0.0
    if degree >= 1:
        gx += -C1 * v[3]
        gy += -C1 * v[1]
        gz += C1 * v[2]
    if degree >= 2:
        gx += C2[0] * y * v[4] + C2[3] * z * v[7] + 2.0 * C2[4] * x * v[8]
        gy += C2[0] * x * v[4] + C2[1] * z * v[5] - 2.0 * C2[4] * y * v[8]
        gz += C2[1] * y * v[5] + 6.0 * C2[2] * z * v[6] + C2[3] * x * v[7]
    if degree >= 3:
        xx, yy, zz = x * x, y * y, z * z
        gx += (
            6.0 * C3[0] * x * y * v[9]
            + C3[1] * y * z * v[10]
            + C3[4] * (5.0 * zz - 1.0) * v[13]
            + 2.0 * C3[5] * x * z * v[14]
            + C3[6] * (3.0 * xx - 3.0 * yy) * v[15]
        )
        gy += (
            C3[0] * (3.0 * xx - 3.0 * yy) * v[9]
            + C3[1] * x * z * v[10]
            + C3[2] * (5.0 * zz - 1.0) * v[11]
            - 2.0 * C3[5] * y * z * v[14]
            - 6.0 * C3[6] * x * y * v[15]
        )
        gz += (
            C3[1] * x * y * v[10]
            + 10.0 * C3[2] * y * z * v[11]
            + C3[3] * (15.0 * zz - 3.0) * v[12]
            + 10.0 * C3[4] * x * z * v[13]
            + C3[5] * (xx - yy) * v[14]
        )
    return gx, gy, gz


@njit(cache=True)
def _camera(viewmats, Ks, c, width, height):
    """Camera c's world-to-camera matrix, intrinsics, the Jacobian's clamp limits and its centre -R^T t (where the SH
    colours' view directions start)."""
    W = viewmats[c]
    fx, fy, cx, cy = float(Ks[c, 0, 0]), float(Ks[c, 1, 1]), float(Ks[c, 0, 2]), float(Ks[c, 1, 2])
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lims = ((width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx, (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy)
    centre = (
        -(W[0, 0] * W[0, 3] + W[1, 0] * W[1, 3] + W[2, 0] * W[2, 3]),
        -(W[0, 1] * W[0, 3] + W[1, 1] * W[1, 3] + W[2, 1] * W[2, 3]),
        -(W[0, 2] * W[0, 3] + W[1, 2] * W[1, 3] + W[2, 2] * W[2, 3]),
    )
    return W, (fx, fy, cx, cy), lims, centre


@njit(parallel=True, cache=True)
def project_forward(
    means, quats, scales, opacities, coeffs, sh_degree, viewmats, Ks, width, height, eps2d, near, far, radius_clip, antialiased,
    radii, means2d, depths, conics, opac_out, colors,
):  # fmt: skip
    """Per camera c and Gaussian n: radii (int32), means2d, depths, conics, opacities and (sh_degree >= 0) colours."""
    n_cam, n = means2d.shape[0], means2d.shape[1]
    for task in prange((n + CHUNK - 1) // CHUNK):
        basis = np.empty(16)
        for g in range(task * CHUNK, min(n, task * CHUNK + CHUNK)):
            w, x, y, z = float(quats[g, 0]), float(quats[g, 1]), float(quats[g, 2]), float(quats[g, 3])
            inv = 1.0 / max(math.sqrt(w * w + x * x + y * y + z * z), NORMALIZE_EPS)
            R = _rotmat(w * inv, x * inv, y * inv, z * inv)
            s0, s1, s2 = float(scales[g, 0]), float(scales[g, 1]), float(scales[g, 2])
            # world covariance M M^T, M = R diag(s)
            m = (R[0] * s0, R[1] * s1, R[2] * s2, R[3] * s0, R[4] * s1, R[5] * s2, R[6] * s0, R[7] * s1, R[8] * s2)
            S00 = m[0] * m[0] + m[1] * m[1] + m[2] * m[2]
            S01 = m[0] * m[3] + m[1] * m[4] + m[2] * m[5]
            S02 = m[0] * m[6] + m[1] * m[7] + m[2] * m[8]
            S11 = m[3] * m[3] + m[4] * m[4] + m[5] * m[5]
            S12 = m[3] * m[6] + m[4] * m[7] + m[5] * m[8]
            S22 = m[6] * m[6] + m[7] * m[7] + m[8] * m[8]
            px, py, pz = float(means[g, 0]), float(means[g, 1]), float(means[g, 2])
            for c in range(n_cam):
                Wm, (fx, fy, cx, cy), (lxp, lxn, lyp, lyn), (ox, oy, oz) = _camera(viewmats, Ks, c, width, height)
                tx = Wm[0, 0] * px + Wm[0, 1] * py + Wm[0, 2] * pz + Wm[0, 3]
                ty = Wm[1, 0] * px + Wm[1, 1] * py + Wm[1, 2] * pz + Wm[1, 3]
                tz = Wm[2, 0] * px + Wm[2, 1] * py + Wm[2, 2] * pz + Wm[2, 3]
                depths[c, g] = tz
                # camera covariance W S W^T (rows of W: a, b, c)
                A = (Wm[0, 0], Wm[0, 1], Wm[0, 2], Wm[1, 0], Wm[1, 1], Wm[1, 2], Wm[2, 0], Wm[2, 1], Wm[2, 2])
                SA0 = (S00 * A[0] + S01 * A[1] + S02 * A[2], S01 * A[0] + S11 * A[1] + S12 * A[2], S02 * A[0] + S12 * A[1] + S22 * A[2])
                SA1 = (S00 * A[3] + S01 * A[4] + S02 * A[5], S01 * A[3] + S11 * A[4] + S12 * A[5], S02 * A[3] + S12 * A[4] + S22 * A[5])
                SA2 = (S00 * A[6] + S01 * A[7] + S02 * A[8], S01 * A[6] + S11 * A[7] + S12 * A[8], S02 * A[6] + S12 * A[7] + S22 * A[8])
                c00 = A[0] * SA0[0] + A[1] * SA0[1] + A[2] * SA0[2]
                c01 = A[0] * SA1[0] + A[1] * SA1[1] + A[2] * SA1[2]
                c02 = A[0] * SA2[0] + A[1] * SA2[1] + A[2] * SA2[2]
                c11 = A[3] * SA1[0] + A[4] * SA1[1] + A[5] * SA1[2]
                c12 = A[3] * SA2[0] + A[4] * SA2[1] + A[5] * SA2[2]
                c22 = A[6] * SA2[0] + A[7] * SA2[1] + A[8] * SA2[2]
                txc = tz * min(max(tx / tz, -lxn), lxp)
                tyc = tz * min(max(ty / tz, -lyn), lyp)
                j00, j02 = fx / tz, -fx * txc / (tz * tz)
                j11, j12 = fy / tz, -fy * tyc / (tz * tz)
                # J C J^T with J = [[j00, 0, j02], [0, j11, j12]]
                a00 = j00 * j00 * c00 + 2.0 * j00 * j02 * c02 + j02 * j02 * c22
                a01 = j00 * j11 * c01 + j00 * j12 * c02 + j02 * j11 * c12 + j02 * j12 * c22
                a11 = j11 * j11 * c11 + 2.0 * j11 * j12 * c12 + j12 * j12 * c22
                det_orig = a00 * a11 - a01 * a01
                a00 += eps2d
                a11 += eps2d
                det = a00 * a11 - a01 * a01
                det_safe = max(det, 1e-10)
                conics[c, g, 0] = a11 / det_safe
                conics[c, g, 1] = -a01 / det_safe
                conics[c, g, 2] = a00 / det_safe
                mx, my = fx * tx / tz + cx, fy * ty / tz + cy
                means2d[c, g, 0] = mx
                means2d[c, g, 1] = my
                op = float(opacities[g])
                if antialiased:
                    op *= math.sqrt(max(det_orig / det_safe, 0.0))
                opac_out[c, g] = op
                # culling radius (opacity-aware, at most 3.33 sigma), as projection.project
                extend = min(3.33, math.sqrt(2.0 * math.log(max(op, ALPHA_THRESHOLD) / ALPHA_THRESHOLD)))
                rx, ry = math.ceil(extend * math.sqrt(a00)), math.ceil(extend * math.sqrt(a11))
                valid = det > 0 and tz > near and tz < far and op >= ALPHA_THRESHOLD
                valid = valid and not (rx <= radius_clip and ry <= radius_clip)
                valid = valid and mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height
                valid = valid and math.isfinite(rx) and math.isfinite(ry)
                radii[c, g, 0] = int(rx) if valid else 0
                radii[c, g, 1] = int(ry) if valid else 0
                if sh_degree >= 0:
                    dx, dy, dz = px - ox, py - oy, pz - oz
                    dn = 1.0 / max(math.sqrt(dx * dx + dy * dy + dz * dz), NORMALIZE_EPS)
                    _sh_basis(sh_degree, dx * dn, dy * dn, dz * dn, basis)
                    for ch in range(3):
                        acc = 0.0
                        for k in range((sh_degree + 1) ** 2):
                            acc += basis[k] * coeffs[g, k, ch]
                        colors[c, g, ch] = max(acc + 0.5, 0.0)


@njit(cache=True)
def _mul3(A, B, out, transpose_a=False, transpose_b=False):
    """out = op(A) @ op(B) for 3x3 (or 2x3 / 3x2 with the right shapes) arrays, op = transpose when asked."""
    n_i = A.shape[1] if transpose_a else A.shape[0]
    n_k = A.shape[0] if transpose_a else A.shape[1]
    n_j = B.shape[0] if transpose_b else B.shape[1]
    for i in range(n_i):
        for j in range(n_j):
            acc = 0.0
            for k in range(n_k):
                a = A[k, i] if transpose_a else A[i, k]
                b = B[j, k] if transpose_b else B[k, j]
                acc += a * b
            out[i, j] = acc


@njit(parallel=True, cache=True)
def project_backward(
    means, quats, scales, opacities, coeffs, sh_degree, viewmats, Ks, width, height, eps2d, antialiased,
    radii, v_means2d, v_depths, v_conics, v_opac, v_colors,
    v_means, v_quats, v_scales, v_opacities, v_coeffs,
):  # fmt: skip
    """The gradients of the inputs, summed over the cameras (each Gaussian by one thread: no two write one element)."""
    n_cam, n = v_means2d.shape[0], v_means2d.shape[1]
    for task in prange((n + CHUNK - 1) // CHUNK):
        S, A, Cc, J, G = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.zeros((2, 3)), np.empty((2, 2))
        T23, T33, T33b, vCc, vJ = np.empty((2, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((2, 3))
        vS, M, vM = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
        basis, vbasis, vR = np.empty(16), np.empty(16), np.empty(9)
        for g in range(task * CHUNK, min(n, task * CHUNK + CHUNK)):
            w0, x0, y0, z0 = float(quats[g, 0]), float(quats[g, 1]), float(quats[g, 2]), float(quats[g, 3])
            qnorm = max(math.sqrt(w0 * w0 + x0 * x0 + y0 * y0 + z0 * z0), NORMALIZE_EPS)
            w, x, y, z = w0 / qnorm, x0 / qnorm, y0 / qnorm, z0 / qnorm
            R = _rotmat(w, x, y, z)
            for r in range(3):
                for k in range(3):
                    M[r, k] = R[3 * r + k] * float(scales[g, k])
            _mul3(M, M, S, transpose_b=True)  # world covariance M M^T
            px, py, pz = float(means[g, 0]), float(means[g, 1]), float(means[g, 2])
            vS[:] = 0.0
            vpx = vpy = vpz = 0.0
            vop_total = 0.0
            for c in range(n_cam):
                if radii[c, g, 0] <= 0 and radii[c, g, 1] <= 0:
                    continue
                Wm, (fx, fy, cx, cy), (lxp, lxn, lyp, lyn), (ox, oy, oz) = _camera(viewmats, Ks, c, width, height)
                tx = Wm[0, 0] * px + Wm[0, 1] * py + Wm[0, 2] * pz + Wm[0, 3]
                ty = Wm[1, 0] * px + Wm[1, 1] * py + Wm[1, 2] * pz + Wm[1, 3]
                tz = Wm[2, 0] * px + Wm[2, 1] * py + Wm[2, 2] * pz + Wm[2, 3]
                for r in range(3):
                    for k in range(3):
                        A[r, k] = Wm[r, k]
                _mul3(A, S, T33)
                _mul3(T33, A, Cc, transpose_b=True)  # camera covariance A S A^T
                ux, uy = tx / tz, ty / tz
                clamped_x = ux < -lxn or ux > lxp
                clamped_y = uy < -lyn or uy > lyp
                txc = tz * min(max(ux, -lxn), lxp)
                tyc = tz * min(max(uy, -lyn), lyp)
                J[0, 0], J[0, 2] = fx / tz, -fx * txc / (tz * tz)
                J[1, 1], J[1, 2] = fy / tz, -fy * tyc / (tz * tz)
                _mul3(J, Cc, T23)
                a00 = T23[0, 0] * J[0, 0] + T23[0, 2] * J[0, 2]
                a01 = T23[0, 1] * J[1, 1] + T23[0, 2] * J[1, 2]
                a11 = T23[1, 1] * J[1, 1] + T23[1, 2] * J[1, 2]
                det_orig = a00 * a11 - a01 * a01
                a00 += eps2d
                a11 += eps2d
                det = a00 * a11 - a01 * a01
                unclamped = det > 1e-10
                det_safe = det if unclamped else 1e-10
                vo = float(v_opac[c, g])
                va00 = va01 = va11 = 0.0
                v_det = 0.0
                if antialiased:  # opacity times sqrt(det_orig / det)
                    ratio = det_orig / det_safe
                    comp = math.sqrt(max(ratio, 0.0))
                    vop_total += vo * comp
                    if ratio > 0.0:
                        v_ratio = vo * float(opacities[g]) * 0.5 / comp
                        v_det_orig = v_ratio / det_safe  # det_orig = (a00 - eps)(a11 - eps) - a01^2
                        va00 += v_det_orig * (a11 - eps2d)
                        va11 += v_det_orig * (a00 - eps2d)
                        va01 += -2.0 * a01 * v_det_orig
                        if unclamped:
                            v_det = -v_ratio * det_orig / (det_safe * det_safe)
                else:
                    vop_total += vo
                # conic = (a11, -a01, a00) / det
                vc0, vc1, vc2 = float(v_conics[c, g, 0]), float(v_conics[c, g, 1]), float(v_conics[c, g, 2])
                va11 += vc0 / det_safe
                va01 += -vc1 / det_safe
                va00 += vc2 / det_safe
                if unclamped:
                    v_det += -(vc0 * a11 - vc1 * a01 + vc2 * a00) / (det_safe * det_safe)
                    va00 += v_det * a11
                    va11 += v_det * a00
                    va01 += -2.0 * a01 * v_det
                # cov = J Cc J^T: v_Cc = J^T G J, v_J = 2 G J Cc (G symmetric)
                G[0, 0], G[0, 1], G[1, 0], G[1, 1] = va00, 0.5 * va01, 0.5 * va01, va11
                _mul3(G, J, T23)
                _mul3(J, T23, vCc, transpose_a=True)
                _mul3(T23, Cc, vJ)
                vmx, vmy = float(v_means2d[c, g, 0]), float(v_means2d[c, g, 1])
                vtx = vmx * fx / tz
                vty = vmy * fy / tz
                vtz = -(vmx * fx * tx + vmy * fy * ty) / (tz * tz) + float(v_depths[c, g])
                # J = [[fx/tz, 0, -fx txc/tz^2], [0, fy/tz, -fy tyc/tz^2]] (vJ above is half of v_J)
                vtz += 2.0 * (-vJ[0, 0] * fx / (tz * tz) + vJ[0, 2] * 2.0 * fx * txc / (tz * tz * tz))
                vtz += 2.0 * (-vJ[1, 1] * fy / (tz * tz) + vJ[1, 2] * 2.0 * fy * tyc / (tz * tz * tz))
                v_txc = -2.0 * vJ[0, 2] * fx / (tz * tz)
                v_tyc = -2.0 * vJ[1, 2] * fy / (tz * tz)
                # txc = tz * clamp(tx / tz): tx inside the limits, tz * limit outside
                if clamped_x:
                    vtz += v_txc * min(max(ux, -lxn), lxp)
                else:
                    vtx += v_txc
                if clamped_y:
                    vtz += v_tyc * min(max(uy, -lyn), lyp)
                else:
                    vty += v_tyc
                # back to the world: p = A mean + t, Cc = A S A^T
                vpx += A[0, 0] * vtx + A[1, 0] * vty + A[2, 0] * vtz
                vpy += A[0, 1] * vtx + A[1, 1] * vty + A[2, 1] * vtz
                vpz += A[0, 2] * vtx + A[1, 2] * vty + A[2, 2] * vtz
                _mul3(vCc, A, T33)
                _mul3(A, T33, T33b, transpose_a=True)
                vS += T33b
                if sh_degree >= 0:
                    dx, dy, dz = px - ox, py - oy, pz - oz
                    norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), NORMALIZE_EPS)
                    nx, ny, nz = dx / norm, dy / norm, dz / norm
                    _sh_basis(sh_degree, nx, ny, nz, basis)
                    n_k = (sh_degree + 1) ** 2
                    vbasis[:] = 0.0
                    for ch in range(3):
                        acc = 0.0
                        for k in range(n_k):
                            acc += basis[k] * coeffs[g, k, ch]
                        if acc + 0.5 < 0.0:  # clamped at 0
                            continue
                        vcol = float(v_colors[c, g, ch])
                        for k in range(n_k):
                            v_coeffs[g, k, ch] += basis[k] * vcol
                            vbasis[k] += coeffs[g, k, ch] * vcol
                    gx, gy, gz = _sh_basis_vjp(sh_degree, nx, ny, nz, vbasis)
                    dot = gx * nx + gy * ny + gz * nz  # through the normalisation
                    vpx += (gx - nx * dot) / norm
                    vpy += (gy - ny * dot) / norm
                    vpz += (gz - nz * dot) / norm
            v_means[g, 0] = vpx
            v_means[g, 1] = vpy
            v_means[g, 2] = vpz
            v_opacities[g] = vop_total
            # S = M M^T: v_M = (vS + vS^T) M; M = R diag(s)
            for r in range(3):
                for k in range(3):
                    T33[r, k] = vS[r, k] + vS[k, r]
            _mul3(T33, M, vM)
            for r in range(3):
                for k in range(3):
                    vR[3 * r + k] = vM[r, k] * float(scales[g, k])
            for k in range(3):
                v_scales[g, k] = vM[0, k] * R[k] + vM[1, k] * R[3 + k] + vM[2, k] * R[6 + k]
            # R of the normalised quaternion (w, x, y, z), then the normalisation
            vw = 2.0 * (-z * vR[1] + y * vR[2] + z * vR[3] - x * vR[5] - y * vR[6] + x * vR[7])
            vx = 2.0 * (y * vR[1] + z * vR[2] + y * vR[3] - 2.0 * x * vR[4] - w * vR[5] + z * vR[6] + w * vR[7] - 2.0 * x * vR[8])
            vy = 2.0 * (-2.0 * y * vR[0] + x * vR[1] + w * vR[2] + x * vR[3] + z * vR[5] - w * vR[6] + z * vR[7] - 2.0 * y * vR[8])
            vz = 2.0 * (-2.0 * z * vR[0] - w * vR[1] + x * vR[2] + w * vR[3] - 2.0 * z * vR[4] + y * vR[5] + x * vR[6] + y * vR[7])
            dot = vw * w + vx * x + vy * y + vz * z
            v_quats[g, 0] = (vw - w * dot) / qnorm
            v_quats[g, 1] = (vx - x * dot) / qnorm
            v_quats[g, 2] = (vy - y * dot) / qnorm
            v_quats[g, 3] = (vz - z * dot) / qnorm


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A tensor's data as a contiguous numpy array (the kernels' inputs), without a copy where it already is one."""
    return x.detach().contiguous().numpy()


class ProjectGaussians(torch.autograd.Function):
    """(means, quats, scales, opacities, SH coefficients or None) of N Gaussians seen by C cameras ->
    (radii (C,N,2) int32, means2d (C,N,2), depths (C,N), conics (C,N,3), opacities (C,N), colours (C,N,3) or None)."""

    @staticmethod
    def forward(
        ctx, means, quats, scales, opacities, coeffs, viewmats, Ks, width, height, eps2d, near, far, radius_clip, antialiased, sh_degree
    ):
        dtype, n, n_cam = means.dtype, means.shape[0], viewmats.shape[0]
        deg = -1 if sh_degree is None else int(sh_degree)
        arrays = [to_numpy(x) for x in (means, quats, scales, opacities)]
        sh = to_numpy(coeffs) if deg >= 0 else np.zeros((n, 1, 3), dtype=arrays[0].dtype)
        cams = (to_numpy(viewmats.to(torch.float64)), to_numpy(Ks.to(torch.float64)))
        outs = [
            np.empty(shape, dtype=dt)
            for shape, dt in (
                ((n_cam, n, 2), np.int32),
                ((n_cam, n, 2), arrays[0].dtype),
                ((n_cam, n), arrays[0].dtype),
                ((n_cam, n, 3), arrays[0].dtype),
                ((n_cam, n), arrays[0].dtype),
                ((n_cam, n, 3) if deg >= 0 else (n_cam, 0, 3), arrays[0].dtype),
            )
        ]
        project_forward(
            *arrays, sh, deg, *cams, width, height, float(eps2d), float(near), float(far), float(radius_clip), bool(antialiased), *outs
        )
        ctx.saved = (arrays, sh, deg, cams, width, height, float(eps2d), bool(antialiased), outs[0])
        ctx.dtypes = (dtype, None if coeffs is None else coeffs.dtype)
        ctx.mark_non_differentiable(radii := torch.from_numpy(outs[0]))
        colors = torch.from_numpy(outs[5]) if deg >= 0 else None
        return (radii, *(torch.from_numpy(o) for o in outs[1:5]), colors)

    @staticmethod
    def backward(ctx, _v_radii, v_means2d, v_depths, v_conics, v_opac, v_colors):
        arrays, sh, deg, cams, width, height, eps2d, antialiased, radii = ctx.saved
        dtype = arrays[0].dtype
        n_cam, n = radii.shape[0], radii.shape[1]

        def grad(v, shape):
            return np.zeros(shape, dtype=dtype) if v is None else to_numpy(v.to(ctx.dtypes[0]))

        v_in = [
            grad(v_means2d, (n_cam, n, 2)),
            grad(v_depths, (n_cam, n)),
            grad(v_conics, (n_cam, n, 3)),
            grad(v_opac, (n_cam, n)),
            grad(v_colors, (n_cam, n, 3)) if deg >= 0 else np.zeros((n_cam, n, 3), dtype=dtype),
        ]
        v_out = [np.zeros_like(a) for a in arrays] + [np.zeros_like(sh)]
        project_backward(*arrays, sh, deg, *cams, width, height, eps2d, antialiased, radii, *v_in, *v_out)
        grads = [torch.from_numpy(v) for v in v_out]
        v_coeffs = grads[4].to(ctx.dtypes[1]) if deg >= 0 else None
        return (*grads[:4], v_coeffs) + (None,) * 10
