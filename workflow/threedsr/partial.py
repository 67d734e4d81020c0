"""The finished units of a job that has not finished, kept beside its output so that the rerun of a killed job redoes
only the rest: super_resolve's and supergaussian_frames' batches of images.

`.<output name>.partial/` holds `fingerprint.txt` (everything the units depend on: the model's weights, the sampler,
the input images) and one PNG per finished image, each written atomically (a batch counts as finished when all its images are there). A
rerun with another fingerprint starts over; the folder is removed once the output is complete. It cannot live inside
the output: Snakemake deletes a declared output folder before the job starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .io import fault_point, write_png

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.txt"


def fingerprint(*parts) -> str:
    """sha256 of strings, bytes and uint8 arrays, in order."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(repr((p.shape, p.dtype.str)).encode())
            p = np.ascontiguousarray(p).tobytes()
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()


class PartialImages:
    """Finished images of the output `final`, by name (`<name>.png`)."""

    def __init__(self, final: str | Path, key: str, fault: str):
        final = Path(final)
        self.dir = final.parent / f".{final.name}.partial"
        self.fault = fault  # the fault point passed after each saved batch (io.fault_point)
        mark = self.dir / FINGERPRINT
        if self.dir.exists():
            if mark.is_file() and mark.read_text() == key:
                log.info("resuming: %d images finished by an interrupted run are in %s", len(list(self.dir.glob("*.png"))), self.dir)
            else:
                log.info("%s: left by an interrupted run with other inputs (model, sampler or images); starting over", self.dir)
                shutil.rmtree(self.dir)
        if not self.dir.exists():
            self.dir.mkdir(parents=True)
            mark.write_text(key)

    def finished(self, names: list[str]) -> bool:
        """Whether the batch `names` was finished: every image there and intact (each is written atomically, but a file
        damaged since, e.g. by a disk error, would otherwise be copied into the output)."""
        paths = [self.dir / f"{n}.png" for n in names]
        if not all(p.is_file() for p in paths):
            return False
        for p in paths:
            try:
                with Image.open(p) as im:
                    im.verify()  # the PNG's chunks and checksums, without decoding it
            except Exception as e:
                log.warning("%s: damaged (%s: %s); computing its batch again", p, type(e).__name__, e)
                return False
        return True

    def save(self, images: dict[str, np.ndarray]) -> None:
        """One finished batch: every image, then the fault point (each file is atomic; a batch counts when all are there)."""
        for name, image in images.items():
            write_png(self.dir / f"{name}.png", image)
        fault_point(self.fault)

    def link_into(self, folder: Path, names: list[str]) -> None:
        """The finished images `names` into `folder` (the output's temporary folder), byte for byte: hard links, which
        cost no space and leave them here until `done` (a job killed inside its final write keeps them)."""
        folder.mkdir(parents=True, exist_ok=True)
        for n in names:
            try:
                os.link(self.dir / f"{n}.png", folder / f"{n}.png")
            except OSError:  # a file system without hard links
                shutil.copyfile(self.dir / f"{n}.png", folder / f"{n}.png")

    def done(self) -> None:
        """The output is complete: the partial images are not needed again."""
        shutil.rmtree(self.dir, ignore_errors=True)
