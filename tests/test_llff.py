"""The real LLFF fern scene through the pose and downsampling stages (CPU preset: LR 1/64, HR 1/16)."""

import shutil

import numpy as np
import pytest

from threedsr.data.cameras import Intrinsics, project_points
from threedsr.data.pointcloud import read_colmap_points3d, read_ply
from threedsr.data.poses import ScenePoses, load_scene_poses
from threedsr.data.prepare import prepare_scene
from threedsr.errors import DataError
from threedsr.imaging import resize_uint8
from threedsr.io import list_images, read_image, read_json


@pytest.fixture(scope="module")
def fern_prepared(fern_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fern")
    poses = load_scene_poses(fern_dir, tmp / "work")
    poses.save(tmp / "poses")
    prepare_scene(fern_dir, ScenePoses.load(tmp / "poses"), tmp / "scene", 64, 16, 8, {"dataset": "llff", "scene": "fern"})
    return tmp / "scene"


def _visible_fraction(xyz, K: Intrinsics, w2c):
    uv, z = project_points(xyz, K.K, w2c)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < K.width) & (uv[:, 1] >= 0) & (uv[:, 1] < K.height)
    return (z > 0).mean(), inside.mean()


def test_fern_layout_and_split(fern_prepared):
    meta = read_json(fern_prepared / "scene.json")
    assert meta["pose_source"] == "llff"
    assert (meta["num_views"], meta["num_train"], meta["num_test"]) == (20, 17, 3)
    assert [v["name"] for v in meta["views"] if v["split"] == "test"] == ["IMG_4026", "IMG_4034", "IMG_4042"]
    assert meta["lr_size"] == [63, 47] and meta["hr_size"] == [252, 188]
    for v in meta["views"]:
        lr, hr = read_image(fern_prepared / "lr" / f"{v['name']}.png"), read_image(fern_prepared / "hr" / f"{v['name']}.png")
        assert lr.shape == (47, 63, 3) and hr.shape == (188, 252, 3)
        for k in ("fx", "fy", "cx", "cy"):
            assert v["hr"][k] == pytest.approx(4 * v["lr"][k], rel=1e-12)


def test_fern_poses_agree_with_the_shipped_points(fern_prepared, fern_dir):
    """Wrong axis conventions put points behind the camera or outside the frame."""
    xyz, _ = read_colmap_points3d(fern_dir / "sparse" / "0")
    meta = read_json(fern_prepared / "scene.json")
    for v in meta["views"]:
        for res in ("lr", "hr"):
            in_front, inside = _visible_fraction(xyz, Intrinsics.from_dict(v[res]), np.array(v["world_to_camera"]))
            assert in_front == 1.0
            assert inside > 0.9, (v["name"], res, inside)
    ply_xyz, ply_rgb = read_ply(fern_prepared / "points3d.ply")
    assert len(ply_xyz) == len(xyz) == 10091


def test_fern_points_land_on_matching_colours(fern_prepared):
    """Points' stored colours match the HR pixels they project to best at zero offset: images and poses agree."""
    xyz, rgb = read_ply(fern_prepared / "points3d.ply")
    meta = read_json(fern_prepared / "scene.json")
    for v in meta["views"][:4]:
        K = Intrinsics.from_dict(v["hr"])
        img = read_image(fern_prepared / "hr" / f"{v['name']}.png").astype(float)
        uv, _ = project_points(xyz, K.K, np.array(v["world_to_camera"]))
        err = {}
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                u, w = uv[:, 0] + dx, uv[:, 1] + dy
                ok = (u >= 0) & (u < K.width) & (w >= 0) & (w < K.height)
                err[dx, dy] = np.abs(img[w[ok].astype(int), u[ok].astype(int)] - rgb[ok]).mean()
        assert min(err, key=err.get) == (0, 0), (v["name"], err)
        assert err[0, 0] < 0.9 * min(e for (dx, dy), e in err.items() if max(abs(dx), abs(dy)) == 2)


