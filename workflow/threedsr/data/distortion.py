"""Lens distortion of COLMAP cameras: how far it moves the image, and undistorting an image with pycolmap.

3D Gaussian splatting renders pinhole cameras. A distorted camera (SIMPLE_RADIAL, OPENCV, ...) is
either used as a pinhole (its f and c, distortion ignored: what the official 3DSR code and NeRF-style
loaders do with the LLFF release) or its images are undistorted first (what 3DGS' convert.py does
with COLMAP's image_undistorter). `decide` chooses, from how many pixels the distortion moves an
image corner at the HR size (see docs/data.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .cameras import Intrinsics, Lens

log = logging.getLogger(__name__)

MODES = ("auto", "always", "never")


def corner_displacement(lens: Lens) -> float:
    """Pixels (at the lens' resolution) between where the distorted camera images the corners of the frame and
    where a pinhole camera with the same f and c would: what ignoring the distortion costs at its worst."""
    cam = lens.camera()
    corners = np.array([[0.5, 0.5], [lens.width - 0.5, 0.5], [0.5, lens.height - 0.5], [lens.width - 0.5, lens.height - 0.5]])
    rays = cam.cam_from_img(corners)  # normalised image coordinates, distortion removed
    K = np.array(cam.calibration_matrix())
    pinhole = rays @ K[:2, :2].T + K[:2, 2]
    return float(np.linalg.norm(pinhole - corners, axis=1).max())


@dataclass(frozen=True)
class Decision:
    undistort: bool
    hr_displacement: float  # pixels a corner moves at the HR size
    reason: str


def decide(lenses: list[Lens], hr_factor: int, mode: str, tolerance_px: float, llff_release: bool) -> Decision:
    """Undistort a scene's images, or use its cameras as pinholes.

    auto: the LLFF release (poses_bounds.npy beside a complete COLMAP model) as the official code reads it
    (pinhole, distortion ignored), any other capture undistorted when a corner moves more than `tolerance_px`
    HR pixels. always / never force either.
    """
    if not lenses:
        return Decision(False, 0.0, "pinhole cameras")
    moved = max(corner_displacement(lens) / hr_factor for lens in lenses)
    distinct = sorted({f"{lens.model} {np.round(lens.params, 5).tolist()}" for lens in lenses})
    # one camera per image (71 in room) would make a 6 KB line: their count, models and the first
    models = "; ".join(distinct) if len(distinct) <= 2 else f"{len(distinct)} cameras, e.g. {distinct[0]}"
    what = f"distortion ({models}) moves an image corner by {moved:.2f} px at the HR size (1/{hr_factor})"
    if mode == "always":
        return Decision(True, moved, f"{what}: undistorted (poses.undistort: always)")
    if mode == "never":
        return Decision(False, moved, f"{what}: ignored, cameras used as pinholes (poses.undistort: never)")
    if llff_release:
        return Decision(
            False,
            moved,
            f"{what}: ignored, as the official 3DSR code and NeRF-style loaders read the LLFF release "
            "(poses_bounds.npy beside the model); poses.undistort: always undistorts it",
        )
    if moved > tolerance_px:
        return Decision(True, moved, f"{what} > poses.undistort_above_px ({tolerance_px}): undistorted")
    return Decision(False, moved, f"{what} <= poses.undistort_above_px ({tolerance_px}): ignored")


def undistort(image: np.ndarray, lens: Lens) -> tuple[np.ndarray, Intrinsics]:
    """The image (HxWx3 uint8, any rescale of the lens' resolution) undistorted by pycolmap (COLMAP's
    image_undistorter: no blank pixels, bilinear), and its pinhole camera."""
    import pycolmap

    h, w = image.shape[:2]
    bitmap, cam = pycolmap.undistort_image(
        pycolmap.UndistortCameraOptions(), pycolmap.Bitmap.from_array(np.ascontiguousarray(image)), lens.camera(w, h)
    )
    fx, fy, cx, cy = (float(p) for p in cam.params)
    return np.ascontiguousarray(bitmap.to_array()), Intrinsics(fx, fy, cx, cy, int(cam.width), int(cam.height))
