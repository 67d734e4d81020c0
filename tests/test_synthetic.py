import hashlib

import numpy as np
import pytest

from threedsr.data import synthetic
from threedsr.data.cameras import Intrinsics, look_at, project_points
from threedsr.data.photos import PHOTOS
from threedsr.data.poses import load_scene_poses
from threedsr.io import list_images, read_image, read_json

K = Intrinsics(80, 80, 32, 24, 64, 48)
W2C = look_at(eye=(0.3, -0.2, -3), target=(0, 0, 0), up=(0, -1, 0))


def _quad_with(texture):
    return synthetic.Quad((0, 0, 0), (1.0, 0, 0.3), (0, 0.8, 0), texture)


def test_a_known_point_is_drawn_where_the_camera_projects_it():
    # a blob a few pixels wide (a single texel would fall inside one pixel), centred on a texel centre
    row, col = 123, 271
    yy, xx = np.mgrid[0:400, 0:400]
    tex = np.repeat(np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * 12.0**2))[..., None], 3, axis=2)
    quad = _quad_with(tex)
    a, b = (col + 0.5) / 400 * 2 - 1, (row + 0.5) / 400 * 2 - 1
    point = quad.center + a * quad.u + b * quad.v
    blank = synthetic.render_quads([_quad_with(np.zeros_like(tex))], K, W2C, supersample=8)
    img = (synthetic.render_quads([quad], K, W2C, supersample=8) - blank)[..., 0]  # only the dot remains
    ys, xs = np.mgrid[0 : K.height, 0 : K.width] + 0.5  # pixel centres
    centroid = np.array([(img * xs).sum(), (img * ys).sum()]) / img.sum()
    uv, z = project_points(point[None], K.K, W2C)
    assert z[0] > 0
    np.testing.assert_allclose(centroid, uv[0], atol=0.05)


def test_supersampling_antialiases_edges():
    tex = np.zeros((64, 64, 3))
    tex[:, 32:] = 1.0
    quad = synthetic.Quad((0, 0, 0), (3, 0, 0), (0, 3, 0), tex)
    w2c = look_at(eye=(0.0137, 0, -4), target=(0.0137, 0, 0), up=(0, -1, 0))
    aliased = synthetic.render_quads([quad], K, w2c, supersample=1)[..., 0]
    smooth = synthetic.render_quads([quad], K, w2c, supersample=6)[..., 0]
    levels = lambda im: np.unique(np.round(im[10], 3))
    assert len(levels(smooth)) > len(levels(aliased))
    # the edge pixel's value is its coverage: the edge sits at x = cx - fx * 0.0137 / 4 in pixels
    edge = K.cx - K.fx * 0.0137 / 4
    px = int(edge)
    assert smooth[10, px] == pytest.approx(1 - (edge - px), abs=1 / 6 + 0.03)


def test_generation_is_deterministic_and_records_its_photos(tmp_path):
    def digest(d):
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file())).hexdigest()

    kw = dict(width=64, height=48, supersample=1, num_points=500)
    a = synthetic.generate_scene("forward", tmp_path / "a", seed=3, **kw)
    synthetic.generate_scene("forward", tmp_path / "b", seed=3, **kw)
    synthetic.generate_scene("forward", tmp_path / "c", seed=4, **kw)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert set(a["textures"]) <= set(PHOTOS) and len(a["textures"]) >= 3
    assert read_json(tmp_path / "a" / "synthetic.json")["textures"] == a["textures"]
    assert len(list_images(tmp_path / "a" / "images")) == 20


@pytest.mark.parametrize("scene", sorted(synthetic.SCENES))
def test_scenes_are_textured_only_with_texture_photos(scene):
    """The SR prior trains on the other photos: a synthetic scene must never show one of them."""
    from threedsr.data.photos import PRIOR_PHOTOS, TEXTURE_PHOTOS

    make, views = synthetic.SCENES[scene]
    quads, _ = make(np.random.default_rng(0), 64, 48, views)
    used = {q.texture_id for q in quads}
    assert used <= set(TEXTURE_PHOTOS) and not used & set(PRIOR_PHOTOS)


