"""The offline prior's training photos: the pinned manifest, its download (checked, resumable, offline errors), and
that the shipped prior was trained on exactly the manifest less its held-out photos."""

import functools
import hashlib
import http.server
import json
import threading

import pytest
from conftest import _shared

from threedsr.data import prior_photos
from threedsr.data.photos import holdout_split
from threedsr.errors import DataError, OfflineError
from threedsr.sr.tiny import CONFIG_NAME, SHIPPED


def test_the_manifest_is_the_shared_copy_and_the_shipped_prior_trained_on_it_less_the_held_out():
    root = _shared("data/photos")
    photos = prior_photos.manifest()
    assert len(photos) == 162 and {p.path.split("/")[0] for p in photos} == {"CBSD68", "CSun_Hays80", "CSet14"}
    for p in photos:
        data = (root / p.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (p.size, p.sha256), p.path
    train, held_out = holdout_split([p.path for p in photos], prior_photos.HOLDOUT_EVERY)
    shipped = json.loads((SHIPPED / CONFIG_NAME).read_text())
    assert shipped["training"]["photos"] == train and len(held_out) == 11


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP, with the paths requested."""
    root, seen = tmp_path / "remote", []
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()


def _manifest(tmp_path, monkeypatch, files: dict[str, bytes]):
    rows = [f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}" for name, data in files.items()]
    (tmp_path / "manifest.tsv").write_text("# path\tbytes\tsha256\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(prior_photos, "MANIFEST", tmp_path / "manifest.tsv")


def test_download_checks_each_photo_and_resumes(served, tmp_path, monkeypatch):
    remote, url, seen = served
    files = {"A/one.png": b"first photo" * 50, "B/two.jpg": b"second" * 80}
    for name, data in files.items():
        (remote / name).parent.mkdir(parents=True, exist_ok=True)
        (remote / name).write_bytes(data)
    _manifest(tmp_path, monkeypatch, files)
    monkeypatch.setattr(prior_photos, "BASE_URL", url)
    out = tmp_path / "photos"
    prior_photos.download(out)
    assert {n: (out / n).read_bytes() for n in files} == files and sorted(seen) == ["/A/one.png", "/B/two.jpg"]
    # an interrupted download resumes: an intact photo is kept, a cut-off one fetched again
    seen.clear()
    (out / "B/two.jpg").write_bytes(files["B/two.jpg"][:10])
    prior_photos.download(out)
    assert seen == ["/B/two.jpg"] and (out / "B/two.jpg").read_bytes() == files["B/two.jpg"]
    # a photo that arrives different is refused, named, and not kept
    (remote / "A/one.png").write_bytes(b"re-encoded" * 55)
    (out / "A/one.png").unlink()
    with pytest.raises(DataError, match=r"A/one.png: the downloaded file .* does not match the expected sha256"):
        prior_photos.download(out)
    assert not (out / "A/one.png").exists()


def test_offline_the_error_names_the_key_for_a_local_copy(tmp_path, monkeypatch):
    _manifest(tmp_path, monkeypatch, {"A/one.png": b"x" * 10})
    monkeypatch.setattr(prior_photos, "BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(OfflineError, match=r"A/one.png.*cannot be downloaded here; set sr.tiny.photos to a local copy"):
        prior_photos.download(tmp_path / "photos", timeout=2)
    assert not any((tmp_path / "photos").rglob("*.png"))
