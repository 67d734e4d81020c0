"""The metrics pinned to values computed by the reference implementations (torch 2.5.1, pyiqa 0.1.16, lpips 0.1.4, pytorch-fid 0.3.0)
on the inputs of tests/metric_inputs.py; tools/metric_references.py computes them (in an environment of its own:
the reference packages need torchvision). A change that moves a metric away from its reference fails here."""

import os

import metric_inputs
import numpy as np
import pytest
from conftest import _shared

# pyiqa's NIQE (float32 input, as it reads an image file) with the published pristine model
NIQE = {
    "astronaut": 3.062388,
    "astronaut-blur5": 6.443623,
    "astronaut-half": 4.049661,
    "chelsea": 2.572079,
    "chelsea-blur5": 7.017838,
    "chelsea-half": 4.703348,
    "coffee": 4.06159,
    "coffee-blur5": 6.602149,
    "coffee-half": 4.628537,
}
# lpips.LPIPS(net="alex", version="0.1"), normalize=True, ImageNet AlexNet features
LPIPS = {
    "astronaut-blur5": 0.3199915,
    "chelsea-noise10": 0.0857351,
    "coffee-shift1": 0.015208,
    "astronaut-vs-coffee": 0.7783459,
}
# pytorch_fid.fid_score.calculate_frechet_distance of the two sets' means and covariances
FRECHET_DISTANCE = 39.6857341123947


@pytest.fixture(scope="module")
def published_niqe_model(tmp_path_factory):
    """NIQE's published model, fetched as a run fetches it: basicsr 1.4.2's source distribution from the package index."""
    from threedsr.errors import OfflineError
    from threedsr.metrics.niqe import load_niqe_model
    from threedsr.metrics.weights import NIQE_MODEL, download_weights

    try:
        path = download_weights(NIQE_MODEL, tmp_path_factory.mktemp("niqe") / NIQE_MODEL.file)
    except OfflineError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI reaches the package index, but: {e}")
        pytest.skip(f"the package index is not reachable here: {e}")
    model = load_niqe_model(path)
    assert model.published
    return model


def test_niqe_matches_pyiqa(published_niqe_model):
    ours = {name: published_niqe_model(img) for name, img in metric_inputs.niqe_images().items()}
    assert ours.keys() == NIQE.keys()
    for name, value in NIQE.items():
        assert ours[name] == pytest.approx(value, abs=2e-5), name


def test_lpips_matches_the_lpips_package():
    from threedsr.imaging import to_float
    from threedsr.metrics.image import load_lpips, lpips_distance

    model = load_lpips(_shared("weights/lpips/alexnet_features.pth"))
    pairs = metric_inputs.lpips_pairs()
    assert pairs.keys() == LPIPS.keys()
    for name, (a, b) in pairs.items():
        assert lpips_distance(model, to_float(a), to_float(b)) == pytest.approx(LPIPS[name], abs=2e-7), name


def test_the_frechet_distance_matches_pytorch_fid():
    from threedsr.metrics.fid import fid

    a, b = metric_inputs.fid_features()
    assert fid(a, b) == pytest.approx(FRECHET_DISTANCE, rel=1e-9)
    assert np.isclose(fid(a, a), 0.0, atol=1e-8)
