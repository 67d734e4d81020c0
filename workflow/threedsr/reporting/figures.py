"""The crops figure: the test views' centre crops side by side, LR input | each method | ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data.scene import PreparedScene
from ..imaging import labelled
from ..io import read_image, write_png
from .tables import is_2d


def crops_figure(scene_dir: Path, render_dirs: dict[str, Path], out_png: Path, crop: int = 96) -> None:
    """Per test view, one row: LR input (nearest-upsampled) | each method | ground truth, on a centre crop."""
    scene = PreparedScene(scene_dir)
    rows = []
    for v in scene.test_views:
        gt = np.array(scene.image(v, "hr"))
        h, w = gt.shape[:2]
        c = min(crop, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        lr = np.asarray(Image.fromarray(np.array(scene.image(v, "lr"))).resize((w, h), Image.NEAREST))
        panels = (
            [("LR input", lr)]
            + [(f"{m} (2D)" if is_2d(m) else m, np.array(read_image(Path(d) / f"{v.name}.png"))) for m, d in render_dirs.items()]
            + [("ground truth", gt)]
        )
        tiles = [
            labelled(Image.fromarray(np.ascontiguousarray(img[y0 : y0 + c, x0 : x0 + c])).resize((2 * c, 2 * c), Image.NEAREST), label)
            for label, img in panels
        ]
        rows.append(np.concatenate(tiles, axis=1))
    write_png(out_png, np.concatenate(rows, axis=0))
