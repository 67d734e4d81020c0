"""Natural photographs that ship inside installed packages: the project's offline image source.

Synthetic scenes are textured only with TEXTURE_PHOTOS; the offline SR prior trains on the others
(PRIOR_PHOTOS), and additionally skips any photo a scene under evaluation lists in `synthetic.json`.
"""

from __future__ import annotations

import importlib.resources

import numpy as np
from PIL import Image

from ..errors import DataError

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