def test_lr_is_the_downsampled_hr(fern_prepared):
    """LR and HR come from the same crop: resizing HR by 1/4 gives LR up to filter differences."""
    meta = read_json(fern_prepared / "scene.json")
    v = meta["views"][1]
    hr = read_image(fern_prepared / "hr" / f"{v['name']}.png")
    lr = read_image(fern_prepared / "lr" / f"{v['name']}.png").astype(float)
    down = resize_uint8(hr, 63, 47).astype(float)
    mse = ((down - lr) ** 2).mean()
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 35, psnr
    shifted = ((np.roll(down, 1, axis=1) - lr) ** 2).mean()
    assert shifted > 3 * mse  # a one-pixel misalignment would show


def _copy_images8(fern_dir, dst, with_points=True):
    """A user's copy that has only the LLFF release's images_8/ (no originals)."""
    dst.mkdir()
    shutil.copytree(fern_dir / "images_8", dst / "images_8")
    shutil.copy(fern_dir / "poses_bounds.npy", dst)
    if with_points:
        (dst / "sparse" / "0").mkdir(parents=True)
        shutil.copy(fern_dir / "sparse" / "0" / "points3D.bin", dst / "sparse" / "0")
    return dst


def test_downsampled_copy_gives_the_same_cameras(fern_prepared, fern_dir, tmp_path):
    """Poses stored for 4032x3024, images on disk at 504x378 named image000.png...: same cameras."""
    scene = _copy_images8(fern_dir, tmp_path / "fern8")
    poses = load_scene_poses(scene, tmp_path / "work")
    # without the originals their names are unknown; LLFF's renaming keeps their order, so the split is the same
    assert [v.name for v in poses.views] == [f"image{i:03d}" for i in range(20)]
    meta = prepare_scene(scene, poses, tmp_path / "out", 64, 16, 8)
    ref = read_json(fern_prepared / "scene.json")
    for a, b in zip(meta["views"], ref["views"]):
        assert a["split"] == b["split"]
        for k in ("fx", "fy", "cx", "cy"):
            assert a["lr"][k] == pytest.approx(b["lr"][k], rel=2e-3)
        np.testing.assert_allclose(a["world_to_camera"], b["world_to_camera"])


def test_points_are_triangulated_when_missing(fern_dir, tmp_path):
    scene = _copy_images8(fern_dir, tmp_path / "fern8", with_points=False)
    poses = load_scene_poses(scene, tmp_path / "work", max_image_size=504)
    assert poses.source == "llff+triangulated"
    assert len(poses.xyz) > 500
    shipped, _ = read_colmap_points3d(fern_dir / "sparse" / "0")
    # same world frame and scale as COLMAP's own points
    np.testing.assert_allclose(np.median(poses.xyz, 0), np.median(shipped, 0), atol=0.1 * np.linalg.norm(np.median(shipped, 0)))
    for v in poses.views:
        in_front, inside = _visible_fraction(poses.xyz, v.intrinsics, v.world_to_camera)
        assert in_front == 1.0 and inside > 0.9


def test_structure_from_motion_recovers_the_llff_poses(fern_dir, tmp_path):
    """Images only: pycolmap SfM; camera centres match LLFF's up to a similarity transform."""
    scene = tmp_path / "fern_sfm"
    (scene / "images").mkdir(parents=True)
    names = [p.name for p in list_images(fern_dir / "images")][::2]
    for src, name in zip(list_images(fern_dir / "images_8")[::2], names):
        shutil.copy(src, scene / "images" / (name.rsplit(".", 1)[0] + ".png"))
    poses = load_scene_poses(scene, tmp_path / "work", max_image_size=504)
    assert poses.source == "sfm" and len(poses.views) >= 8
    from threedsr.data.poses import llff_poses

    llff = {p.stem: w2c for p, (_, w2c) in zip(list_images(fern_dir / "images"), llff_poses(fern_dir / "poses_bounds.npy"))}
    est = np.array([-v.world_to_camera[:3, :3].T @ v.world_to_camera[:3, 3] for v in poses.views])
    ref = np.array([-llff[v.name][:3, :3].T @ llff[v.name][:3, 3] for v in poses.views])
    # Umeyama similarity alignment of the centres
    me, mr = est.mean(0), ref.mean(0)
    U, S, Vt = np.linalg.svd((ref - mr).T @ (est - me))
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = np.trace(np.diag(S) @ D) / ((est - me) ** 2).sum()
    aligned = s * (est - me) @ R.T + mr
    spread = np.linalg.norm(ref - mr, axis=1).mean()
    assert np.linalg.norm(aligned - ref, axis=1).max() < 0.05 * spread


