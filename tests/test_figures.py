"""The crops figure: the patch is where the detail is, the same for every method, enlarged pixel for pixel."""

import numpy as np

from threedsr.io import read_image, write_png
from threedsr.reporting.figures import TILE, crops_figure, detail_patch


def test_the_patch_is_the_most_detailed_window():
    img = np.full((96, 128, 3), 120, np.uint8)
    rng = np.random.default_rng(0)
    img[40:72, 80:112] = rng.integers(0, 255, (32, 32, 3))  # the only texture
    y0, x0 = detail_patch(img, 32, 4)
    assert (y0, x0) == (40, 80) and y0 % 4 == 0 and x0 % 4 == 0


def test_every_method_shows_the_same_patch_enlarged(tiny_scene, tmp_path):
    scene = tiny_scene
    renders = {}
    for method, shift in (("bicubic", 0), ("3dsr", 40)):  # stand-ins: the ground truth, and a brightened copy of it
        renders[method] = tmp_path / method
        for v in scene.test_views:
            write_png(renders[method] / f"{v.name}.png", np.clip(scene.image(v, "hr").astype(int) + shift, 0, 255).astype(np.uint8))
    crops_figure(scene.root, renders, tmp_path / "crops.png")
    fig = read_image(tmp_path / "crops.png")
    v = scene.test_views[0]
    h, w = scene.image(v, "hr").shape[:2]
    size = min(48, h // 3, w // 3) // scene.scale * scene.scale
    zoom = TILE // size
    tile = size * zoom
    overview = round(w * tile / h)
    assert fig.shape == (len(scene.test_views) * (tile + 4), overview + 4 * tile, 3)
    row = fig[:tile]
    panel = {name: row[:, overview + i * tile : overview + (i + 1) * tile] for i, name in enumerate(["lr", "bicubic", "3dsr", "gt"])}
    assert np.array_equal(panel["bicubic"][20:], panel["gt"][20:])  # below the labels: the same patch, the same pixels
    y0, x0 = detail_patch(scene.image(v, "hr"), size, scene.scale)
    hr = scene.image(v, "hr")
    assert np.array_equal(panel["gt"][-zoom:, :zoom], np.broadcast_to(hr[y0 + size - 1, x0], (zoom, zoom, 3)))  # whole pixels
    lr_zoom = zoom * scene.scale
    assert np.array_equal(
        panel["lr"][-lr_zoom:, :lr_zoom],
        np.broadcast_to(scene.image(v, "lr")[(y0 + size) // scene.scale - 1, x0 // scene.scale], (lr_zoom, lr_zoom, 3)),
    )
    assert np.abs(panel["3dsr"][20:].astype(int) - panel["gt"][20:]).mean() > 10
    assert (row[:, :overview] == (255, 64, 32)).all(axis=-1).any()  # the patch marked on the overview
