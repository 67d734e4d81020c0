import hashlib
import http.server
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from threedsr.data.datasets import Archive
from threedsr.data.download import download, extract_scene
from threedsr.errors import DataError, OfflineError

PAYLOAD = os.urandom(300_000)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /data.zip with Range support, and a Drive-style confirmation page at /drive."""

    requests_seen: list = []
    payload: bytes = PAYLOAD  # what /data.zip serves
    goog_hash: str | None = None  # an x-goog-hash header to send with it, as Google Cloud Storage does

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.requests_seen.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/drive"):
            port = self.server.server_address[1]
            page = (
                f'<html><form id="download-form" action="http://127.0.0.1:{port}/data.zip" method="get">'
                '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
                '<input type="submit" value="Download anyway"></form></html>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = _Handler.payload[start:]
        if _Handler.goog_hash:
            self.send_header("x-goog-hash", _Handler.goog_hash)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.requests_seen, _Handler.payload, _Handler.goog_hash = [], PAYLOAD, None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_resumes_a_partial_download_and_checks_sha256(server, tmp_path):
    dest = tmp_path / "data.zip"
    Path(str(dest) + ".part").write_bytes(PAYLOAD[:100_000])
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    download(Archive("data.zip", f"{server}/data.zip", sha256=sha, size=len(PAYLOAD)), dest)
    assert dest.read_bytes() == PAYLOAD
    assert ("/data.zip", "bytes=100000-") in _Handler.requests_seen
    assert not Path(str(dest) + ".part").exists()


def test_checksum_mismatch_is_an_error_and_leaves_no_archive(server, tmp_path):
    dest = tmp_path / "data.zip"
    with pytest.raises(DataError, match="sha256"):
        download(Archive("data.zip", f"{server}/data.zip", sha256="0" * 64), dest)
    assert not dest.exists()


def test_first_download_without_checksum_logs_it(server, tmp_path, caplog):
    download(Archive("data.zip", f"{server}/data.zip"), tmp_path / "data.zip")
    assert hashlib.sha256(PAYLOAD).hexdigest() in caplog.text


def _goog_hash(data: bytes) -> str:
    import base64

    return f"crc32c=AAAAAA==,md5={base64.b64encode(hashlib.md5(data).digest()).decode()}"


def test_the_md5_the_server_publishes_is_checked(server, tmp_path, caplog):
    """Google Cloud Storage (MipNeRF360's archives) sends each object's MD5 in x-goog-hash: a download, resumed or not,
    must match it; one that does not is deleted."""
    caplog.set_level("INFO", logger="threedsr.data.download")
    _Handler.goog_hash = _goog_hash(PAYLOAD)
    Path(str(tmp_path / "data.zip") + ".part").write_bytes(PAYLOAD[:1000])
    download(Archive("data.zip", f"{server}/data.zip"), tmp_path / "data.zip")
    assert (tmp_path / "data.zip").read_bytes() == PAYLOAD and "MD5 matches" in caplog.text
    _Handler.goog_hash = _goog_hash(b"another object")
    with pytest.raises(DataError, match="MD5 differs from the one .* publishes"):
        download(Archive("data.zip", f"{server}/data.zip"), tmp_path / "again.zip")
    assert not (tmp_path / "again.zip").exists() and not Path(str(tmp_path / "again.zip") + ".part").exists()


def test_an_official_archive_is_checked_for_its_scenes(server, tmp_path):
    """No official archive has a published sha256: what is downloaded as nerf_llff_data.zip must be a zip holding every
    LLFF scene with its poses and images, or it is not taken (an error names what is missing; the file is kept)."""
    from threedsr.data.datasets import OFFICIAL_SCENES

    scenes = sorted(OFFICIAL_SCENES["llff"])
    members = {f"nerf_llff_data/{s}/{f}": b"x" for s in scenes for f in ("poses_bounds.npy", "images/IMG_0001.JPG")}
    _Handler.payload = _zip(tmp_path / "good.zip", members).read_bytes()
    download(Archive("nerf_llff_data.zip", f"{server}/data.zip", "llff"), tmp_path / "nerf_llff_data.zip")
    assert (tmp_path / "nerf_llff_data.zip").exists()
    del members["nerf_llff_data/trex/poses_bounds.npy"]
    _Handler.payload = _zip(tmp_path / "bad.zip", members).read_bytes()
    with pytest.raises(
        DataError, match="not the published nerf_llff_data.zip: no poses_bounds.npy and images/ for nerf_llff_data/trex. Kept"
    ):
        download(Archive("nerf_llff_data.zip", f"{server}/data.zip", "llff"), tmp_path / "other" / "nerf_llff_data.zip")
    assert not (tmp_path / "other" / "nerf_llff_data.zip").exists()  # not taken for the archive, and not lost either:
    assert (tmp_path / "other" / "nerf_llff_data.zip.part").read_bytes() == _Handler.payload
    _Handler.payload = PAYLOAD  # not a zip at all (an HTML error page, a file cut short)
    with pytest.raises(DataError, match="not a readable zip archive"):
        download(Archive("nerf_llff_data.zip", f"{server}/data.zip", "llff"), tmp_path / "third" / "nerf_llff_data.zip")


def test_google_drive_confirmation_page_is_followed(server, tmp_path):
    download(Archive("data.zip", f"{server}/drive?id=abc", gdrive=True), tmp_path / "data.zip")
    assert (tmp_path / "data.zip").read_bytes() == PAYLOAD
    assert any(p.startswith("/data.zip?") and "confirm=t" in p for p, _ in _Handler.requests_seen)


def test_offline_error_says_what_to_download_and_where(tmp_path):
    dest = tmp_path / "downloads" / "nerf_llff_data.zip"
    with pytest.raises(OfflineError) as e:
        download(Archive("nerf_llff_data.zip", "http://127.0.0.1:9/nerf_llff_data.zip", "llff"), dest, timeout=2)
    assert "nerf_llff_data.zip" in str(e.value) and str(dest) in str(e.value) and "datasets.llff.root" in str(e.value)


def _zip(path: Path, members: dict, links: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_extracts_only_the_scene_folder(tmp_path):
    a = _zip(
        tmp_path / "a.zip",
        {"nerf_llff_data/fern/images/a.png": b"1", "nerf_llff_data/fern/poses_bounds.npy": b"2", "nerf_llff_data/trex/x": b"3"},
        links={"nerf_llff_data/fern/images_8": "images"},
    )
    out = extract_scene(a, "nerf_llff_data/fern/", tmp_path / "fern")
    assert (out / "images" / "a.png").read_bytes() == b"1"
    assert not (out / "x").exists() and not (tmp_path / "trex").exists()
    assert os.readlink(out / "images_8") == "images"


@pytest.mark.parametrize("bad", ["../evil.txt", "/etc/evil.txt", "fern/../../evil.txt", "C:/evil.txt"])
def test_refuses_members_escaping_the_target(tmp_path, bad):
    a = _zip(tmp_path / "a.zip", {"fern/ok.txt": b"1", bad: b"2"})
    with pytest.raises(DataError, match=r"a\.zip.*outside the target"):
        extract_scene(a, "fern/", tmp_path / "out" / "fern")
    assert not (tmp_path / "out" / "fern").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_refuses_links_escaping_the_target(tmp_path):
    a = _zip(tmp_path / "a.zip", {"fern/ok.txt": b"1"}, links={"fern/images": "../../../etc"})
    with pytest.raises(DataError, match=r"a\.zip.*link"):
        extract_scene(a, "fern/", tmp_path / "out" / "fern")
    assert not (tmp_path / "out" / "fern").exists()


def test_half_downloaded_archive_is_named(tmp_path):
    a = _zip(tmp_path / "a.zip", {f"fern/{i}.bin": os.urandom(50_000) for i in range(4)})
    truncated = tmp_path / "trunc.zip"
    truncated.write_bytes(a.read_bytes()[:120_000])
    with pytest.raises(DataError, match=r"trunc\.zip"):
        extract_scene(truncated, "fern/", tmp_path / "out" / "fern")
    assert not (tmp_path / "out" / "fern").exists()
