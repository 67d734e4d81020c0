import hashlib
import http.server
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from threedsr.datasets import Archive
from threedsr.download import download, extract_scene
from threedsr.errors import DataError, OfflineError

PAYLOAD = os.urandom(300_000)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /data.zip with Range support, and a Drive-style confirmation page at /drive."""

    requests_seen: list = []

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
        body = PAYLOAD[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.requests_seen = []
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
