"""Scenes described by a transforms.json (nerfstudio's ns-process-data, Instant-NGP): written here from fern's LLFF
poses and from the synthetic scene's COLMAP model, they must give the same cameras and points as the originals."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from threedsr.data.pointcloud import read_points_ply
from threedsr.data.poses import load_scene_poses, pose_image_folder
from threedsr.data.transforms_json import read_transforms
from threedsr.errors import DataError
from threedsr.io import image_size

OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def _ascii_ply(path, xyz, rgb):
    """Points as nerfstudio's ns-process-data writes them (sparse_pc.ply: ASCII, float xyz, uint8 colours)."""
    lines = ["ply", "format ascii 1.0", f"element vertex {len(xyz)}", *(f"property float {k}" for k in "xyz")]
    lines += [*(f"property uint8 {k}" for k in ("red", "green", "blue")), "end_header"]
    lines += [f"{x:8f} {y:8f} {z:8f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(xyz, rgb)]
    path.write_text("\n".join(lines) + "\n")


def _frame(view, file_path):
    c2w = np.linalg.inv(view.world_to_camera) @ OPENGL  # OpenCV world-to-camera -> OpenGL camera-to-world
    return {"file_path": file_path, "transform_matrix": c2w.tolist()}


def _as_nerfstudio(poses, src_folder, out, ply=True):
    """A nerfstudio-layout copy of a scene: images/ (links to `src_folder`'s files, in the order of the views: LLFF's
    images_N/ are renamed in the originals' order), transforms.json with one camera's intrinsics at their size,
    sparse_pc.ply."""
    (out / "images").mkdir(parents=True)
    files = sorted(src_folder.iterdir())
    for f in files:
        os.symlink(f, out / "images" / f.name)
    w, h = image_size(next((out / "images").iterdir()))
    K = poses.views[0].intrinsics.resized(w, h)
    meta = {"camera_model": "OPENCV", "fl_x": K.fx, "fl_y": K.fy, "cx": K.cx, "cy": K.cy, "w": w, "h": h, "k1": 0.0, "k2": 0.0}
    meta["frames"] = [_frame(v, f"images/{f.name}") for v, f in zip(poses.views, files, strict=True)]
    if ply:
        _ascii_ply(out / "sparse_pc.ply", poses.xyz, poses.rgb)
        meta["ply_file_path"] = "sparse_pc.ply"
    (out / "transforms.json").write_text(json.dumps(meta))
    return out


def test_ferns_poses_written_as_transforms_json_read_back_as_the_same_cameras(fern_dir, tmp_path):
    llff = load_scene_poses(fern_dir, tmp_path / "work", max_image_size=504)
    scene = _as_nerfstudio(llff, fern_dir / "images_8", tmp_path / "fern_ns")
    got = load_scene_poses(scene, tmp_path / "work2")
    assert got.source == "transforms.json" and not got.llff_release
    assert [v.image for v in got.views] == [f"images/{f.name}" for f in sorted((fern_dir / "images_8").iterdir())]
    for a, b in zip(got.views, llff.views):
        np.testing.assert_allclose(a.world_to_camera, b.world_to_camera, atol=1e-9)
        K, ref = a.intrinsics, b.intrinsics.resized(a.intrinsics.width, a.intrinsics.height)
        assert (K.width, K.height) == image_size(scene / a.image) and a.lens is None
        np.testing.assert_allclose([K.fx, K.fy, K.cx, K.cy], [ref.fx, ref.fy, ref.cx, ref.cy], rtol=1e-9)
    np.testing.assert_allclose(got.xyz, llff.xyz, atol=1e-5)  # ASCII with 6 decimals
    assert np.array_equal(got.rgb, llff.rgb)


def test_instant_ngp_layout_field_of_view_and_paths_without_extension(fern_dir, tmp_path):
    llff = load_scene_poses(fern_dir, tmp_path / "work", max_image_size=504)
    scene = _as_nerfstudio(llff, fern_dir / "images_8", tmp_path / "ngp", ply=False)
    w, h = image_size(next((scene / "images").iterdir()))
    fx = llff.views[0].intrinsics.resized(w, h).fx
    files = sorted((scene / "images").iterdir())
    frames = [_frame(v, f"./images/{f.stem}") for v, f in zip(llff.views, files)]
    (scene / "transforms.json").write_text(json.dumps({"camera_angle_x": 2 * math.atan(0.5 * w / fx), "aabb_scale": 16, "frames": frames}))
    entries, ply = read_transforms(scene / "transforms.json")
    assert ply is None and len(entries) == len(llff.views)
    for (name, image, K, lens, w2c), v in zip(entries, llff.views):
        assert name == image.name
        assert image.is_file() and lens is None and (K.width, K.height) == (w, h)
        assert K.fx == pytest.approx(fx, rel=1e-9) and K.cx == w / 2
        np.testing.assert_allclose(w2c, v.world_to_camera, atol=1e-9)


def _write(tmp_path, meta, images=("a.png",)):
    (tmp_path / "images").mkdir(exist_ok=True)
    from PIL import Image

    for name in images:
        Image.new("RGB", (40, 30)).save(tmp_path / "images" / name)
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    return tmp_path / "transforms.json"


def test_distortion_becomes_colmaps_lens_model_and_fisheyes_are_refused(tmp_path):
    frame = {"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}
    path = _write(tmp_path, {"fl_x": 30.0, "fl_y": 31.0, "cx": 20, "cy": 15, "k1": 0.05, "p2": 0.001, "frames": [frame]})
    (_, _, K, lens, w2c), *_ = read_transforms(path)[0]
    assert lens.model == "OPENCV" and lens.params == (30.0, 31.0, 20.0, 15.0, 0.05, 0.0, 0.0, 0.001) and (K.width, K.height) == (40, 30)
    np.testing.assert_allclose(w2c, OPENGL)  # the identity camera-to-world in OpenGL axes
    path = _write(tmp_path, {"fl_x": 30.0, "k3": 0.01, "frames": [{**frame, "fl_x": 32.0}]})  # a frame's own value wins
    (_, _, K, lens, _), *_ = read_transforms(path)[0]
    assert lens.model == "FULL_OPENCV" and K.fx == 32.0
    for meta, message in [
        ({"camera_model": "OPENCV_FISHEYE", "fl_x": 30.0, "frames": [frame]}, "OPENCV_FISHEYE is not a perspective camera"),
        ({"frames": [frame]}, "no focal length"),
        ({"fl_x": 30.0, "frames": [{**frame, "file_path": "images/b.png"}]}, "frame 0: file_path 'images/b.png' names no image"),
        ({"fl_x": 30.0, "frames": [{**frame, "transform_matrix": [[1, 0], [0, 1]]}]}, "not a 4x4 matrix"),
        ({"fl_x": 30.0, "frames": [{**frame, "transform_matrix": np.diag([1, 1, -1, 1]).tolist()}]}, "not a rotation"),
        ({"fl_x": "wide", "frames": [frame]}, "fl_x is 'wide', not a number"),
        ({"fl_x": 30.0, "frames": []}, "no 'frames' list"),
        ({"fl_x": 30.0, "ply_file_path": "pc.ply", "frames": [frame]}, "ply_file_path 'pc.ply' names no file"),
    ]:
        with pytest.raises(DataError, match=message):
            read_transforms(_write(tmp_path, meta))
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(DataError, match="transforms.json: cannot read it as JSON"):
        read_transforms(tmp_path / "transforms.json")


def test_point_plys_of_other_tools_are_read(tmp_path):
    xyz = np.array([[0.5, -1.25, 2.0], [3.0, 4.0, -5.5]], np.float32)
    rgb = np.array([[255, 0, 10], [1, 2, 3]], np.uint8)
    _ascii_ply(tmp_path / "a.ply", xyz, rgb)
    got = read_points_ply(tmp_path / "a.ply")
    assert np.allclose(got[0], xyz) and np.array_equal(got[1], rgb)
    # binary, double coordinates, normals between, no colours (Open3D's layout): grey
    data = np.zeros(2, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")])
    data["x"], data["y"], data["z"] = xyz.T
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 2\n" + "".join(f"property double {k}\n" for k in "xyz")
    header += "".join(f"property float {k}\n" for k in ("nx", "ny", "nz")) + "end_header\n"
    (tmp_path / "b.ply").write_bytes(header.encode() + data.tobytes())
    got = read_points_ply(tmp_path / "b.ply")
    assert np.allclose(got[0], xyz) and np.array_equal(got[1], np.full((2, 3), 128))
    (tmp_path / "c.ply").write_bytes(header.encode() + data.tobytes()[:-8])
    with pytest.raises(DataError, match="c.ply: truncated"):
        read_points_ply(tmp_path / "c.ply")


@pytest.mark.slow
def test_a_transforms_json_scene_runs_end_to_end(workflow_dir, tiny_config):
    """The synthetic forward scene converted to nerfstudio's layout (its COLMAP model removed) as a dataset of one's
    own: prepared, pretrained, fit by bicubic and scored, with the cameras the COLMAP model had."""
    from threedsr.data import synthetic

    raw = workflow_dir / "raw"
    synthetic.generate_scene("forward", raw / "fwd", 512, 384, 1, 2000, 0)
    poses = load_scene_poses(raw / "fwd", workflow_dir / "work")
    scene = workflow_dir / "captures" / "fwd"
    _as_nerfstudio(poses, pose_image_folder(raw / "fwd"), scene)
    cfg = tiny_config(
        methods=["lr3dgs", "bicubic"], datasets={"synthetic": {"scenes": []}, "mine": {"root": "captures", "scenes": ["fwd"]}}
    )
    cfg["resolution"] = {"lr_factor": 32, "hr_factor": 8}
    (workflow_dir / "mine.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "params.yaml", "mine.yaml"],
        cwd=workflow_dir,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    prepared = json.loads((workflow_dir / "results" / "poses" / "mine" / "fwd" / "poses.json").read_text())
    assert prepared["source"] == "transforms.json"
    table = (workflow_dir / "results" / "metrics" / "mine.md").read_text()
    assert "| bicubic |" in table and "| lr3dgs |" in table
    shutil.rmtree(raw)
