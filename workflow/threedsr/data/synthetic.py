"""Procedural scenes with exact cameras, textured with bundled photographs (the offline default dataset).

A scene is a set of textured rectangles ("quads"). Images are ray cast with a regular
supersampling grid per pixel (anti-aliasing) and bilinear texture lookup; the cameras are
known exactly, and sparse points sampled on the visible surfaces stand in for SfM points.
The generator writes the scene in the official layout (images/ + a COLMAP text model in
sparse/0), so it goes through the same pose and downsampling stages as a real capture.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..devices import job_threads
from ..errors import ConfigError
from ..io import atomic_dir, write_json, write_png
from ..progress import progress
from . import colmap
from .cameras import Intrinsics, look_at
from .photos import load_photo

BACKGROUND = np.array([0.5, 0.5, 0.5])


@dataclass
class Quad:
    """The rectangle center + a*u + b*v for a, b in [-1, 1], textured with `texture` (a at columns, b at rows)."""

    center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray  # HxWx3 float in [0, 1]
    texture_id: str = ""
    normal: np.ndarray = field(init=False)

    def __post_init__(self):
        self.center, self.u, self.v = (np.asarray(x, dtype=np.float64) for x in (self.center, self.u, self.v))
        n = np.cross(self.u, self.v)
        self.normal = n / np.linalg.norm(n)

    @property
    def area(self) -> float:
        return 4 * float(np.linalg.norm(np.cross(self.u, self.v)))

    def intersect(self, origins: np.ndarray, dirs: np.ndarray):
        """Ray parameter t (inf where missed) and quad coordinates (a, b) for rays o + t d."""
        denom = dirs @ self.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((self.center - origins) @ self.normal) / denom
        p = origins + t[:, None] * dirs - self.center
        a = p @ self.u / (self.u @ self.u)
        b = p @ self.v / (self.v @ self.v)
        hit = (t > 1e-9) & (np.abs(a) <= 1) & (np.abs(b) <= 1) & np.isfinite(t)
        return np.where(hit, t, np.inf), a, b

    def sample_texture(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bilinear lookup; texel centres at half-integers, as for image pixels."""
        h, w = self.texture.shape[:2]
        x = np.clip((a + 1) / 2 * w - 0.5, 0, w - 1)
        y = np.clip((b + 1) / 2 * h - 0.5, 0, h - 1)
        x0, y0 = np.minimum(x.astype(int), w - 2), np.minimum(y.astype(int), h - 2)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        t = self.texture
        top = t[y0, x0] * (1 - fx) + t[y0, x0 + 1] * fx
        bottom = t[y0 + 1, x0] * (1 - fx) + t[y0 + 1, x0 + 1] * fx
        return top * (1 - fy) + bottom * fy


