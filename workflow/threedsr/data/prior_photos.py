"""The photos the offline prior trains on, where no local copy is named: 162 colour photographs (CBSD68,
CSun_Hays80, CSet14) from the public collection majedelhelou/denoising_datasets ("collected here for convenience, no
ownership claimed"), pinned to one commit, each file's size and sha256 in prior_photos.tsv beside this module.

train_prior trains on them less every HOLDOUT_EVERY-th (sorted by relative path), which benchmarks/prior_eval.py
scores on; ../shared/data/photos is a local copy of the same files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import OfflineError
from ..progress import progress

log = logging.getLogger(__name__)

REPOSITORY = "majedelhelou/denoising_datasets"
COMMIT = "58234876fef6f1b56306705c78dfd40cdb837b86"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
MANIFEST = Path(__file__).with_name("prior_photos.tsv")
HOLDOUT_EVERY = 16  # every 16th photo (11 of 162) is held out of training, for benchmarks/prior_eval.py


@dataclass(frozen=True)
class Photo:
    path: str  # relative to the collection's root (and to a local copy's)
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.path}"


def manifest() -> list[Photo]:
    rows = [line.split("\t") for line in MANIFEST.read_text().splitlines() if line and not line.startswith("#")]
    return [Photo(path, int(size), sha) for path, size, sha in rows]


def download(dest: Path, timeout: float = 30.0) -> Path:
    """Every photo of the manifest into the folder `dest`, each checked (size, sha256) and written atomically; files
    already there and intact are kept, so an interrupted download resumes. OfflineError names the first file that
    cannot be fetched; DataError one that arrives different."""
    from ..weights import WeightFile, download_weights
    from .download import file_digest

    dest = Path(dest)
    photos = manifest()
    for photo in progress(photos, desc="prior photos", unit="photo"):
        target = dest / photo.path
        if target.is_file():
            if target.stat().st_size == photo.size and file_digest(target) == photo.sha256:
                continue
            log.warning("%s: cut off or altered; downloading it again", target)
            target.unlink()
        spec = WeightFile("sr.tiny.photos", "a training photo of the offline prior", photo.url, photo.sha256, photo.size)
        try:
            download_weights(spec, target, timeout)
        except OfflineError as e:
            raise OfflineError(
                f"{e}: the offline prior's training photos cannot be downloaded here; set sr.tiny.photos to a local "
                f"copy of {REPOSITORY}'s CBSD68, CSun_Hays80 and CSet14 (../shared/data/photos holds one)"
            ) from None
    log.info("%d training photos of the prior in %s (%s at %s)", len(photos), dest, REPOSITORY, COMMIT[:7])
    return dest


def check_local(root: Path) -> None:
    """A local folder named by sr.tiny.photos: any folder of photos trains, but one that is meant to be the pinned set and
    is not (a missing, truncated or re-encoded file) is worth a warning, since the prior then differs from the shipped one."""
    from .download import file_digest

    differ = [p.path for p in manifest() if not (root / p.path).is_file() or file_digest(root / p.path) != p.sha256]
    if differ and len(differ) < len(manifest()):
        log.warning("%s: %d of the pinned training photos are missing or differ (%s ...)", root, len(differ), differ[0])
    elif differ:
        log.info("%s: not the pinned photo set; training on its own photos", root)