@pytest.mark.parametrize("scene, views", [("forward", 20), ("orbit", 24)])
def test_generated_scene_reads_back_through_the_pose_stage(tmp_path, scene, views):
    synthetic.generate_scene(scene, tmp_path / scene, 96, 72, 1, 2000, 0)
    poses = load_scene_poses(tmp_path / scene, tmp_path / "work")
    assert poses.source == "colmap" and len(poses.views) == views
    assert len(poses.xyz) > 100
    for v in poses.views:
        uv, z = project_points(poses.xyz, v.intrinsics.K, v.world_to_camera)
        assert (z > 0).mean() > 0.3 if scene == "orbit" else (z > 0).all()
    # sampled points carry the colour of the surface where the renderer draws them
    v = poses.views[0]
    img = read_image(tmp_path / scene / v.image).astype(float)
    uv, z = project_points(poses.xyz, v.intrinsics.K, v.world_to_camera)
    inside = (z > 0) & (uv[:, 0] > 1) & (uv[:, 0] < 95) & (uv[:, 1] > 1) & (uv[:, 1] < 71)
    drawn = img[uv[inside, 1].astype(int), uv[inside, 0].astype(int)]
    err = np.abs(drawn - poses.rgb[inside]).mean()
    assert err < 40, err  # textures are busy: a pixel mixes neighbours, but a wrong camera gives ~80


def test_prepared_synthetic_scene_reads_back(tmp_path):
    from threedsr.data.prepare import prepare_scene
    from threedsr.data.scene import PreparedScene

    meta = synthetic.generate_scene("orbit", tmp_path / "raw", 128, 96, 1, 1000, 0)
    prepare_scene(tmp_path / "raw", load_scene_poses(tmp_path / "raw", tmp_path / "work"), tmp_path / "scene", 8, 2, 8)
    scene = PreparedScene(tmp_path / "scene")
    assert scene.meta["photos_used"] == meta["textures"]
    assert len(scene.train_views) == 21 and [v.name for v in scene.test_views] == ["view_000", "view_008", "view_016"]
    v = scene.train_views[0]
    assert scene.image(v, "lr").shape == (12, 16, 3) and scene.image(v, "hr").shape == (48, 64, 3)
    assert scene.scale == 4 and len(scene.points()[0]) > 50


def test_binary_colmap_model_reads_like_the_text_one(tmp_path):
    import pycolmap

    synthetic.generate_scene("forward", tmp_path / "text", 64, 48, 1, 500, 0)
    binary = tmp_path / "binary"
    (binary / "sparse" / "0").mkdir(parents=True)
    (binary / "images").symlink_to(tmp_path / "text" / "images")
    pycolmap.Reconstruction(str(tmp_path / "text" / "sparse" / "0")).write_binary(str(binary / "sparse" / "0"))
    assert (binary / "sparse" / "0" / "images.bin").exists()
    a, b = load_scene_poses(tmp_path / "text", tmp_path / "w1"), load_scene_poses(binary, tmp_path / "w2")
    assert [v.name for v in a.views] == [v.name for v in b.views]
    for va, vb in zip(a.views, b.views):
        np.testing.assert_allclose(va.world_to_camera, vb.world_to_camera, atol=1e-9)
        assert va.intrinsics == vb.intrinsics
    np.testing.assert_allclose(a.xyz, b.xyz)


@pytest.mark.parametrize("n_views, refused", [(1, True), (2, True), (3, False)])
def test_a_scene_with_too_few_views_is_refused_when_prepared(tmp_path, n_views, refused):
    """One image crashed pretraining, two trained everything and failed in the videos job at the end: a scene needs two
    training views (the camera path runs between them) and a test view, said when it is prepared, naming the count."""
    from dataclasses import replace

    from threedsr.data.prepare import prepare_scene
    from threedsr.errors import DataError

    synthetic.generate_scene("forward", tmp_path / "raw", 64, 48, 1, 300, 0)
    poses = load_scene_poses(tmp_path / "raw", tmp_path / "work")
    few = replace(poses, views=poses.views[:n_views])
    if refused:
        with pytest.raises(DataError, match=rf"{n_views} posed view\(s\) give {n_views - 1} training view\(s\).*at least 2"):
            prepare_scene(tmp_path / "raw", few, tmp_path / "scene", 8, 2, 8)
        assert not (tmp_path / "scene").exists()
    else:
        assert prepare_scene(tmp_path / "raw", few, tmp_path / "scene", 8, 2, 8)["num_train"] == 2


def test_lr_images_of_a_few_pixels_are_said_naming_the_factors(tmp_path, caplog):
    """The cpu-llff factors (64/16) on ~1000 px originals gave LR 15x11 without a word."""
    import logging

    from threedsr.data.prepare import prepare_scene

    synthetic.generate_scene("forward", tmp_path / "raw", 128, 96, 1, 300, 0)
    poses = load_scene_poses(tmp_path / "raw", tmp_path / "work")
    with caplog.at_level(logging.WARNING):
        prepare_scene(tmp_path / "raw", poses, tmp_path / "scene", 8, 2, 8)
    assert "LR images of 16x12 (1/8 of the 128x96 originals; HR 1/2): under 32 px on a side" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_scene(tmp_path / "raw", poses, tmp_path / "scene2", 2, 1, 8)
    assert "LR images of" not in caplog.text
