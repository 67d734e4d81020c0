"""NIQE (workflow/threedsr/metrics/niqe.py) against a direct float64 computation from the definition, and its behaviour."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
from scipy.special import gamma

from threedsr.metrics import niqe


def _cubic(x):
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _matlab_imresize_1d(n_in, scale):
    """MATLAB imresize's contributions(), written out pixel by pixel: antialiased cubic, mirrored borders."""
    n_out = math.ceil(n_in * scale)
    width = 4 / scale
    w = np.zeros((n_out, n_in))
    for i in range(1, n_out + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [(j, scale * _cubic(scale * (u - j))) for j in range(left, left + math.ceil(width) + 2)]
        total = sum(t for _, t in taps)
        for j, t in taps:
            k = (j - 1) % (2 * n_in)  # mirror: 1..n, n..1
            w[i - 1, k if k < n_in else 2 * n_in - 1 - k] += t / total
    return w


def _reference_features(gray):
    """The 36 features per 96x96 block, straight from the MATLAB release's definitions, in float64 numpy."""
    r = np.arange(-3, 4)
    win = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * (7 / 6) ** 2))
    win /= win.sum()
    grid = np.linspace(0.2, 10, 9801)
    table = gamma(2 / grid) ** 2 / (gamma(1 / grid) * gamma(3 / grid))

    def aggd(v):
        ls, rs = np.sqrt(np.mean(v[v < 0] ** 2)), np.sqrt(np.mean(v[v > 0] ** 2))
        g = ls / rs
        rn = np.mean(np.abs(v)) ** 2 / np.mean(v**2) * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        a = grid[np.argmin((table - rn) ** 2)]
        k = np.sqrt(gamma(1 / a) / gamma(3 / a))
        return a, ls * k, rs * k

    def block_feats(b):
        a, bl, br = aggd(b.ravel())
        f = [a, (bl + br) / 2]
        for s in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # the MATLAB code's shifts
            a, bl, br = aggd((b * np.roll(b, s, axis=(0, 1))).ravel())
            f += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
        return f

    def scale_feats(im, size):
        mu = correlate(im, win, mode="nearest")
        sd = np.sqrt(np.abs(correlate(im * im, win, mode="nearest") - mu * mu))
        m = (im - mu) / (sd + 1)
        return [block_feats(m[y : y + size, x : x + size]) for y in range(0, m.shape[0], size) for x in range(0, m.shape[1], size)]

    half = _matlab_imresize_1d(gray.shape[0], 0.5) @ (gray / 255) @ _matlab_imresize_1d(gray.shape[1], 0.5).T * 255
    return np.hstack([scale_feats(gray, 96), scale_feats(half, 48)])


def _photo():
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def fitted_model():
    """A pristine model fitted here on bundled photos (the published one cannot be downloaded in tests)."""
    import skimage.data

    return niqe.fit_model([skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()])


def test_imresize_matches_matlabs_published_values():
    # MATLAB: imresize(reshape(0:15, 4, 4)', [3 3]) (bicubic, antialiased), as the docstring of the resizer pyiqa uses
    # quotes it; its 6.1505 at (1, 0) must be a typo: the result is 4 a_i + a_j with a = W [0 1 2 3]', and its own
    # 0.7506 = 5 a_0 and 7.5000 = 5 a_1 give 4 a_1 + a_0 = 6.1501
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    y = niqe.imresize_matrix(4, 0.75) @ x @ niqe.imresize_matrix(4, 0.75).T
    np.testing.assert_allclose(y, [[0.7506, 2.1004, 3.4503], [6.1501, 7.5000, 8.8499], [11.5497, 12.8996, 14.2494]], atol=6e-5)
    for n in (96, 97, 144):
        np.testing.assert_allclose(niqe.imresize_matrix(n, 0.5), _matlab_imresize_1d(n, 0.5), atol=1e-14)


