import math

import numpy as np
import pytest
import torch

from threedsr.metrics import image_metrics, load_lpips, psnr, ssim


@pytest.fixture(scope="module")
def lpips():
    from conftest import _shared

    return load_lpips(_shared("weights/lpips/alexnet_features.pth"))


def _pair(seed=0, noise=0.05, size=64):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(size, size, 3, generator=g)
    gt = torch.nn.functional.avg_pool2d(gt.permute(2, 0, 1)[None], 5, 1, 2)[0].permute(1, 2, 0)  # some structure
    return (gt + noise * torch.randn(gt.shape, generator=g)).clamp(0, 1), gt


def test_psnr_of_a_known_mse():
    gt = torch.zeros(8, 8, 3)
    img = torch.full((8, 8, 3), 0.1)
    assert psnr(img, gt) == pytest.approx(20.0)  # mse 0.01
    assert psnr(gt, gt) == math.inf


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    img, gt = _pair()
    ref = structural_similarity(img.numpy(), gt.numpy(), channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(img, gt) == pytest.approx(ref, abs=2e-3)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_lpips_zero_for_identical_and_grows_with_distortion(lpips):
    img, gt = _pair(noise=0.0)
    assert float(lpips(img.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None])) == pytest.approx(0.0, abs=1e-7)
    values = [image_metrics(_pair(noise=n)[0], gt, lpips)["lpips"] for n in (0.02, 0.08, 0.2)]
    assert 0 < values[0] < values[1] < values[2]
    a, b = _pair(noise=0.1)
    assert float(lpips(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None])) == pytest.approx(float(lpips(b.permute(2, 0, 1)[None], a.permute(2, 0, 1)[None])), rel=1e-5)


def test_missing_backbone_is_reported_not_invented(tmp_path):
    with pytest.warns(UserWarning, match="LPIPS unavailable"):
        assert load_lpips(tmp_path / "nope.pth") is None
    img, gt = _pair()
    assert np.isnan(image_metrics(img, gt, None)["lpips"])


def test_lpips_refuses_wrong_weights(tmp_path):
    from threedsr.errors import DataError

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="bad.pth"):
        load_lpips(tmp_path / "bad.pth")
