"""COLMAP models through pycolmap: read a model, write one, run SfM, triangulate with known poses."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import DataError
from .cameras import Intrinsics, Lens

log = logging.getLogger(__name__)

# Distortion parameters below this are treated as zero (undistorted data stored in a distorted model).
_DISTORTION_TOL = 1e-9


def has_model(sparse_dir: Path) -> bool:
    """True if `sparse_dir` holds a complete model (cameras, images, points), binary or text."""
    return any(all((sparse_dir / f"{n}.{ext}").exists() for n in ("cameras", "images", "points3D")) for ext in ("bin", "txt"))


def camera_intrinsics(camera, where: str) -> tuple[Intrinsics, Lens | None]:
    """Pinhole intrinsics (f, c) of a pycolmap camera and, if it has lens distortion, the Lens to undistort with
    (prepare.py decides: docs/data.md). Models that are not perspective projections are refused."""
    name = camera.model.name
    if name in _NOT_PERSPECTIVE:
        raise DataError(
            f"{where}: camera {camera.camera_id} is {name}, not a perspective camera; undistort the scene to "
            "PINHOLE first (colmap image_undistorter) and point the dataset root at the result"
        )
    K = np.asarray(camera.calibration_matrix(), dtype=np.float64)
    intr = Intrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(camera.width), int(camera.height))
    p = np.asarray(camera.params, dtype=np.float64)
    dist = p[list(camera.extra_params_idxs())]
    has_distortion = bool(np.any(np.abs(dist) > _DISTORTION_TOL))
    return intr, Lens(name, tuple(float(v) for v in p), int(camera.width), int(camera.height)) if has_distortion else None


_NOT_PERSPECTIVE = ("SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "OPENCV_FISHEYE", "FOV", "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE")


def read_model(sparse_dir: Path):
    """(entries, xyz, rgb) of a COLMAP model; entries are (image name, Intrinsics, Lens or None, 4x4 world_to_camera)."""
    import pycolmap

    try:
        rec = pycolmap.Reconstruction(str(sparse_dir))
    except Exception as e:  # pycolmap raises plain RuntimeError/ValueError for unreadable files
        raise DataError(f"{sparse_dir}: cannot read COLMAP model ({e})") from None
    return _entries(rec, sparse_dir)


def _entries(rec, where: Path):
    entries = []
    for image in rec.images.values():
        if not image.has_pose:
            continue
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        entries.append((image.name, *camera_intrinsics(rec.cameras[image.camera_id], str(where)), w2c))
    entries.sort(key=lambda e: e[0])
    pts = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([p.color for p in pts], dtype=np.uint8).reshape(-1, 3)
    return entries, xyz, rgb


def write_text_model(out_dir: Path, entries, xyz=None, rgb=None, ids: dict[str, tuple[int, int]] | None = None) -> None:
    """Write cameras.txt / images.txt / points3D.txt (one PINHOLE camera per image, no tracks).

    `ids` maps an image name to its (image_id, camera_id); by default both are the 1-based position.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cams, imgs = (
        ["# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"],
        ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", "# POINTS2D[] as (X, Y, POINT3D_ID)"],
    )
    for i, (name, K, w2c) in enumerate(entries, 1):
        image_id, camera_id = ids[name] if ids else (i, i)
        cams.append(f"{camera_id} PINHOLE {K.width} {K.height} {float(K.fx)!r} {float(K.fy)!r} {float(K.cx)!r} {float(K.cy)!r}")
        q = Rotation.from_matrix(w2c[:3, :3]).as_quat(scalar_first=True)
        t = w2c[:3, 3]
        imgs.append(f"{image_id} {' '.join(repr(float(v)) for v in q)} {' '.join(repr(float(v)) for v in t)} {camera_id} {name}")
        imgs.append("")
    pts = ["# POINT3D_ID X Y Z R G B ERROR TRACK[]"]
    if xyz is not None:
        for j, (p, c) in enumerate(zip(np.asarray(xyz), np.asarray(rgb)), 1):
            pts.append(f"{j} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {c[0]} {c[1]} {c[2]} 0")
    (out_dir / "cameras.txt").write_text("\n".join(cams) + "\n")
    (out_dir / "images.txt").write_text("\n".join(imgs) + "\n")
    (out_dir / "points3D.txt").write_text("\n".join(str(x) for x in pts) + "\n")


def _pycolmap():
    import pycolmap

    pycolmap.logging.minloglevel = 0  # COLMAP's per-image and per-block lines are the stage's progress in its log
    return pycolmap


# Known poses tell which images see the same surfaces: above this many images, each is matched with its
# nearest cameras only (exhaustive matching grows as n^2: 292 images are 42,486 pairs).
EXHAUSTIVE_MAX_IMAGES = 50
NEAREST_CAMERAS = 20