def cast(quads: list[Quad], origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N, 3) and hit distance t (N,) of the nearest quad along each ray."""
    n = len(dirs)
    best_t = np.full(n, np.inf)
    colour = np.tile(BACKGROUND, (n, 1))
    for q in quads:
        t, a, b = q.intersect(origins, dirs)
        closer = t < best_t
        if closer.any():
            best_t[closer] = t[closer]
            colour[closer] = q.sample_texture(a[closer], b[closer])
    return colour, best_t


def pixel_rays(K: Intrinsics, world_to_camera: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """World-space origins and (unnormalised, z_cam = 1) directions of rays through continuous pixel coords."""
    R, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
    d_cam = np.stack([(xs - K.cx) / K.fx, (ys - K.cy) / K.fy, np.ones_like(xs)], axis=-1)
    dirs = d_cam @ R  # R^T d for each row
    origin = -R.T @ t
    return np.broadcast_to(origin, dirs.shape), dirs


def render_quads(quads: list[Quad], K: Intrinsics, world_to_camera: np.ndarray, supersample: int = 3) -> np.ndarray:
    """HxWx3 float image: the mean of supersample^2 rays on a regular grid inside each pixel."""
    jj, ii = np.meshgrid(np.arange(K.width, dtype=np.float64), np.arange(K.height, dtype=np.float64))
    acc = np.zeros((K.height * K.width, 3))
    offsets = (np.arange(supersample) + 0.5) / supersample
    for oy in offsets:
        for ox in offsets:
            origins, dirs = pixel_rays(K, world_to_camera, (jj + ox).ravel(), (ii + oy).ravel())
            acc += cast(quads, origins, dirs)[0]
    return (acc / supersample**2).reshape(K.height, K.width, 3)


def _texture(photo_id: str) -> np.ndarray:
    return load_photo(photo_id).astype(np.float64) / 255


def _box(center, half, photo_ids: list[str]) -> list[Quad]:
    """Five faces of an axis-aligned box (no bottom face; world y points down)."""
    c, (hx, hy, hz) = np.asarray(center, dtype=np.float64), half
    faces = [  # (centre offset, u, v)
        ((0, 0, -hz), (hx, 0, 0), (0, hy, 0)),
        ((0, 0, hz), (-hx, 0, 0), (0, hy, 0)),
        ((-hx, 0, 0), (0, 0, -hz), (0, hy, 0)),
        ((hx, 0, 0), (0, 0, hz), (0, hy, 0)),
        ((0, -hy, 0), (hx, 0, 0), (0, 0, hz)),
    ]
    return [Quad(c + np.array(o), u, v, _texture(p), p) for (o, u, v), p in zip(faces, photo_ids)]


def _rot_y(deg: float) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.array([[np.cos(r), 0, np.sin(r)], [0, 1, 0], [-np.sin(r), 0, np.cos(r)]])


def forward_scene(rng: np.random.Generator, width: int, height: int, num_views: int):
    """LLFF-like: a camera grid on a small plane, all looking forward at layered photographs."""
    quads = [
        Quad((0, 0, 6), (4.5, 0, 0), (0, 3.4, 0), _texture("skimage:coffee"), "skimage:coffee"),
        Quad((0, 2.0, 3.5), (4.5, 0, 0), (0, 0, 3.0), _texture("skimage:gravel"), "skimage:gravel"),
        Quad((-1.2, -0.4, 3.6), _rot_y(15) @ (1.1, 0, 0), (0, 0.75, 0), _texture("skimage:astronaut"), "skimage:astronaut"),
        Quad((1.3, 0.5, 2.8), _rot_y(-25) @ (0.9, 0, 0), (0, 0.6, 0), _texture("skimage:chelsea"), "skimage:chelsea"),
        Quad((0.3, 1.0, 4.4), (0.8, 0, 0), (0, 0.5, 0.2), _texture("sklearn:flower"), "sklearn:flower"),
    ]
    cols = int(np.ceil(np.sqrt(num_views * 4 / 3)))
    rows = int(np.ceil(num_views / cols))
    grid = [(x, y) for y in np.linspace(-0.3, 0.3, rows) for x in np.linspace(-0.5, 0.5, cols)][:num_views]
    K = Intrinsics(0.9 * width, 0.9 * width, width / 2, height / 2, width, height)
    cams = []
    for x, y in grid:
        eye = np.array([x, y, 0.0]) + rng.normal(0, 0.02, 3)
        target = np.array([0.0, 0.0, 8.0]) + rng.normal(0, 0.1, 3)
        cams.append((K, look_at(eye, target, up=(0, -1, 0))))
    return quads, cams


def orbit_scene(rng: np.random.Generator, width: int, height: int, num_views: int):
    """MipNeRF360-like: cameras on a circle around photo-covered boxes, inside a photo-walled room."""
    r = 10.0
    quads = [
        Quad((0, 1, 0), (r, 0, 0), (0, 0, r), _texture("skimage:grass"), "skimage:grass"),
        Quad((0, -6, 0), (r, 0, 0), (0, 0, -r), _texture("skimage:brick"), "skimage:brick"),
        Quad((0, -2.5, r), (r, 0, 0), (0, 3.5, 0), _texture("skimage:coffee"), "skimage:coffee"),
        Quad((0, -2.5, -r), (-r, 0, 0), (0, 3.5, 0), _texture("skimage:gravel"), "skimage:gravel"),
        Quad((r, -2.5, 0), (0, 0, -r), (0, 3.5, 0), _texture("sklearn:flower"), "sklearn:flower"),
        Quad((-r, -2.5, 0), (0, 0, r), (0, 3.5, 0), _texture("skimage:ihc"), "skimage:ihc"),
        *_box((0, 0.4, 0), (0.6, 0.6, 0.6), ["skimage:astronaut", "skimage:coffee", "skimage:chelsea", "sklearn:flower", "skimage:ihc"]),
        *_box(
            (1.3, 0.6, -0.9), (0.4, 0.4, 0.4), ["skimage:retina", "skimage:brick", "sklearn:flower", "skimage:coffee", "skimage:chelsea"]
        ),
        Quad((-1.2, 0.2, 1.0), _rot_y(40) @ (0.5, 0, 0), (0, 0.8, 0), _texture("skimage:astronaut"), "skimage:astronaut"),
    ]
    K = Intrinsics(0.7 * width, 0.7 * width, width / 2, height / 2, width, height)
    cams = []
    for k in range(num_views):
        phi = 2 * np.pi * k / num_views + rng.normal(0, 0.03)
        radius = 4.0 + rng.normal(0, 0.1)
        eye = np.array([radius * np.cos(phi), -1.2 + rng.normal(0, 0.1), radius * np.sin(phi)])
        cams.append((K, look_at(eye, np.array([0.0, 0.3, 0.0]), up=(0, -1, 0))))
    return quads, cams


SCENES = {"forward": (forward_scene, 20), "orbit": (orbit_scene, 24)}


def sample_points(quads: list[Quad], cams, num_points: int, rng: np.random.Generator, min_views: int = 2):
    """Points on the surfaces, area-weighted, kept where at least `min_views` cameras see them unoccluded."""
    areas = np.array([q.area for q in quads])
    which = rng.choice(len(quads), size=num_points, p=areas / areas.sum())
    ab = rng.uniform(-1, 1, size=(num_points, 2))
    xyz = np.stack([quads[i].center + a * quads[i].u + b * quads[i].v for i, (a, b) in zip(which, ab)])
    rgb = np.stack([quads[i].sample_texture(np.array([a]), np.array([b]))[0] for i, (a, b) in zip(which, ab)])
    seen = np.zeros(num_points, dtype=int)
    for K, w2c in cams:
        origin = -w2c[:3, :3].T @ w2c[:3, 3]
        dirs = xyz - origin
        cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
        uv = cam[:, :2] / cam[:, 2:3] * [K.fx, K.fy] + [K.cx, K.cy]
        inside = (cam[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < K.width) & (uv[:, 1] >= 0) & (uv[:, 1] < K.height)
        _, t = cast(quads, np.broadcast_to(origin, dirs.shape), dirs)
        seen += inside & (t > 1 - 1e-6)  # nothing in front of the point (it sits at t = 1)
    keep = seen >= min_views
    return xyz[keep], np.round(rgb[keep] * 255).astype(np.uint8)


def generate_scene(
    name: str, out_dir: Path, width: int, height: int, supersample: int, num_points: int, seed: int, num_views: int | None = None
) -> dict:
    """Write images/, sparse/0 (COLMAP text) and synthetic.json (textures used, settings) to out_dir."""
    if name not in SCENES:
        raise ConfigError(f"datasets.synthetic.scenes: unknown scene {name!r}; choose from {sorted(SCENES)}")
    make, default_views = SCENES[name]
    rng = np.random.default_rng(seed)
    quads, cams = make(rng, width, height, num_views or default_views)
    with atomic_dir(out_dir) as tmp, ThreadPoolExecutor(job_threads()) as pool:
        entries = []
        # views render on the job's threads (numpy releases the GIL in its array loops); each view alone, as before
        images = pool.map(lambda cam: render_quads(quads, cam[0], cam[1], supersample), cams)
        for k, ((K, w2c), image) in enumerate(progress(zip(cams, images), total=len(cams), desc=f"render {name}", unit="view")):
            image_name = f"view_{k:03d}.png"
            write_png(tmp / "images" / image_name, np.round(image * 255).astype(np.uint8))
            entries.append((image_name, K, w2c))
        xyz, rgb = sample_points(quads, cams, num_points, rng)
        colmap.write_text_model(tmp / "sparse" / "0", entries, xyz, rgb)
        meta = {
            "scene": name,
            "seed": seed,
            "width": width,
            "height": height,
            "supersample": supersample,
            "num_views": len(cams),
            "num_points": int(len(xyz)),
            "textures": sorted({q.texture_id for q in quads}),
        }
        write_json(tmp / "synthetic.json", meta)
    return meta
