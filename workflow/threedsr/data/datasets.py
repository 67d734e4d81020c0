"""Where the official datasets come from, and where a configured scene's files are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Archive:
    filename: str
    url: str
    dataset: str = ""  # the params.yaml dataset whose scenes it holds
    gdrive: bool = False  # Google Drive: needs the large-file confirmation step
    sha256: str | None = None  # None: the first download prints it, so it can be pinned here
    size: int | None = None


ARCHIVES = {
    a.filename: a
    for a in [
        # LLFF, from the NeRF authors' shared drive (folder 128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1)
        Archive(
            "nerf_llff_data.zip", "https://drive.google.com/uc?export=download&id=16VnMcF1KJYxN9QId6TClMsZRahHNMW5g", "llff", gdrive=True
        ),
        # MipNeRF360, from the project's storage bucket
        Archive("360_v2.zip", "https://storage.googleapis.com/gresearch/refraw360/360_v2.zip", "mipnerf360"),
        Archive("360_extra_scenes.zip", "https://storage.googleapis.com/gresearch/refraw360/360_extra_scenes.zip", "mipnerf360"),
    ]
}

# dataset -> scene -> (archive file name, folder of the scene inside the archive)
OFFICIAL_SCENES: dict[str, dict[str, tuple[str, str]]] = {
    "llff": {
        s: ("nerf_llff_data.zip", f"nerf_llff_data/{s}/")
        for s in ("fern", "flower", "fortress", "horns", "leaves", "orchids", "room", "trex")
    },
    "mipnerf360": {
        **{s: ("360_v2.zip", f"{s}/") for s in ("bicycle", "bonsai", "counter", "garden", "kitchen", "room", "stump")},
        **{s: ("360_extra_scenes.zip", f"{s}/") for s in ("flowers", "treehill")},
    },
}

DOWNLOADABLE = tuple(OFFICIAL_SCENES)


def local_scene(root: str | Path, scene: str) -> Path | None:
    """The user's copy of a scene under `root`, if it has one (a folder with images)."""
    p = Path(root) / scene
    if p.is_dir() and any(c.is_dir() and c.name.startswith("images") for c in p.iterdir()):
        return p
    return None