def test_pose_count_mismatch_names_the_file(fern_dir, tmp_path):
    scene = _copy_images8(fern_dir, tmp_path / "fern8")
    (scene / "images_8" / "image019.png").unlink()
    with pytest.raises(DataError, match=r"poses_bounds\.npy: 20 poses but 19 images"):
        load_scene_poses(scene, tmp_path / "work")


def test_corrupt_image_names_the_file_and_leaves_nothing(fern_dir, tmp_path):
    scene = _copy_images8(fern_dir, tmp_path / "fern8")
    bad = scene / "images_8" / "image005.png"
    bad.write_bytes(bad.read_bytes()[:2000])  # truncated, as by an interrupted copy
    poses = load_scene_poses(scene, tmp_path / "work")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="image005.png"):
        prepare_scene(scene, poses, out, 64, 16, 8)
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []  # no temporary folder left either


def test_cropped_copy_is_refused(fern_dir, tmp_path):
    """Images whose aspect differs from the poses' cannot be a rescale: a clear error, not wrong cameras."""
    from PIL import Image

    scene = _copy_images8(fern_dir, tmp_path / "fern8")
    p = scene / "images_8" / "image003.png"
    Image.open(p).crop((0, 0, 504, 300)).save(p)
    with pytest.raises(DataError, match="image003.png.*not a rescaled copy"):
        load_scene_poses(scene, tmp_path / "work")


# -- the LLFF release as it ships: a complete COLMAP model with a SIMPLE_RADIAL camera -------------------------

FERN_K = 0.019750463822896944  # fern's own radial term (sparse/0/cameras.bin of the release)


def _complete_model_copy(fern_dir, dst, k, with_poses_bounds):
    """fern's images_8/ and a complete text model written from its poses and points: one SIMPLE_RADIAL camera at the
    originals' 4032x3024 with radial term k (the release ships cameras, images and points; ../shared lacks images.bin)."""
    from scipy.spatial.transform import Rotation

    from threedsr.data.poses import llff_poses

    _copy_images8(fern_dir, dst, with_points=False)
    if not with_poses_bounds:
        (dst / "poses_bounds.npy").unlink()
    sparse = dst / "sparse" / "0"
    sparse.mkdir(parents=True)
    poses = llff_poses(fern_dir / "poses_bounds.npy")
    K = poses[0][0]
    (sparse / "cameras.txt").write_text(f"1 SIMPLE_RADIAL {K.width} {K.height} {float(K.fx)!r} {float(K.cx)!r} {float(K.cy)!r} {k!r}\n")
    lines = []
    for i, (name, (_, w2c)) in enumerate(zip(sorted(p.name for p in list_images(fern_dir / "images")), poses), 1):
        q, t = Rotation.from_matrix(w2c[:3, :3]).as_quat(scalar_first=True), w2c[:3, 3]
        lines += [f"{i} {' '.join(repr(float(v)) for v in q)} {' '.join(repr(float(v)) for v in t)} 1 {name}", ""]
    (sparse / "images.txt").write_text("\n".join(lines) + "\n")
    xyz, rgb = read_colmap_points3d(fern_dir / "sparse" / "0")
    (sparse / "points3D.txt").write_text(
        "".join(f"{j} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0\n" for j, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist()), 1))
    )
    return dst


