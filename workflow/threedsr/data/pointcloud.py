"""Sparse point clouds: COLMAP points3D (binary or text) in, binary PLY in and out."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_path

_POINT_HEADER = struct.Struct("<Q3d3BdQ")
PLY_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Binary little-endian PLY with float xyz and uchar colours, as SfM tools and 3DGS code read it."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    if len(xyz) != len(rgb):
        raise ValueError(f"{len(xyz)} points but {len(rgb)} colours")
    data = np.empty(len(xyz), dtype=PLY_DTYPE)
    for i, k in enumerate("xyz"):
        data[k] = xyz[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        data[k] = rgb[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(data)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(data.tobytes())


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY written by write_ply: (xyz float32 (N,3), rgb uint8 (N,3))."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise DataError(f"{path}: not a PLY file")
    header = raw[:end].decode("ascii").splitlines()
    n = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    body = raw[end + len(b"end_header\n") :]
    if len(body) != n * PLY_DTYPE.itemsize:
        raise DataError(f"{path}: expected {n} vertices of {PLY_DTYPE.itemsize} bytes, file is truncated or of another layout")
    data = np.frombuffer(body, dtype=PLY_DTYPE)
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1)
    rgb = np.stack([data["red"], data["green"], data["blue"]], axis=1)
    return xyz, rgb


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_points_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, rgb) of the first element of any point PLY (other tools': ASCII or binary, float or double coordinates,
    colours optional: grey without); properties it has besides are skipped. Faces and list properties are refused."""
    path = Path(path)
    raw = path.read_bytes()
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(f"{path}: not a PLY file")
    body = raw[raw.index(b"\n", end) + 1 :]
    lines = raw[:end].decode("ascii", "replace").splitlines()
    fmt = next((ln.split()[1] for ln in lines if ln.startswith("format ")), "")
    props, count, first = [], 0, True
    for ln in lines:
        parts = ln.split()
        if parts[:1] == ["element"]:
            if count:
                first = False  # only the first element (the vertices) is read
            elif parts[1] != "vertex":
                raise DataError(f"{path}: the first element is {parts[1]!r}, not the vertices")
            else:
                count = int(parts[2])
        elif parts[:1] == ["property"] and first and count:
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise DataError(f"{path}: vertex property {ln.strip()!r} cannot be read (a point PLY is expected)")
            props.append((parts[2], _PLY_TYPES[parts[1]]))
    names = [n for n, _ in props]
    if not all(k in names for k in "xyz"):
        raise DataError(f"{path}: the vertices have no x, y, z ({names})")
    try:
        if fmt == "ascii":
            table = np.loadtxt(body.decode("ascii").splitlines()[:count], ndmin=2)
            data = {n: table[:, i] for i, (n, _) in enumerate(props)}
        elif fmt in ("binary_little_endian", "binary_big_endian"):
            order = "<" if fmt == "binary_little_endian" else ">"
            dtype = np.dtype([(n, order + t) for n, t in props])
            data = np.frombuffer(body[: count * dtype.itemsize], dtype=dtype)
        else:
            raise DataError(f"{path}: PLY format {fmt!r} is not ascii or binary")
        if len(data["x"]) != count:
            raise ValueError(f"{len(data['x'])} of {count} vertices")
    except (ValueError, IndexError) as e:
        raise DataError(f"{path}: truncated or not what its header says ({e})") from None
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float32)
    if all(k in names for k in ("red", "green", "blue")):
        rgb = np.stack([data["red"], data["green"], data["blue"]], axis=1)
        rgb = np.clip(np.rint(rgb * 255) if rgb.dtype.kind == "f" and rgb.max() <= 1 else rgb, 0, 255).astype(np.uint8)
    else:
        rgb = np.full((count, 3), 128, np.uint8)
    if not np.all(np.isfinite(xyz)):
        raise DataError(f"{path}: some points are not finite")
    return xyz, rgb


def read_colmap_points3d(sparse_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """xyz (N,3) float64 and rgb (N,3) uint8 from points3D.bin or points3D.txt.

    Read directly because a partial model (e.g. missing images.bin) cannot be loaded by pycolmap.
    """
    sparse_dir = Path(sparse_dir)
    if (sparse_dir / "points3D.bin").exists():
        return _read_points3d_bin(sparse_dir / "points3D.bin")
    if (sparse_dir / "points3D.txt").exists():
        return _read_points3d_txt(sparse_dir / "points3D.txt")
    raise DataError(f"{sparse_dir}: no points3D.bin or points3D.txt")


def _read_points3d_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    try:
        (n,) = struct.unpack_from("<Q", raw, 0)
        off = 8
        xyz = np.empty((n, 3))
        rgb = np.empty((n, 3), dtype=np.uint8)
        for i in range(n):
            # point id (u64), xyz (3 f64), rgb (3 u8), error (f64), track length (u64)
            _, x, y, z, r, g, b, _, track_len = _POINT_HEADER.unpack_from(raw, off)
            off += _POINT_HEADER.size + 8 * track_len  # each track element is (image_id i32, point2D_idx i32)
            xyz[i] = (x, y, z)
            rgb[i] = (r, g, b)
    except struct.error:
        raise DataError(f"{path}: truncated or not a COLMAP points3D.bin") from None
    if off != len(raw):
        raise DataError(f"{path}: {len(raw) - off} unexpected trailing bytes; not a COLMAP points3D.bin")
    return xyz, rgb


def _read_points3d_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        try:
            xyz.append([float(v) for v in f[1:4]])
            rgb.append([int(v) for v in f[4:7]])
        except (ValueError, IndexError):
            raise DataError(f"{path}:{lineno}: malformed point line") from None
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, dtype=np.uint8).reshape(-1, 3)
