"""The crops figure: per test view, the same zoomed patch of every method side by side, where the detail is.

One row per test view: the ground truth view with the patch marked, then the patch of the LR input, of each method and
of the ground truth, each nearest-neighbour enlarged to TILE pixels so that single pixels stay visible. The patch is the
window of the ground truth with the most gradient energy (where methods differ most), the same for every method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.scene import PreparedScene
from ..imaging import labelled
from ..io import read_image, write_png
from .tables import is_2d

TILE = 256  # pixels per panel, at most (each patch pixel becomes a whole number of them)
MARK = (255, 64, 32)  # the patch's outline on the overview


def detail_patch(gt: np.ndarray, size: int, align: int = 1) -> tuple[int, int]:
    """(y0, x0) of the size×size window of `gt` (H×W×3 uint8) with the largest sum of gradient magnitudes, on a grid of
    `align` pixels (the LR/HR scale: the LR input's patch then starts on a pixel)."""
    g = gt.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = g.shape
    best, where = -1.0, (0, 0)
    step = max(align, size // 8 // align * align)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            s = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            if s > best:
                best, where = s, (y, x)
    return where


def _zoomed(img: np.ndarray, y0: int, x0: int, size: int, tile: int, label: str) -> np.ndarray:
    patch = np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size])
    return labelled(Image.fromarray(patch).resize((tile, tile), Image.NEAREST), label)


def _overview(gt: np.ndarray, y0: int, x0: int, size: int, tile: int) -> np.ndarray:
    """The ground truth view scaled to the tile height, the patch outlined."""
    h, w = gt.shape[:2]
    k = tile / h
    im = Image.fromarray(gt).resize((max(1, round(w * k)), tile), Image.BICUBIC)
    d = ImageDraw.Draw(im)
    d.rectangle((x0 * k, y0 * k, (x0 + size) * k - 1, (y0 + size) * k - 1), outline=MARK, width=2)
    return labelled(im, "ground truth (patch)")


def crops_figure(scene_dir: Path, render_dirs: dict[str, Path], out_png: Path, crop: int = 48) -> None:
    """Per test view, one row: the view with its patch marked | LR input | each method | ground truth, the patch
    (`crop` HR pixels, or a third of the view if smaller) enlarged a whole number of times to at most TILE pixels."""
    scene = PreparedScene(scene_dir)
    s = scene.scale
    rows = []
    for v in scene.test_views:
        gt = np.array(scene.image(v, "hr"))
        h, w = gt.shape[:2]
        size = max(s, min(crop, h // 3, w // 3) // s * s)
        tile = size * max(1, TILE // size)
        y0, x0 = detail_patch(gt, size, s)
        lr = np.array(scene.image(v, "lr"))
        panels = [_overview(gt, y0, x0, size, tile), _zoomed(lr, y0 // s, x0 // s, size // s, tile, "LR input")]
        for m, d in render_dirs.items():
            img = np.array(read_image(Path(d) / f"{v.name}.png"))
            panels.append(_zoomed(img, y0, x0, size, tile, f"{m} (2D)" if is_2d(m) else m))
        panels.append(_zoomed(gt, y0, x0, size, tile, "ground truth"))
        row = np.concatenate(panels, axis=1)
        rows.append(np.pad(row, ((0, 4), (0, 0), (0, 0)), constant_values=255))  # a white line between views
    width = max(r.shape[1] for r in rows)
    write_png(out_png, np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]))
