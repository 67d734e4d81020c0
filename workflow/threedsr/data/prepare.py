"""Downsampling and split: a posed scene becomes the prepared layout (scene.py describes and reads it).

Both resolutions are resampled from the same crop of the largest images available, so
HR size = (lr_factor / hr_factor) x LR size exactly, and the intrinsics are computed from
the crop and sizes actually used (exact, whatever the source resolution).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..imaging import resize_uint8
from ..io import atomic_dir, read_image, read_json, write_json, write_png
from ..progress import progress
from . import distortion
from .cameras import Intrinsics, PosedView
from .datasets import OFFICIAL_SCENES
from .pointcloud import write_ply
from .poses import ScenePoses
from .scene import FORMAT_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewGeometry:
    crop: tuple[int, int, int, int]  # x0, y0, width, height in source pixels
    lr: Intrinsics
    hr: Intrinsics


def is_llff_release(provenance: dict | None) -> bool:
    """The LLFF release is the `llff` dataset's official scenes (downloaded, or the user's copy of them): the one
    capture whose distortion the official code ignores. A phone capture with a poses_bounds.npy is not it."""
    return bool(provenance) and provenance.get("dataset") == "llff" and provenance.get("scene") in OFFICIAL_SCENES["llff"]


SMALL_LR_PX = 32  # LR images smaller than this on a side are said (the cpu-llff factors on ~1000 px originals: 15x11)
MIN_TRAIN_VIEWS = 2  # the camera path of the videos and of SuperGaussian runs between training cameras


def split_of(index: int, test_every: int) -> str:
    """Every test_every-th view in name order (0, N, 2N, ...) is a test view, as in 3DGS and the 3DSR code."""
    return "test" if index % test_every == 0 else "train"


def view_geometry(
    original: Intrinsics, source_size: tuple[int, int], lr_factor: int, hr_factor: int, source: Intrinsics | None = None
) -> ViewGeometry:
    """Crop and cameras for one view.

    `original` is the camera at the resolution its pose was stored for (the originals);
    `source_size` is the actual size of the image file to resample, any rescale of it, and
    `source` its camera when it is not `original` rescaled (an undistorted image).
    """
    if lr_factor % hr_factor:
        raise ConfigError(f"resolution.lr_factor ({lr_factor}) must be a multiple of resolution.hr_factor ({hr_factor})")
    scale = lr_factor // hr_factor
    orig_w, orig_h = original.width, original.height
    src_w, src_h = source_size
    lr_w, lr_h = orig_w // lr_factor, orig_h // lr_factor
    if lr_w < 1 or lr_h < 1:
        raise ConfigError(f"resolution.lr_factor {lr_factor} leaves no pixels of a {orig_w}x{orig_h} original")
    hr_w, hr_h = lr_w * scale, lr_h * scale
    # the centred window of the original frame that is a whole number of LR pixels, in source pixels
    crop_w = round(lr_w * lr_factor * src_w / orig_w)
    crop_h = round(lr_h * lr_factor * src_h / orig_h)
    if crop_w < hr_w or crop_h < hr_h:
        raise DataError(
            f"the largest images available are {src_w}x{src_h}, smaller than the HR target "
            f"{hr_w}x{hr_h} (1/{hr_factor} of {orig_w}x{orig_h}): HR ground truth would be upsampled. "
            "Provide the original images or raise resolution.hr_factor"
        )
    x0, y0 = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    cropped = (source or original.resized(src_w, src_h)).cropped(x0, y0, crop_w, crop_h)
    return ViewGeometry((x0, y0, crop_w, crop_h), cropped.resized(lr_w, lr_h), cropped.resized(hr_w, hr_h))


def prepare_scene(
    scene_dir: Path,
    poses: ScenePoses,
    out_dir: Path,
    lr_factor: int,
    hr_factor: int,
    test_every: int,
    provenance: dict | None = None,
    undistort: str = "auto",
    undistort_above_px: float = 0.5,
) -> dict:
    scene_dir = Path(scene_dir)
    views = sorted(poses.views, key=lambda v: v.name)
    n_train = sum(split_of(i, test_every) == "train" for i in range(len(views)))
    if n_train < MIN_TRAIN_VIEWS:
        raise DataError(
            f"{scene_dir}: {len(views)} posed view(s) give {n_train} training view(s) (every {test_every}th is a test view, "
            f"the first included); a scene needs at least {MIN_TRAIN_VIEWS} training views and one test view: "
            f"{MIN_TRAIN_VIEWS + 1} images or more"
        )
    lenses = sorted({v.lens for v in views if v.lens is not None}, key=repr)
    if len(poses.rgb) and not np.any(poses.rgb):
        log.warning(
            "%s: all %d initial points are black (the model's point colours are unset, as in the LLFF release's room): the "
            "Gaussians start black and take their colours from training",
            scene_dir,
            len(poses.rgb),
        )
    release = poses.llff_release and is_llff_release(provenance)
    if poses.llff_release and not release and lenses:
        log.info(
            "%s: a poses_bounds.npy beside its COLMAP model, but only the llff dataset's official scenes (%s) are read as "
            "the LLFF release (pinholes, as the official 3DSR code): this capture's distortion is treated as any other's",
            scene_dir,
            ", ".join(OFFICIAL_SCENES["llff"]),
        )
    decision = distortion.decide(lenses, hr_factor, undistort, undistort_above_px, release)
    if lenses:
        log.info("%s: %s", scene_dir, decision.reason)
    with atomic_dir(out_dir) as tmp:
        records = []
        for i, view in enumerate(progress(views, desc=f"prepare {scene_dir.name}", unit="view")):
            records.append(_prepare_view(scene_dir, view, lr_factor, hr_factor, split_of(i, test_every), tmp, decision.undistort))
        write_ply(tmp / "points3d.ply", poses.xyz, poses.rgb)
        lr_w, lr_h = records[0]["lr"]["width"], records[0]["lr"]["height"]
        if min(lr_w, lr_h) < SMALL_LR_PX:
            orig = views[0].intrinsics
            log.warning(
                "%s: LR images of %dx%d (1/%d of the %dx%d originals; HR 1/%d): under %d px on a side, the LR model and the SR "
                "prior have little to work with; a smaller resolution.lr_factor (and hr_factor) suits originals of this size",
                scene_dir,
                lr_w,
                lr_h,
                lr_factor,
                orig.width,
                orig.height,
                hr_factor,
                SMALL_LR_PX,
            )
        meta = {
            "format_version": FORMAT_VERSION,
            "source_dir": str(scene_dir),
            "pose_source": poses.source,
            "lr_factor": lr_factor,
            "hr_factor": hr_factor,
            "scale": lr_factor // hr_factor,
            "test_every": test_every,
            "num_views": len(records),
            "num_train": sum(r["split"] == "train" for r in records),
            "num_test": sum(r["split"] == "test" for r in records),
            "num_points": int(len(poses.xyz)),
            "lens_distortion": {
                "undistorted": decision.undistort,
                "hr_corner_px": round(decision.hr_displacement, 3),
                "decision": decision.reason,
            },
            "lr_size": [records[0]["lr"]["width"], records[0]["lr"]["height"]] if records else None,
            "hr_size": [records[0]["hr"]["width"], records[0]["hr"]["height"]] if records else None,
            **(provenance or {}),
            # photos a synthetic scene is textured with: no SR prior may train on them
            "photos_used": read_json(scene_dir / "synthetic.json")["textures"] if (scene_dir / "synthetic.json").exists() else [],
            "views": records,
        }
        write_json(tmp / "scene.json", meta)
    return meta


def _prepare_view(scene_dir, view: PosedView, lr_factor, hr_factor, split, out: Path, undistort: bool = False) -> dict:
    src_path = scene_dir / view.image
    image = read_image(src_path)
    original, source = view.intrinsics, None
    if undistort and view.lens is not None:
        # the undistorted image is the new original frame; the file may be a rescaled copy (images_4/) of the originals
        scale = view.intrinsics.width / image.shape[1]
        image, source = distortion.undistort(image, view.lens)
        original = source.resized(round(source.width * scale), round(source.height * scale))
    try:
        geo = view_geometry(original, (image.shape[1], image.shape[0]), lr_factor, hr_factor, source)
    except DataError as e:
        raise DataError(f"{src_path}: {e}") from None
    x0, y0, w, h = geo.crop
    crop = image[y0 : y0 + h, x0 : x0 + w]
    write_png(out / "lr" / f"{view.name}.png", resize_uint8(crop, geo.lr.width, geo.lr.height))
    write_png(out / "hr" / f"{view.name}.png", resize_uint8(crop, geo.hr.width, geo.hr.height))
    return {
        "name": view.name,
        "split": split,
        "source_image": view.image,
        "crop": list(geo.crop),
        "world_to_camera": np.asarray(view.world_to_camera).tolist(),
        "lr": geo.lr.to_dict(),
        "hr": geo.hr.to_dict(),
    }
