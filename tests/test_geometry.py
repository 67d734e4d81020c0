import numpy as np
import pytest

from threedsr.data.cameras import Intrinsics, look_at, project_points
from threedsr.data.prepare import split_of, view_geometry
from threedsr.errors import ConfigError, DataError


def test_look_at_is_a_right_handed_opencv_camera():
    w2c = look_at(eye=(1, -2, 3), target=(0, 0.5, 0), up=(0, -1, 0))
    R = w2c[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1)
    K = Intrinsics(100, 100, 50, 40, 100, 80)
    uv, z = project_points(np.array([[0, 0.5, 0.0]]), K.K, w2c)
    np.testing.assert_allclose(uv[0], [50, 40], atol=1e-9)  # the target is at the principal point
    assert z[0] > 0
    # world up (-y) appears upwards in the image (smaller v)
    uv_up, _ = project_points(np.array([[0, -0.5, 0.0]]), K.K, w2c)
    assert uv_up[0, 1] < 40


def test_resize_scales_with_half_pixel_centres():
    K = Intrinsics(100, 90, 50, 40, 100, 80)
    K2 = K.resized(25, 20)
    assert (K2.fx, K2.fy, K2.cx, K2.cy) == (25, 22.5, 12.5, 10)
    assert K.cropped(10, 5, 60, 50).cx == 40


@pytest.mark.parametrize("src_size", [(4032, 3024), (504, 378), (1000, 750)])  # originals, images_8, a hand-made copy
def test_view_geometry_keeps_exact_scale(src_size):
    original = Intrinsics(3260.5, 3260.5, 2016, 1512, 4032, 3024)
    g = view_geometry(original, src_size, lr_factor=64, hr_factor=16)
    assert (g.lr.width, g.lr.height) == (63, 47)
    assert (g.hr.width, g.hr.height) == (4 * 63, 4 * 47)
    for a, b in [(g.hr.fx, g.lr.fx), (g.hr.fy, g.lr.fy), (g.hr.cx, g.lr.cx), (g.hr.cy, g.lr.cy)]:
        assert a == pytest.approx(4 * b, rel=1e-12)
    # the same 3D point lands on the same LR/HR location whatever copy was resampled
    assert g.lr.fx == pytest.approx(3260.5 / 64, rel=2e-3)


def test_view_geometry_refuses_to_upsample_ground_truth():
    original = Intrinsics(3260.5, 3260.5, 2016, 1512, 4032, 3024)
    with pytest.raises(DataError, match="smaller than the HR target"):
        view_geometry(original, (504, 378), lr_factor=8, hr_factor=2)


def test_view_geometry_checks_factors():
    with pytest.raises(ConfigError, match="lr_factor"):
        view_geometry(Intrinsics(1, 1, 1, 1, 100, 100), (100, 100), lr_factor=6, hr_factor=4)


def test_split_every_nth_view_from_the_first():
    assert [split_of(i, 8) for i in range(20)].count("test") == 3
    assert [i for i in range(20) if split_of(i, 8) == "test"] == [0, 8, 16]
