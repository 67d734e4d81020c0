"""The pose stage: every scene, whatever it ships, ends as posed views plus initial points.

Sources, in order of preference:
1. a complete COLMAP model in sparse/0 (binary or text), read with pycolmap;
2. LLFF's poses_bounds.npy (poses in the sorted order of the original images), with points
   from sparse/0/points3D.* when present, else triangulated from the known poses;
3. a transforms.json (nerfstudio, Instant-NGP; data/transforms_json.py), with the points of its
   ply_file_path when it names one, else triangulated from the known poses;
4. nothing: structure from motion with pycolmap.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, image_size, list_images, read_json, write_json
from . import colmap, transforms_json
from .cameras import Intrinsics, PosedView
from .pointcloud import read_colmap_points3d, read_ply, read_points_ply, write_ply

log = logging.getLogger(__name__)

_LLFF_RENAMED = re.compile(r"image\d+$")


@dataclass
class ScenePoses:
    views: list[PosedView]  # sorted by name
    xyz: np.ndarray
    rgb: np.ndarray
    source: str  # "colmap" | "llff" | "transforms.json" | "sfm"; with "+triangulated" when points were made here
    llff_release: bool = False  # poses_bounds.npy beside the COLMAP model: the release reads its cameras as pinholes

    def save(self, out_dir: Path) -> None:
        with atomic_dir(out_dir) as tmp:
            write_ply(tmp / "points3d.ply", self.xyz, self.rgb)
            write_json(
                tmp / "poses.json", {"source": self.source, "llff_release": self.llff_release, "views": [v.to_dict() for v in self.views]}
            )

    @classmethod
    def load(cls, out_dir: Path) -> "ScenePoses":
        meta = read_json(Path(out_dir) / "poses.json")
        xyz, rgb = read_ply(Path(out_dir) / "points3d.ply")
        return cls([PosedView.from_dict(v) for v in meta["views"]], xyz, rgb, meta["source"], meta.get("llff_release", False))


def image_folders(scene_dir: Path) -> dict[int, Path]:
    """{downsampling factor: folder}: images/ is factor 1, images_N/ factor N (LLFF / MipNeRF360 layout)."""
    if not scene_dir.is_dir():
        raise DataError(f"{scene_dir}: scene folder not found")
    folders = {}
    for p in scene_dir.iterdir():
        m = re.fullmatch(r"images(?:_(\d+))?", p.name)
        if p.is_dir() and m and list_images(p):
            folders[int(m.group(1) or 1)] = p
    if not folders:
        raise DataError(f"{scene_dir}: no images/ or images_N/ folder with images")
    return folders


def pose_image_folder(scene_dir: Path) -> Path:
    """The folder whose images the poses describe: the originals if present, else the largest copy."""
    folders = image_folders(scene_dir)
    return folders[min(folders)]


def match_images(pose_names: list[str], folder: Path, where: str) -> list[Path]:
    """The file in `folder` for each pose name.

    By exact name, then by stem (a PNG re-encode of a JPG). LLFF's images_N/ rename the
    originals to image000.png..., in sorted order of the originals: matched by position.
    """
    files = list_images(folder)
    by_name = {f.name: f for f in files}
    by_stem = {f.stem: f for f in files}
    out = [by_name.get(n) or by_stem.get(Path(n).stem) for n in pose_names]
    if all(out):
        return out
    if all(_LLFF_RENAMED.fullmatch(f.stem) for f in files):
        if len(files) != len(pose_names):
            raise DataError(f"{where}: {len(pose_names)} posed images but {len(files)} images in {folder}")
        return files
    missing = [n for n, f in zip(pose_names, out) if f is None]
    raise DataError(f"{where}: {len(missing)} posed images have no file in {folder}, e.g. {missing[:3]}")


def llff_poses(path: Path) -> list[tuple[Intrinsics, np.ndarray]]:
    """(Intrinsics at the poses' own resolution, 4x4 world_to_camera in OpenCV axes) per row of poses_bounds.npy."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or not np.all(np.isfinite(arr)):
        nex = " (NeX's layout: N x 14 with hwf_cxcy.npy beside it)" if arr.ndim == 2 and arr.shape[1] == 14 else ""
        raise DataError(
            f"{path}: expected LLFF's N x 17 array of finite numbers (3x5 pose and hwf, near, far per image), got shape "
            f"{arr.shape}{nex}. Move it away so that the poses come from sparse/0 (a COLMAP model) or from structure from "
            "motion, or replace it with the original LLFF poses_bounds.npy"
        )
    out = []
    for row in arr:
        m = row[:15].reshape(3, 5)
        h, w, f = m[:, 4]
        # LLFF columns are (down, right, backwards); OpenCV wants (right, down, forwards).
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([m[:, 1], m[:, 0], -m[:, 2]], axis=1)
        c2w[:3, 3] = m[:, 3]
        out.append((Intrinsics(f, f, w / 2, h / 2, int(round(w)), int(round(h))), np.linalg.inv(c2w)))
    return out


def _views(scene_dir: Path, entries, files: list[Path]) -> list[PosedView]:
    """PosedViews from (name, Intrinsics, Lens or None, world_to_camera); intrinsics stay at the poses' resolution
    (the originals), checked against each file's actual size."""
    views = []
    for (name, K, lens, w2c), f in zip(entries, files):
        w, h = image_size(f)
        if abs((w / K.width) / (h / K.height) - 1) > 0.01:
            raise DataError(
                f"{f}: image is {w}x{h} but its pose is for {K.width}x{K.height}; "
                "the aspect ratios differ, so this is not a rescaled copy (cropped?)"
            )
        views.append(PosedView(Path(name).stem, str(f.relative_to(scene_dir)), K, w2c, lens))
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise DataError(f"{scene_dir}: image names are not unique once their extensions are dropped")
    return views


def _triangulated(scene_dir: Path, folder: Path, views: list[PosedView], work_dir: Path, max_image_size: int):
    """Points for known poses: SIFT matches triangulated with pycolmap (at the image files' size)."""
    at_file_size = [(Path(v.image).name, v.intrinsics.resized(*image_size(scene_dir / v.image)), v.world_to_camera) for v in views]
    return colmap.triangulate(folder, at_file_size, work_dir / "triangulation", max_image_size)


def load_scene_poses(scene_dir: Path, work_dir: Path, max_image_size: int = 1600) -> ScenePoses:
    scene_dir = Path(scene_dir)
    folder = pose_image_folder(scene_dir)
    sparse = scene_dir / "sparse" / "0"
    llff = scene_dir / "poses_bounds.npy"
    llff_release = False
    if colmap.has_model(sparse):
        entries, xyz, rgb = colmap.read_model(sparse)
        views = _views(scene_dir, entries, match_images([e[0] for e in entries], folder, str(sparse)))
        source = "colmap"
        llff_release = llff.exists()
    elif llff.exists():
        poses = llff_poses(llff)
        files = list_images(folder)
        if len(files) != len(poses):
            raise DataError(f"{llff}: {len(poses)} poses but {len(files)} images in {folder}")
        entries = [(f.name, K, None, w2c) for f, (K, w2c) in zip(files, poses)]
        views = _views(scene_dir, entries, files)
        source = "llff"
        if (sparse / "points3D.bin").exists() or (sparse / "points3D.txt").exists():
            xyz, rgb = read_colmap_points3d(sparse)
        else:
            xyz, rgb = _triangulated(scene_dir, folder, views, work_dir, max_image_size)
            source += "+triangulated"
    elif (scene_dir / transforms_json.FILE).exists():
        frames, ply = transforms_json.read_transforms(scene_dir / transforms_json.FILE)
        entries = [(name, K, lens, w2c) for name, _, K, lens, w2c in frames]
        views = _views(scene_dir, entries, match_images([name for name, *_ in frames], folder, str(scene_dir / transforms_json.FILE)))
        source = "transforms.json"
        if ply is not None:
            xyz, rgb = read_points_ply(ply)
        else:
            xyz, rgb = _triangulated(scene_dir, folder, views, work_dir, max_image_size)
            source += "+triangulated"
    else:
        files = list_images(folder)
        log.info("%s: no poses found, running structure from motion on %d images", scene_dir, len(files))
        entries, xyz, rgb = colmap.run_sfm(folder, [f.name for f in files], work_dir / "sfm", max_image_size)
        views = _views(scene_dir, entries, match_images([e[0] for e in entries], folder, "SfM"))
        source = "sfm"
    if len(xyz) == 0:
        raise DataError(f"{scene_dir}: no 3D points to initialise from")
    return ScenePoses(sorted(views, key=lambda v: v.name), xyz, rgb, source, llff_release)
