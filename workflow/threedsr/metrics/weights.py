"""The metrics' weight files: where each comes from, where it is looked for, fetching it when online.

Each file is looked for (1) at the path its `metrics.*` key names, (2) in the torch hub cache under the
name the standard library gives it (`$TORCH_HOME/hub/checkpoints/<file>`, and where newer versions of
that library cache it), so a cache a user already has is reused, (3) downloaded from its official URL
into the hub cache, checked against its checksum. Offline and absent, the metric is reported as
missing (n/a) with one warning per file naming the file, its URL and where to put it: never a number
made up without it. A download that does not match its checksum is an error and is not kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..errors import DataError, OfflineError

log = logging.getLogger(__name__)


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

    @property
    def file(self) -> str:
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name

    def cached(self) -> Path:
        return hub_dir() / "checkpoints" / self.file

    def candidates(self) -> list[Path]:
        return [self.cached()] + [hub_dir() / p for p in self.also_cached_at]


def hub_dir() -> Path:
    """torch.hub's folder: $TORCH_HOME/hub, by default ~/.cache/torch/hub."""
    import torch.hub

    return Path(torch.hub.get_dir())


ALEXNET = WeightFile(
    key="metrics.lpips_backbone",
    what="LPIPS-Alex's backbone (torchvision's ImageNet AlexNet)",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be79",
)

INCEPTION = WeightFile(
    key="metrics.fid_inception",
    what="FID's Inception-v3 (pytorch-fid's port of the 2015-12-05 TensorFlow graph)",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
)


def _published_niqe_values(path: Path) -> bool:
    from .niqe import PUBLISHED_MODEL_FINGERPRINT, model_fingerprint

    try:
        return model_fingerprint(path) == PUBLISHED_MODEL_FINGERPRINT
    except DataError:
        return False


NIQE_MODEL = WeightFile(
    key="metrics.niqe_model",
    what="NIQE's pristine model (the MATLAB release's modelparameters.mat, as pyiqa 0.1.10 downloads it)",
    url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/niqe_modelparameters.mat",
    sha256="fa2aa4d12dd9595c",
    also_cached_at=("pyiqa/niqe_modelparameters.mat",),  # pyiqa >= 0.1.11
    content_check=_published_niqe_values,
)

_warned: set[str] = set()


def _warn_missing(spec: WeightFile, reason: str) -> None:
    if spec.file in _warned:
        return
    _warned.add(spec.file)
    msg = (
        f"{spec.what} unavailable: {spec.file} is not in {spec.cached().parent} and {reason}; the column is n/a. "
        f"Download {spec.url} to {spec.cached()}, or set {spec.key} in params.yaml to a local copy"
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


def download_weights(spec: WeightFile, dest: Path | None = None, timeout: float = 30.0) -> Path:
    """Download `spec.url` to `dest` (default: its place in the hub cache) through a temporary file,
    checking its sha256 (or its content); OfflineError when the URL cannot be reached (then nothing is
    written). Jobs that download at once take turns on a lock beside the file: the first downloads,
    the others find the file."""
    import fcntl

    dest = Path(dest) if dest else spec.cached()
    try:
        response = urllib.request.urlopen(spec.url, timeout=timeout)
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
        raise OfflineError(f"{spec.url}: {getattr(e, 'reason', e)}") from None
    with response:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / f".{dest.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if dest.is_file():  # another job downloaded it meanwhile
                    return dest
                return _save(spec, response, dest)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _save(spec: WeightFile, response, dest: Path) -> Path:
    from ..io import atomic_path

    log.info("downloading %s to %s", spec.url, dest)
    digest, size = hashlib.sha256(), 0
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            try:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
            except (OSError, socket.timeout) as e:
                raise OfflineError(f"{spec.url}: the download broke off after {size} bytes ({e})") from None
        got = digest.hexdigest()
        if not got.startswith(spec.sha256) and not (spec.content_check and spec.content_check(tmp)):
            raise DataError(
                f"{spec.url}: the downloaded file ({size} bytes, sha256 {got}) does not match the expected "
                f"sha256 {spec.sha256}{'...' if len(spec.sha256) < 64 else ''}: not kept as {dest}"
            )
    log.info("%s: %d bytes, sha256 %s", dest, size, got)
    return dest
