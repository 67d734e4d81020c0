"""FID / KID (workflow/threedsr/metrics/fid.py): the distances, and the FID Inception's layout and loader."""

import numpy as np
import pytest
import torch

from threedsr.errors import DataError
from threedsr.metrics import fid


def _gauss(rng, n, mean, cov):
    return rng.multivariate_normal(mean, cov, size=n)


def test_identical_sets_give_zero_and_the_distance_is_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 2048)), rng.normal(size=(7, 2048)) + 0.1
    assert fid.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    assert fid.fid(a, b) == pytest.approx(fid.fid(b, a), rel=1e-12)
    assert fid.fid(a, b) > 0
    assert np.isnan(fid.fid(a[:1], b))  # one sample has no covariance


def test_frechet_distance_of_two_gaussians_in_closed_form():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    # commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(closed, rel=1e-10)
    # general covariances: tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), the symmetric form, from eigendecompositions
    a1, a2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    c1, c2 = a1 @ a1.T + np.eye(d), a2 @ a2.T + np.eye(d)
    w, v = np.linalg.eigh(c1)
    s1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(s1 @ c2 @ s1)
    closed = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.sum(np.sqrt(inner))
    assert fid.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(closed, rel=1e-9)
    # from samples, the exact low-rank trace equals the sqrtm of the sample covariances (n > d and n < d)
    for n in (300, 4):
        x, y = _gauss(rng, n, mu1, c1), _gauss(rng, n + 1, mu2, c2)
        ref = fid.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        assert fid.fid(x, y) == pytest.approx(ref, rel=1e-6, abs=1e-6)
    # and converges to the closed form
    x, y = _gauss(rng, 20000, mu1, c1), _gauss(rng, 20000, mu2, c2)
    assert fid.fid(x, y) == pytest.approx(closed, rel=0.03)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    d = 64
    same = [fid.kid(rng.normal(size=(30, d)), rng.normal(size=(30, d)))[0] for _ in range(20)]
    value, se = fid.kid(rng.normal(size=(30, d)), rng.normal(size=(30, d)) + 0.5)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # unbiased: the mean of estimates is ~0
    assert se > 0 and value > 5 * se
    assert np.isnan(fid.kid(rng.normal(size=(2, d)), rng.normal(size=(2, d)))[0])


def test_the_network_is_the_fid_inception_with_the_official_key_layout():
    model = fid.FIDInceptionV3().eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    # torchvision's Inception3 names, no aux classifier, 1008 classes: 23.8 M parameters (timm lists torchvision's
    # inception_v3 without its aux head at 23.8 M for 1000 classes: 23,834,568; + 8 x 2049 for the 1008-way fc)
    assert sum(p.numel() for p in model.parameters()) == 23_834_568 + 8 * 2049
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_var": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith("AuxLogits") for k in state) and len(state) == 472


def test_features_are_the_2048_d_average_pool_of_mixed_7c():
    torch.manual_seed(0)
    model = fid.FIDInceptionV3().eval()
    seen = {}
    model.Mixed_7c.register_forward_hook(lambda m, i, o: seen.setdefault("7c", o))
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 2048) and seen["7c"].shape == (1, 2048, 8, 8)
    torch.testing.assert_close(out, seen["7c"].mean(dim=(2, 3)))


def test_preprocessing_is_clean_fids_resize_and_scale():
    from PIL import Image

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(72, 96, 3), dtype=np.uint8)
    x = fid.preprocess(img)
    assert x.shape == (3, 299, 299) and x.dtype == torch.float32
    ref = np.asarray(Image.fromarray(img[..., 1].astype(np.float32)).resize((299, 299), Image.BICUBIC)).clip(0, 255)
    np.testing.assert_allclose(x[1].numpy(), (ref - 128) / 128, atol=1e-6)
    assert fid.preprocess(np.full((10, 10, 3), 128, np.uint8)).abs().max() == 0


def test_loader_reads_the_official_layout_and_refuses_others(tmp_path):
    torch.manual_seed(0)
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in fid.FIDInceptionV3().state_dict().items()}
    official = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(official, tmp_path / "pt_inception.pth")
    model = fid.load_inception(tmp_path / "pt_inception.pth")
    torch.testing.assert_close(model.Mixed_6c.branch7x7_2.conv.weight, official["Mixed_6c.branch7x7_2.conv.weight"])
    # the same layout with stride-0 tensors (tiny files): num_batches_tracked present is also the official layout
    layout = {k: torch.zeros(()).expand(v.shape) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(layout, tmp_path / "with_counters.pth")
    fid.load_inception(tmp_path / "with_counters.pth")
    cases = {
        "missing.pth": {k: v for k, v in layout.items() if k != "fc.bias"},
        "renamed.pth": {k.replace("Mixed_7c", "Mixed_7d"): v for k, v in layout.items()},
        "shape.pth": {**layout, "Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5)},
        "tv.pth": {**layout, "AuxLogits.fc.weight": torch.zeros(1000, 768)},
        "list.pth": list(layout.values())[:3],
    }
    for name, bad in cases.items():
        torch.save(bad, tmp_path / name)
        with pytest.raises(DataError, match=name):
            fid.load_inception(tmp_path / name)
    (tmp_path / "cut.pth").write_bytes((tmp_path / "pt_inception.pth").read_bytes()[:10000])
    with pytest.raises(DataError, match="cut.pth"):
        fid.load_inception(tmp_path / "cut.pth")