def _border_colour_error(prepared, xyz, rgb, ring=0.7):
    """Mean |colour of a point - HR pixel it projects to| over points in the outer part of the frame, where distortion acts."""
    meta = read_json(prepared / "scene.json")
    errs = []
    for v in meta["views"]:
        K = Intrinsics.from_dict(v["hr"])
        img = read_image(prepared / "hr" / f"{v['name']}.png").astype(float)
        uv, _ = project_points(xyz, K.K, np.array(v["world_to_camera"]))
        r = np.hypot(uv[:, 0] / K.width - 0.5, uv[:, 1] / K.height - 0.5) / np.hypot(0.5, 0.5)
        ok = (uv[:, 0] >= 0) & (uv[:, 0] < K.width) & (uv[:, 1] >= 0) & (uv[:, 1] < K.height) & (r > ring)
        errs.append(np.abs(img[uv[ok, 1].astype(int), uv[ok, 0].astype(int)] - rgb[ok]).mean())
    return float(np.mean(errs))


def test_the_llff_release_reads_its_distorted_cameras_as_pinholes(fern_prepared, fern_dir, tmp_path, caplog):
    """As the official 3DSR code (and NeRF loaders) read it: f and c, the radial term ignored, said in the log."""
    import logging

    scene = _complete_model_copy(fern_dir, tmp_path / "fern", FERN_K, with_poses_bounds=True)
    poses = load_scene_poses(scene, tmp_path / "work")
    assert poses.source == "colmap" and poses.llff_release and poses.views[0].lens.model == "SIMPLE_RADIAL"
    with caplog.at_level(logging.INFO):
        meta = prepare_scene(scene, poses, tmp_path / "out", 64, 16, 8, {"dataset": "llff", "scene": "fern"})
    assert meta["lens_distortion"]["undistorted"] is False
    assert meta["lens_distortion"]["hr_corner_px"] == pytest.approx(1.79, abs=0.01)  # 29 px at 4032x3024, 14 px at the paper's HR
    assert "moves an image corner by 1.79 px at the HR size (1/16): ignored, as the official 3DSR code" in caplog.text
    ref = read_json(fern_prepared / "scene.json")
    assert meta["hr_size"] == ref["hr_size"] == [252, 188]
    for a, b in zip(meta["views"], ref["views"]):  # the same cameras as the poses_bounds.npy path
        for k in ("fx", "fy", "cx", "cy"):
            assert a["hr"][k] == pytest.approx(b["hr"][k], rel=2e-3)
        np.testing.assert_allclose(a["world_to_camera"], b["world_to_camera"], atol=1e-9)


def test_a_capture_with_lens_distortion_is_undistorted(fern_prepared, fern_dir, tmp_path):
    """The same model without poses_bounds.npy (a user's COLMAP capture): undistorted with pycolmap, because the
    corner moves 1.8 HR pixels > poses.undistort_above_px. Undistorting with fern's real radial term makes its
    points land on matching colours near the borders, where the pinhole reading is off."""
    release = _complete_model_copy(fern_dir, tmp_path / "release", FERN_K, with_poses_bounds=True)
    capture = _complete_model_copy(fern_dir, tmp_path / "capture", FERN_K, with_poses_bounds=False)
    as_pinholes = prepare_scene(
        release, load_scene_poses(release, tmp_path / "w1"), tmp_path / "pinhole", 64, 16, 8, {"dataset": "llff", "scene": "fern"}
    )
    meta = prepare_scene(capture, load_scene_poses(capture, tmp_path / "w2"), tmp_path / "undistorted", 64, 16, 8)
    assert meta["lens_distortion"]["undistorted"] is True and as_pinholes["lens_distortion"]["undistorted"] is False
    assert meta["hr_size"] == [248, 184]  # COLMAP's undistorter crops to the valid area (3984x2988 of 4032x3024)
    xyz, rgb = read_colmap_points3d(fern_dir / "sparse" / "0")
    pinhole_err, undistorted_err = (
        _border_colour_error(tmp_path / "pinhole", xyz, rgb),
        _border_colour_error(tmp_path / "undistorted", xyz, rgb),
    )
    assert undistorted_err < 0.93 * pinhole_err, (undistorted_err, pinhole_err)
    # forced either way
    forced = prepare_scene(release, load_scene_poses(release, tmp_path / "w1"), tmp_path / "forced", 64, 16, 8, undistort="always")
    assert forced["lens_distortion"]["undistorted"] is True and forced["hr_size"] == [248, 184]
    kept = prepare_scene(capture, load_scene_poses(capture, tmp_path / "w2"), tmp_path / "kept", 64, 16, 8, undistort="never")
    assert kept["lens_distortion"]["undistorted"] is False and kept["hr_size"] == [252, 188]


