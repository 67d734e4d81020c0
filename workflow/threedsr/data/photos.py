"""Natural photographs that ship inside installed packages: the project's offline image source.

Synthetic scenes are textured only with TEXTURE_PHOTOS; the offline SR prior trains on the others
(PRIOR_PHOTOS), and additionally skips any photo a scene under evaluation lists in `synthetic.json`.
A folder of photos (load_photo_folder: every image under it, each identified by its relative path) can
train it too, e.g. the 162 photos of ../shared/data/photos.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io import IMAGE_SUFFIXES

# id -> (package, path inside the package)
PHOTOS: dict[str, tuple[str, str]] = {
    "skimage:astronaut": ("skimage", "data/astronaut.png"),
    "skimage:chelsea": ("skimage", "data/chelsea.png"),
    "skimage:coffee": ("skimage", "data/coffee.png"),
    "skimage:rocket": ("skimage", "data/rocket.jpg"),
    "skimage:motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "skimage:hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "skimage:retina": ("skimage", "data/retina.jpg"),
    "skimage:grass": ("skimage", "data/grass.png"),
    "skimage:gravel": ("skimage", "data/gravel.png"),
    "skimage:brick": ("skimage", "data/brick.png"),
    "skimage:ihc": ("skimage", "data/ihc.png"),
    "sklearn:china": ("sklearn", "datasets/images/china.jpg"),
    "sklearn:flower": ("sklearn", "datasets/images/flower.jpg"),
    "matplotlib:grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    # greyscale photographs (loaded as RGB): edges and textures for the SR prior
    "skimage:camera": ("skimage", "data/camera.png"),
    "skimage:coins": ("skimage", "data/coins.png"),
    "skimage:cell": ("skimage", "data/cell.png"),
    "skimage:text": ("skimage", "data/text.png"),
}

TEXTURE_PHOTOS = (
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:gravel",
    "skimage:grass",
    "skimage:brick",
    "skimage:ihc",
    "skimage:retina",
    "sklearn:flower",
)
PRIOR_PHOTOS = tuple(p for p in PHOTOS if p not in TEXTURE_PHOTOS)


def load_photo(photo_id: str) -> np.ndarray:
    """HxWx3 uint8 RGB of a bundled photo."""
    try:
        package, path = PHOTOS[photo_id]
    except KeyError:
        raise DataError(f"unknown photo {photo_id!r}; known: {', '.join(PHOTOS)}") from None
    try:
        with importlib.resources.as_file(importlib.resources.files(package).joinpath(path)) as p, Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataError(f"photo {photo_id!r} is not installed ({e}); install the package {package!r}") from None


def photo_folder_ids(root: str | Path) -> list[str]:
    """The image files under `root` (recursively, by suffix), as sorted POSIX paths relative to it: their ids."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of photos")
    ids = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not ids:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) under it")
    return ids


def load_photo_folder(root: str | Path, ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """{relative path: HxWx3 uint8 RGB} for every image under `root` (photo_folder_ids), or for the given ids only."""
    root = Path(root)
    out = {}
    for photo_id in photo_folder_ids(root) if ids is None else ids:
        try:
            with Image.open(root / photo_id) as im:
                out[photo_id] = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise DataError(f"{root / photo_id}: not a readable image ({e})") from None
    return out


def holdout_split(ids: list[str], every: int) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids): every `every`-th id of the sorted list (the first included) is held out."""
    ids = sorted(ids)
    return [p for i, p in enumerate(ids) if i % every], [p for i, p in enumerate(ids) if i % every == 0]