def test_features_match_a_direct_float64_computation():
    rng = np.random.default_rng(0)
    img = correlate(rng.random((96, 192)) * 255, np.ones((3, 3)) / 9, mode="nearest")  # some structure
    gray = np.round(img)
    ours = niqe.niqe_features(torch.from_numpy(gray), precision="float64").numpy()
    ref = _reference_features(gray)
    assert ours.shape == ref.shape == (2, 36)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    # pyiqa's float32 steps (window, resize) move the features by float32 rounding only
    np.testing.assert_allclose(niqe.niqe_features(torch.from_numpy(gray)).numpy(), ref, rtol=1e-3, atol=1e-4)


def test_luma_is_pyiqas_rounded_y():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    assert niqe.luma255(rgb).tolist() == [[76.0, 150.0, 29.0, 18.0]]  # round(0.299 * 255), ..., round(18.15)


def test_a_natural_photo_scores_better_than_blurred_or_noisy(fitted_model):
    import skimage.filters
    import skimage.util

    photo = _photo()  # not among the photos the model was fitted on
    blurred = (skimage.filters.gaussian(photo, sigma=1.5, channel_axis=2) * 255).round().astype(np.uint8)
    noisy = (skimage.util.random_noise(photo, var=0.003, rng=0) * 255).round().astype(np.uint8)
    clean = fitted_model(photo)
    assert 0 < clean < fitted_model(blurred) and clean < fitted_model(noisy)


def test_invariant_to_a_brightness_shift(fitted_model):
    import skimage.data

    # a textured photo: in flat regions MSCN coefficients are 0 up to float rounding, and whether a 1e-14 counts as a
    # negative, a positive or no sample changes the AGGD fits (in MATLAB too)
    gravel = np.repeat(skimage.data.gravel()[:192, :288, None], 3, axis=2)
    photo = (gravel.astype(np.float64) * 0.7 + 20).round().astype(np.uint8)  # no clipping after +25
    # the features: MSCN coefficients do not see a constant added to the luma (exactly, in float64; pyiqa's float32
    # window and resize move the AGGD fits by at most one step of the shape grid, 0.001)
    gray = niqe.luma255(photo)
    np.testing.assert_allclose(niqe.niqe_features(gray + 25, "float64"), niqe.niqe_features(gray, "float64"), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(niqe.niqe_features(gray + 25), niqe.niqe_features(gray), rtol=0, atol=1.5e-3)
    # the image: +25 on R, G and B adds 25 to the luma up to its rounding (pyiqa's float32 Y: 24..26), so NIQE moves little
    shifted = photo + np.uint8(25)
    assert (niqe.luma255(shifted) - gray).abs().max() <= 26 and (niqe.luma255(shifted) - gray).abs().min() >= 24
    assert fitted_model(shifted) == pytest.approx(fitted_model(photo), rel=0.02)


def test_too_small_an_image_is_nan_with_a_warning(fitted_model):
    with pytest.warns(UserWarning, match="96x96"):
        assert math.isnan(fitted_model(np.zeros((72, 96, 3), dtype=np.uint8)))


def test_model_file_round_trip_and_refusals(tmp_path, fitted_model):
    from threedsr.errors import DataError

    niqe.save_model(fitted_model, tmp_path / "model.mat")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loaded = niqe.load_niqe_model(tmp_path / "model.mat")
    assert not loaded.published and any("not comparable" in str(x.message) for x in w)
    torch.testing.assert_close(loaded.mu, fitted_model.mu)
    (tmp_path / "cut.mat").write_bytes((tmp_path / "model.mat").read_bytes()[:200])
    with pytest.raises(DataError, match="cut.mat"):
        niqe.load_niqe_model(tmp_path / "cut.mat")
    import scipy.io

    scipy.io.savemat(tmp_path / "other.mat", {"pop_mu": np.zeros(36), "pop_cov": np.eye(36)})
    with pytest.raises(DataError, match="other.mat.*mu_prisparam"):
        niqe.load_niqe_model(tmp_path / "other.mat")
    scipy.io.savemat(tmp_path / "small.mat", {"mu_prisparam": np.zeros(18), "cov_prisparam": np.eye(18)})
    with pytest.raises(DataError, match="small.mat"):
        niqe.load_niqe_model(tmp_path / "small.mat")
