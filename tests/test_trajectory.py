"""The smooth camera path of SuperGaussian's frames and the fly-through videos."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from threedsr.data.cameras import Intrinsics, look_at
from threedsr.data.scene import SceneView
from threedsr.data.trajectory import scene_trajectory, smooth_trajectory, trajectory_from_json, trajectory_to_json
from threedsr.errors import DataError


def _view(name, w2c, f=50.0, size=(40, 30)):
    lr = Intrinsics(f, f, size[0] / 2, size[1] / 2, *size)
    return SceneView(name, "train", w2c, lr, lr.resized(4 * size[0], 4 * size[1]))


def _centre(w2c):
    return -w2c[:3, :3].T @ w2c[:3, 3]


def _keys():
    eyes = [(np.cos(a), 0.2 * np.sin(3 * a), np.sin(a)) for a in np.linspace(0, 2, 6)]
    return [_view(f"img{i}", look_at(np.array(e) * 4, np.zeros(3), np.array([0, -1.0, 0]))) for i, e in enumerate(eyes)]


def test_the_path_passes_through_every_key_camera_and_has_the_frame_count():
    keys = _keys()
    path = smooth_trajectory(keys, n_interp=4)
    assert len(path) == (len(keys) - 1) * 5 + 1
    assert [v.name for v in path[:2]] == ["frame_0000", "frame_0001"]
    for i, k in enumerate(keys):
        np.testing.assert_allclose(path[5 * i].world_to_camera, k.world_to_camera, atol=1e-9)
        assert path[5 * i].lr == k.lr and path[5 * i].hr == k.hr
    for v in path:
        R = v.world_to_camera[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) == pytest.approx(1.0)


def test_the_path_is_smooth_and_rotations_are_slerped():
    keys = _keys()
    path = smooth_trajectory(keys, n_interp=9)
    c = np.stack([_centre(v.world_to_camera) for v in path])
    step = np.linalg.norm(np.diff(c, axis=0), axis=1)
    # no jumps: frame-to-frame motion varies slowly, also across the key cameras
    assert step.max() / step.min() < 2.0
    assert np.abs(np.diff(step)).max() < 0.1 * step.mean()
    # and its direction turns gradually (straight segments between keys would turn ~0.4 rad at each key)
    d = np.diff(c, axis=0) / step[:, None]
    assert np.arccos(np.clip((d[1:] * d[:-1]).sum(1), -1, 1)).max() < 0.1
    # between two keys the rotation turns at a constant rate (slerp)
    r = Rotation.from_matrix(np.stack([v.world_to_camera[:3, :3] for v in path[:11]]))
    angles = (r[1:] * r[:-1].inv()).magnitude()
    np.testing.assert_allclose(angles, angles.mean(), rtol=1e-6)


def test_evenly_spaced_collinear_keys_give_evenly_spaced_frames_on_the_line():
    R = np.eye(3)
    keys = [_view(f"k{i}", np.block([[R, -R @ np.array([[i], [0.0], [0.0]])], [np.zeros((1, 3)), np.ones((1, 1))]])) for i in range(4)]
    c = np.stack([_centre(v.world_to_camera) for v in smooth_trajectory(keys, 3)])
    np.testing.assert_allclose(c[:, 0], np.linspace(0, 3, 13), atol=1e-9)
    np.testing.assert_allclose(c[:, 1:], 0, atol=1e-12)


def test_intrinsics_are_interpolated_and_sizes_must_agree():
    a, b = _view("a", np.eye(4), f=40.0), _view("b", np.eye(4), f=60.0)
    mid = smooth_trajectory([a, b], 1)[1]
    assert mid.lr.fx == pytest.approx(50.0) and mid.hr.fx == pytest.approx(200.0) and (mid.hr.width, mid.hr.height) == (160, 120)
    with pytest.raises(DataError, match="differ in size"):
        smooth_trajectory([a, _view("c", np.eye(4), size=(42, 30))], 1)
    with pytest.raises(DataError, match="at least 2"):
        smooth_trajectory([a], 4)


def test_scene_path_follows_the_training_cameras_sorted_by_name_and_round_trips_json():
    keys = _keys()
    shuffled = SimpleNamespace(train_views=[keys[i] for i in (3, 0, 5, 1, 4, 2)])
    path = scene_trajectory(shuffled, 2)
    for i, k in enumerate(keys):
        np.testing.assert_allclose(path[3 * i].world_to_camera, k.world_to_camera, atol=1e-9)
    back = trajectory_from_json(trajectory_to_json(path))
    assert [v.name for v in back] == [v.name for v in path]
    np.testing.assert_allclose(np.stack([v.world_to_camera for v in back]), np.stack([v.world_to_camera for v in path]))
    assert back[7].lr == path[7].lr and back[7].hr == path[7].hr
