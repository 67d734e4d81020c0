"""The real LLFF fern scene through the pose and downsampling stages (CPU preset: LR 1/64, HR 1/16)."""

import shutil

import numpy as np
import pytest

from threedsr.cameras import Intrinsics, project
from threedsr.errors import DataError
from threedsr.imaging import resize_uint8
from threedsr.io import list_images, read_image, read_json
from threedsr.pointcloud import read_colmap_points3d, read_ply
from threedsr.poses import ScenePoses, load_scene_poses
from threedsr.prepare import prepare_scene


@pytest.fixture(scope="module")
def fern_prepared(fern_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fern")
    poses = load_scene_poses(fern_dir, tmp / "work")
    poses.save(tmp / "poses")
    prepare_scene(fern_dir, ScenePoses.load(tmp / "poses"), tmp / "scene", 64, 16, 8, {"dataset": "llff", "scene": "fern"})
    return tmp / "scene"


def _visible_fraction(xyz, K: Intrinsics, w2c):
    uv, z = project(xyz, K.K, w2c)
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
        uv, _ = project(xyz, K.K, np.array(v["world_to_camera"]))
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
    from threedsr.poses import llff_poses

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
