"""EWA projection of 3D Gaussians to the image plane, following gsplat's fully fused projection.

Pure PyTorch (autograd gives the gradients); the same conventions as gsplat: pixel centres at
+0.5, the low-pass dilation eps2d added to the 2D covariance ("classic"), with the opacity
compensation sqrt(det / det_dilated) in "antialiased" mode, and an opacity-aware 3.33-sigma
bounding radius used only for culling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ALPHA_THRESHOLD = 1.0 / 255.0


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return R.reshape(quats.shape[:-1] + (3, 3))


def covariance(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) world covariances R S S^T R^T."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project(
    means: torch.Tensor,  # (N, 3)
    covars: torch.Tensor,  # (N, 3, 3)
    opacities: torch.Tensor,  # (N,)
    viewmats: torch.Tensor,  # (C, 4, 4) world-to-camera
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
):
    """radii (C, N, 2) int32, means2d (C, N, 2), depths (C, N), conics (C, N, 3), opacities (C, N)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)
    tx, ty, tz = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # clamp the Jacobian's point to 1.3x the field of view, as gsplat does, to keep far-off-screen
    # Gaussians from blowing up
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    txc = tz * torch.clamp(tx / tz, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz * torch.clamp(ty / tz, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], dim=-1).reshape(tz.shape + (2, 3))
    cov2d = J @ covars_c @ J.transpose(-1, -2)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], dim=-1)

    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack(
        [cov2d[..., 1, 1] / det_safe, -(cov2d[..., 0, 1] + cov2d[..., 1, 0]) / 2 / det_safe, cov2d[..., 0, 0] / det_safe], dim=-1
    )
    opac = opacities[None].expand(tz.shape)
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det_safe, min=0.0))

    with torch.no_grad():
        op = opac.detach()
        extend = torch.minimum(torch.full_like(op, 3.33), torch.sqrt(2 * torch.log(op.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD)))
        radius = torch.stack([torch.ceil(extend * torch.sqrt(cov2d[..., 0, 0])), torch.ceil(extend * torch.sqrt(cov2d[..., 1, 1]))], dim=-1)
        valid = (det > 0) & (tz > near_plane) & (tz < far_plane) & (op >= ALPHA_THRESHOLD)
        valid &= ~((radius[..., 0] <= radius_clip) & (radius[..., 1] <= radius_clip))
        m = means2d.detach()
        valid &= (m[..., 0] + radius[..., 0] > 0) & (m[..., 0] - radius[..., 0] < width)
        valid &= (m[..., 1] + radius[..., 1] > 0) & (m[..., 1] - radius[..., 1] < height)
        radius = torch.where(valid[..., None] & torch.isfinite(radius), radius, torch.zeros_like(radius))
        radii = radius.to(torch.int32)
    return radii, means2d, tz, conics, opac