def neighbour_pairs(world_to_cameras: list[np.ndarray], k: int = NEAREST_CAMERAS) -> list[tuple[int, int]]:
    """Image pairs (i < j) to match when poses are known: each image with the k cameras nearest to it (by centre)
    among those looking within 90 degrees of its own direction."""
    R = np.array([w[:3, :3] for w in world_to_cameras])
    centres = np.array([-r.T @ w[:3, 3] for r, w in zip(R, world_to_cameras)])
    axes = R[:, 2, :]  # optical axes in world coordinates
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    dist[axes @ axes.T <= 0] = np.inf  # facing away: no common surface worth matching
    np.fill_diagonal(dist, np.inf)
    pairs = set()
    for i, row in enumerate(dist):
        for j in np.argsort(row, kind="stable")[:k]:
            if np.isfinite(row[j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def _extract_and_match(
    image_dir: Path, names: list[str], database: Path, single_camera: bool, max_image_size: int, pairs: list[tuple[int, int]] | None = None
) -> None:
    """SIFT features, then matching: exhaustive, or the given pairs of `names` indices (written to a pairs file)."""
    pycolmap = _pycolmap()

    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    mode = pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.PER_IMAGE
    start = time.perf_counter()
    log.info("SIFT features of %d images (longest side %d px)...", len(names), max_image_size)
    pycolmap.extract_features(
        database, image_dir, image_names=names, camera_mode=mode, reader_options=reader, extraction_options=extraction
    )
    log.info("features: %.0f s", time.perf_counter() - start)
    start = time.perf_counter()
    if pairs is None:
        n = len(names)
        if n > 200:
            log.warning("exhaustive matching of %d images without known poses: %d pairs, this can take hours", n, n * (n - 1) // 2)
        log.info("matching all %d pairs of %d images (exhaustive)...", len(names) * (len(names) - 1) // 2, len(names))
        pycolmap.match_exhaustive(database)
    else:
        pairs_file = database.with_name("pairs.txt")
        pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
        log.info(
            "matching %d pairs of %d images (each with its %d nearest cameras; exhaustive would be %d)...",
            len(pairs),
            len(names),
            NEAREST_CAMERAS,
            len(names) * (len(names) - 1) // 2,
        )
        pycolmap.match_image_pairs(database, pairing_options=pycolmap.ImportedPairingOptions(match_list_path=str(pairs_file)))
    log.info("matching: %.0f s", time.perf_counter() - start)


def run_sfm(image_dir: Path, names: list[str], work_dir: Path, max_image_size: int = 1600):
    """Structure from motion on CPU: SIFT, exhaustive matching, incremental mapping; returns read_model's triple."""
    pycolmap = _pycolmap()

    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    database = work_dir / "database.db"
    _extract_and_match(image_dir, names, database, single_camera=True, max_image_size=max_image_size)
    models = pycolmap.incremental_mapping(database, image_dir, work_dir / "sparse")
    if not models:
        raise DataError(f"{image_dir}: structure from motion registered no images (too little texture or overlap?)")
    best = max(models.values(), key=lambda r: r.num_reg_images())
    log.info("SfM registered %d of %d images, %d points", best.num_reg_images(), len(names), best.num_points3D())
    return _entries(best, image_dir)


def triangulate(image_dir: Path, entries, work_dir: Path, max_image_size: int = 1600):
    """Points from known poses: SIFT matches triangulated with the cameras held fixed. Returns (xyz, rgb)."""
    pycolmap = _pycolmap()

    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    database = work_dir / "database.db"
    names = [e[0] for e in entries]
    pairs = neighbour_pairs([e[2] for e in entries]) if len(names) > EXHAUSTIVE_MAX_IMAGES else None
    _extract_and_match(image_dir, names, database, single_camera=False, max_image_size=max_image_size, pairs=pairs)
    # Extraction runs in parallel, so ids follow completion order: the known model must reuse the
    # database's image and camera ids (and so its one-camera rigs and one-image frames).
    with pycolmap.Database.open(database) as db:
        ids = {im.name: (im.image_id, im.camera_id) for im in db.read_all_images()}
    write_text_model(work_dir / "known", entries, ids=ids)
    rec = pycolmap.Reconstruction(str(work_dir / "known"))
    (work_dir / "triangulated").mkdir()
    start = time.perf_counter()
    log.info("triangulating with the %d cameras held fixed...", len(names))
    rec = pycolmap.triangulate_points(rec, database, image_dir, work_dir / "triangulated")
    _, xyz, rgb = _entries(rec, image_dir)
    log.info("triangulation: %d points in %.0f s", len(xyz), time.perf_counter() - start)
    if len(xyz) == 0:
        raise DataError(f"{image_dir}: triangulation from the known poses produced no points")
    return xyz, rgb