@pytest.mark.parametrize("provenance", [None, {"dataset": "phone", "scene": "fern"}, {"dataset": "llff", "scene": "garden"}])
def test_a_poses_bounds_file_alone_does_not_make_a_capture_the_llff_release(fern_dir, tmp_path, caplog, provenance):
    """A phone capture (SIMPLE_RADIAL) with a poses_bounds.npy beside its model, in a custom dataset, was read as the
    LLFF release and its distortion ignored. Only the llff dataset's official scenes are; others are undistorted."""
    import logging

    capture = _complete_model_copy(fern_dir, tmp_path / "fern", FERN_K, with_poses_bounds=True)
    with caplog.at_level(logging.INFO):
        meta = prepare_scene(capture, load_scene_poses(capture, tmp_path / "w"), tmp_path / "out", 64, 16, 8, provenance)
    assert meta["lens_distortion"]["undistorted"] is True and meta["hr_size"] == [248, 184]
    assert "only the llff dataset's official scenes" in caplog.text and "as the official 3DSR code and NeRF" not in caplog.text


@pytest.mark.parametrize("k, hr_factor, undistorted", [(0.032, 16, True), (0.032, 2, True), (2e-4, 16, False), (FERN_K, 64, False)])
def test_the_threshold_is_the_corner_displacement_at_the_hr_size(k, hr_factor, undistorted):
    from threedsr.data.cameras import Lens
    from threedsr.data.distortion import corner_displacement, decide

    lens = Lens("SIMPLE_RADIAL", (3260.5, 2016.0, 1512.0, k), 4032, 3024)
    # a corner at distorted radius r_d (normalised, pixel centres at +0.5) images a ray at r_u with r_u (1 + k r_u^2) = r_d:
    # a pinhole puts that ray f (r_d - r_u) pixels closer to the centre
    r_d = np.hypot(2016 - 0.5, 1512 - 0.5) / 3260.5
    r_u = min(r.real for r in np.roots([k, 0, 1, -r_d]) if abs(r.imag) < 1e-12 and r.real > 0)
    assert corner_displacement(lens) == pytest.approx(3260.5 * (r_d - r_u), rel=1e-6)
    d = decide([lens], hr_factor, "auto", 0.5, llff_release=False)
    assert d.undistort is undistorted and d.hr_displacement == pytest.approx(corner_displacement(lens) / hr_factor)
    assert decide([lens], hr_factor, "auto", 0.5, llff_release=True).undistort is False


def test_a_fisheye_camera_is_refused_by_name(fern_dir, tmp_path):
    scene = _complete_model_copy(fern_dir, tmp_path / "fern", FERN_K, with_poses_bounds=False)
    cams = scene / "sparse" / "0" / "cameras.txt"
    cams.write_text("1 OPENCV_FISHEYE 4032 3024 3260.5 3260.5 2016 1512 0.01 0 0 0\n")
    with pytest.raises(DataError, match="OPENCV_FISHEYE, not a perspective camera"):
        load_scene_poses(scene, tmp_path / "work")


