"""A cache of trained `tiny` priors shared by every clone and run on a machine, so the prior is trained once.

An entry is keyed by everything that decides the trained weights: the training config (params.yaml's sr.tiny keys,
threedsr.steps, the thread count), the training photos' pixels, the code that trains (the source of the modules
below) and the versions of the packages whose arithmetic it runs on. It holds the folder train_prior writes and a
fingerprint (the key and every file's sha256), checked before an entry is used: an entry that does not match is
removed, with a warning, and the prior is trained again.

    $THREEDSR_PRIOR_CACHE/tiny/<key>/      (default ~/.cache/threedsr/priors, or $XDG_CACHE_HOME/threedsr/priors)
    THREEDSR_PRIOR_CACHE=off               no cache: train every time

A user-wide folder, unlike the checkout's .cache ($THREEDSR_CACHE) where converted weights live: the point is that a
new clone does not train again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from ..io import atomic_dir, file_hashes

log = logging.getLogger(__name__)

FINGERPRINT = "cache-fingerprint.json"
# the modules whose code decides the trained weights (the training loop, the model, its scheduler and the
# sampler's timesteps it favours, the resizing that makes LR patches, the photos' loading)
CODE = ("sr/train_tiny.py", "sr/tiny.py", "sr/sampling.py", "imaging.py", "data/photos.py")
PACKAGES = ("torch", "diffusers", "numpy", "pillow")


def cache_root() -> Path | None:
    """The cache folder, or None when THREEDSR_PRIOR_CACHE=off."""
    env = os.environ.get("THREEDSR_PRIOR_CACHE")
    if env and env.lower() in ("off", "0", "false", "no"):
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "threedsr" / "priors"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def key(cfg, photos: dict[str, np.ndarray]) -> str:
    """The digest of everything that decides the weights trained with `cfg` (a TinyTrainConfig) on `photos`."""
    h = hashlib.sha256()
    h.update(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    for name in sorted(photos):
        h.update(name.encode())
        h.update(np.ascontiguousarray(photos[name]).tobytes())
    package = Path(__file__).resolve().parents[1]
    for rel in CODE:
        h.update(rel.encode())
        h.update((package / rel).read_bytes())
    h.update(json.dumps({p: _version(p) for p in PACKAGES}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def fetch(k: str, out: Path) -> bool:
    """Copy the entry `k` to the folder `out` (atomically) when it exists and its fingerprint holds; True if it did."""
    root = cache_root()
    entry = root and root / "tiny" / k
    if entry is None or not entry.is_dir():
        return False
    try:
        stored = json.loads((entry / FINGERPRINT).read_text())
        ok = stored.get("key") == k and stored.get("files") == file_hashes(entry, skip=(FINGERPRINT,))
    except (OSError, ValueError) as e:
        ok, stored = False, {"error": str(e)}
    if not ok:
        log.warning("%s: the cached prior does not match its fingerprint (changed or incomplete); removing it and training again", entry)
        shutil.rmtree(entry, ignore_errors=True)
        return False
    with atomic_dir(out) as tmp:
        shutil.copytree(entry, tmp, ignore=shutil.ignore_patterns(FINGERPRINT), dirs_exist_ok=True)
    return True


def store(k: str, folder: Path) -> None:
    """Keep a copy of the trained prior `folder` as entry `k` (written beside, then renamed: readers never see half of
    it). A cache that cannot be written costs a warning, not the run."""
    root = cache_root()
    if root is None:
        return
    entry = root / "tiny" / k
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{k}.", suffix=".tmp", dir=entry.parent))
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        (tmp / FINGERPRINT).write_text(json.dumps({"key": k, "files": file_hashes(tmp, skip=(FINGERPRINT,))}, indent=1))
        try:
            tmp.rename(entry)
        except OSError:  # another run stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        log.warning("could not keep the trained prior in the cache %s (%s); the next run trains it again", entry, e)
