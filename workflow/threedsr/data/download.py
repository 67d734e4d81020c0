"""Resumable downloads, checked, and archive extraction that cannot escape its target.

A download is checked against what can be known of it: its size and sha256 where recorded in datasets.py (none of the
official archives has a published sha256), the MD5 its server publishes in the `x-goog-hash` header (Google Cloud
Storage, where MipNeRF360's archives are), and for an official archive its structure: a readable zip directory (a
truncated file has none) holding every scene it should, each with poses and images. Extraction then checks each
file's CRC-32 as it reads it.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import logging
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DataError, OfflineError, lookup
from ..io import atomic_dir
from ..progress import progress
from .datasets import ARCHIVES, OFFICIAL_SCENES, Archive

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def published_md5(headers) -> str | None:
    """The whole object's MD5 (hex) from a Google Cloud Storage `x-goog-hash: crc32c=…,md5=…` header, if there is one."""
    m = re.search(r"md5=([A-Za-z0-9+/]+={0,2})", headers.get("x-goog-hash", ""))
    return base64.b64decode(m.group(1)).hex() if m else None


def check_structure(path: Path, filename: str) -> None:
    """An official archive holds every scene datasets.py lists for it, each with poses_bounds.npy and an images folder."""
    prefixes = sorted({prefix for scenes in OFFICIAL_SCENES.values() for f, prefix in scenes.values() if f == filename})
    if not prefixes:
        return
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip archive ({e}): not {filename}, or cut short") from None
    missing = []
    for prefix in prefixes:
        inside = [n[len(prefix) :] for n in names if n.startswith(prefix)]
        has_images = any(re.match(r"images[^/]*/[^/]+$", n) for n in inside)
        if "poses_bounds.npy" not in inside or not has_images:
            missing.append(prefix.rstrip("/"))
    if missing:
        raise DataError(f"{path}: not the published {filename}: no poses_bounds.npy and images/ for {', '.join(missing)}")


class _FormParser(html.parser.HTMLParser):
    """Google Drive's 'file too large to scan' page: a form whose action and hidden inputs give the real URL."""

    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")


def _gdrive_confirmed_url(session, url: str, timeout: float) -> str:
    r = session.get(url, timeout=timeout, stream=True)
    r.raise_for_status()
    if "text/html" not in r.headers.get("content-type", ""):
        r.close()
        return url  # small file: served directly
    parser = _FormParser()
    parser.feed(r.text)
    if not parser.action:
        raise DataError(f"{url}: Google Drive answered with a page that has no download form (quota exceeded or file moved?)")
    from urllib.parse import urlencode

    return f"{parser.action}?{urlencode(parser.fields)}"


def download(archive: Archive, dest: Path, timeout: float = 60.0) -> Path:
    """Download `archive` to `dest`, resuming a partial `dest.part`, and check size and sha256."""
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = requests.Session()
    md5 = None
    try:
        url = _gdrive_confirmed_url(session, archive.url, timeout) if archive.gdrive else archive.url
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
            md5 = published_md5(r.headers)  # the whole object's MD5, also in answer to a range (resumed) request
            if r.status_code == 416:  # range not satisfiable: the partial file is already complete
                pass
            else:
                r.raise_for_status()
                if have and r.status_code != 206:
                    log.warning("%s: server ignored the resume request, starting over", url)
                    have = 0
                total = int(r.headers.get("content-length", 0)) + have or None
                with (
                    open(part, "ab" if have else "wb") as f,
                    progress(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar,
                ):
                    for chunk in r.iter_content(CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
    except (requests.ConnectionError, requests.Timeout) as e:
        raise OfflineError(
            f"cannot download {archive.filename} from {archive.url} ({type(e).__name__}). "
            f"Without network access, download it elsewhere and put it at {dest}, or extract its scenes "
            f"into the folder that params.yaml's datasets.{archive.dataset or '<dataset>'}.root names (one sub-folder per scene)."
        ) from None
    except requests.HTTPError as e:
        raise DataError(f"downloading {archive.filename} from {archive.url} failed: {e}") from None
    size = part.stat().st_size
    if archive.size is not None and size != archive.size:
        raise DataError(f"{part}: {size} bytes, expected {archive.size}; the download is incomplete, run again to resume")
    digest = file_digest(part)
    if archive.sha256 is None:
        log.warning("%s: no checksum recorded; sha256 %s (%d bytes). Pin it in threedsr/data/datasets.py.", archive.filename, digest, size)
    elif digest != archive.sha256:
        part.unlink()
        raise DataError(f"{dest}: sha256 {digest} does not match the recorded {archive.sha256}; deleted, run again")
    if md5 is not None:
        if file_digest(part, "md5") != md5:
            part.unlink()
            raise DataError(f"{dest}: its MD5 differs from the one {archive.url} publishes (x-goog-hash); deleted, run again")
        log.info("%s: MD5 matches the server's (x-goog-hash)", archive.filename)
    try:
        check_structure(part, archive.filename)
    except DataError as e:  # kept, not deleted: a cut-short file resumes, and a re-laid-out archive is not lost
        raise DataError(
            f"{e}. Kept as {part}: run again to resume a download cut short; if it is complete, extract its scenes into the "
            f"folder params.yaml's datasets.{archive.dataset or '<dataset>'}.root names (one sub-folder per scene)"
        ) from None
    os.replace(part, dest)
    return dest


def _member_target(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in p.parts:
        raise DataError(f"{archive}: member {info.filename!r} would be written outside the target folder; refusing to extract")
    return p


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def extract_scene(archive_path: Path, prefix: str, out_dir: Path) -> Path:
    """Extract the members under `prefix` (e.g. 'nerf_llff_data/fern/') into out_dir, atomically.

    Absolute paths, '..' components, and links pointing outside the target are refused;
    a corrupt or truncated archive raises DataError naming it.
    """
    archive_path = Path(archive_path)
    try:
        zf = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive_path}: not a readable zip archive ({e}); it may be half-downloaded, delete it and run again") from None
    with zf, atomic_dir(out_dir) as tmp:
        members = [m for m in zf.infolist() if m.filename.startswith(prefix)]
        if not members:
            raise DataError(f"{archive_path}: has no folder {prefix!r}")
        for m in zf.infolist():
            _member_target(m, archive_path)  # check every member, not only ours: a hostile archive is refused whole
        for m in progress(members, desc=f"extract {prefix}", unit="file"):
            rel = _member_target(m, archive_path).relative_to(prefix.rstrip("/"))
            target = tmp / rel
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if _is_link(m):
                link = PurePosixPath(zf.read(m).decode())
                resolved = os.path.normpath(PurePosixPath(rel).parent / link)
                if link.is_absolute() or resolved.startswith(".."):
                    raise DataError(f"{archive_path}: link {m.filename!r} -> {link} points outside the target folder; refusing to extract")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(link, target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise DataError(f"{archive_path}: member {m.filename!r} is corrupt ({e}); the archive may be half-downloaded") from None
    return out_dir


def archive_for(filename: str) -> Archive:
    return lookup(ARCHIVES, filename, "archive", DataError)