def test_known_poses_match_nearest_cameras_not_every_pair():
    """A 292-image capture around an object: matching each image with its nearest cameras, not all 42,486 pairs."""
    from threedsr.data.cameras import look_at
    from threedsr.data.colmap import NEAREST_CAMERAS, neighbour_pairs

    angles = np.linspace(0, 2 * np.pi, 292, endpoint=False)
    w2cs = [look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.0]), np.zeros(3), np.array([0, 0, 1.0])) for a in angles]
    pairs = neighbour_pairs(w2cs)
    assert len(pairs) <= 292 * NEAREST_CAMERAS // 2 + 292 and len(pairs) < 292 * 291 // 2 / 7
    for i, j in pairs:  # neighbours along the orbit, never the far side
        assert min(j - i, 292 - (j - i)) <= NEAREST_CAMERAS // 2
    assert {j for i, j in pairs if i == 0} | {i for i, j in pairs if j == 0} == set(range(1, 11)) | set(range(282, 292))


def test_triangulation_with_nearest_camera_pairs_logs_its_progress(fern_dir, tmp_path, monkeypatch, caplog):
    import logging

    from threedsr.data import colmap

    monkeypatch.setattr(colmap, "EXHAUSTIVE_MAX_IMAGES", 10)  # fern's 20 views take the large-capture path
    monkeypatch.setattr(colmap, "NEAREST_CAMERAS", 4)
    scene = _copy_images8(fern_dir, tmp_path / "fern8", with_points=False)
    with caplog.at_level(logging.INFO, logger="threedsr"):
        poses = load_scene_poses(scene, tmp_path / "work", max_image_size=504)
    assert poses.source == "llff+triangulated" and len(poses.xyz) > 300
    for line in (
        "SIFT features of 20 images",
        "matching ",
        "pairs of 20 images (each with its 4 nearest cameras; exhaustive would be 190)",
        f"triangulation: {len(poses.xyz)} points",
    ):
        assert line in caplog.text, line


def test_a_nex_poses_file_is_refused_with_what_to_do(fern_dir, tmp_path):
    """A re-processed LLFF copy with NeX's N x 14 poses_bounds.npy (hwf_cxcy.npy beside it)."""
    scene = _copy_images8(fern_dir, tmp_path / "fern8")
    np.save(scene / "poses_bounds.npy", np.load(fern_dir / "poses_bounds.npy")[:, :14])
    np.save(scene / "hwf_cxcy.npy", np.array([3024.0, 4032.0, 3260.5, 2016.0, 1512.0]))
    with pytest.raises(
        DataError,
        match=r"poses_bounds\.npy: expected LLFF's N x 17 .*got shape \(20, 14\) \(NeX's layout.*Move it away so that the poses come from sparse/0",
    ):
        load_scene_poses(scene, tmp_path / "work")


def test_many_cameras_make_one_short_log_line_and_black_points_are_said(tmp_path, caplog):
    """One camera per image (71 in room) printed every camera's parameters in one 6 KB line; a model whose points
    are all black (room's) trained without a word."""
    import logging
    from dataclasses import replace

    from threedsr.data import synthetic
    from threedsr.data.cameras import Lens
    from threedsr.data.distortion import decide

    lenses = [Lens("SIMPLE_RADIAL", (3260.5 + i, 2016.0, 1512.0, 0.02), 4032, 3024) for i in range(71)]
    reason = decide(lenses, 16, "auto", 0.5, llff_release=False).reason
    assert len(reason) < 300 and "71 cameras, e.g. SIMPLE_RADIAL" in reason
    synthetic.generate_scene("forward", tmp_path / "raw", 64, 48, 1, 300, 0)
    poses = load_scene_poses(tmp_path / "raw", tmp_path / "work")
    with caplog.at_level(logging.WARNING):
        prepare_scene(tmp_path / "raw", replace(poses, rgb=np.zeros_like(poses.rgb)), tmp_path / "scene", 8, 2, 8)
    assert f"all {len(poses.rgb)} initial points are black" in caplog.text
