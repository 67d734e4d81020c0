"""The SR models: one entry each, and everything that lists them derives from it.

An entry says which class implements the model (imported only when it is loaded: this module needs no
torch, the config check and the CLI read it), whether 3DSR can drive it step by step (a diffusion
model), which params.yaml block holds its options, and where its weights come from: the package (the
trained offline prior), a rule of the workflow (a conversion, a retrained prior) or a file the user
names. `load.py` builds models from it, the rules ask it for each model's weights, the config check
for what is missing, and tests/test_sr_registry.py checks that the schema accepts exactly these names.

Adding a model: its module (a `SRModel` or `DiffusionSR` with `from_pretrained`), one entry here, and its
block in params.yaml and the schema if it has options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import lookup
from .names import REALBASICVSR_WEIGHTS_HINT, STABLESR_FILES, STABLESR_WEIGHTS_HINT


@dataclass(frozen=True)
class SRModelSpec:
    name: str  # as params.yaml names it (sr.model, methods' suffix, supergaussian.upsampler)
    implementation: str  # "<module of threedsr.sr>:<class>"
    diffusion: bool = False  # 3dsr can drive it step by step (a DiffusionSR)
    options: tuple[str, ...] = ()  # the keys from_pretrained takes besides path, from sr and sr.<block> (the block's win)
    video: bool = False  # upsamples a whole frame sequence: SuperGaussian's upsampler only
    made_at: str | None = None  # the weights a rule of the workflow writes (trained or converted) ...
    made_by: str | None = None  # ... and that rule
    user_path: str | None = None  # a key of its block naming the user's weights (replaces made_at and shipped when set)
    user_dir: bool = False  # ... a folder (else a file)
    shipped: str | None = None  # weights the package ships (relative to this folder), used when the user names none
    source_dir: str | None = None  # a key of its block naming the folder the converting rule reads ...
    source_files: tuple[str, ...] = ()  # ... and the files it must hold
    hint: str = ""  # where to get the weights, for messages

    @property
    def block(self) -> str:
        """Its options block, sr.<block>: its name with '_' for '-' (sd-x4-upscaler: sr.sd_x4_upscaler)."""
        return self.name.replace("-", "_")

    def weights(self, sr: dict) -> str | None:
        """The file or folder of weights the jobs using this model depend on, given params.yaml's sr block."""
        user = sr.get(self.block, {}).get(self.user_path) if self.user_path else None
        return user or self.shipped_path() or self.made_at

    def shipped_path(self) -> str | None:
        """The shipped weights' path, relative to the working directory when under it (so the workflow's files name
        them the same in every clone), else absolute (an installed package)."""
        if not self.shipped:
            return None
        path = (Path(__file__).parent / self.shipped).resolve()
        try:
            return path.relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return str(path)

    def missing_weights(self, sr: dict) -> str | None:
        """Why this model's weights cannot be had (the message names the key and where to get them), or None."""
        block = sr.get(self.block, {})
        if self.source_dir:
            key, folder = f"sr.{self.block}.{self.source_dir}", block.get(self.source_dir)
            if not folder:
                return f"{key} is null, but the methods use {self.name}: {self.hint}"
            missing = [f for f in self.source_files if not (Path(folder) / f).is_file()]
            if missing:
                return f"{key} ({folder}) has no {' or '.join(missing)}: {self.hint}"
        if self.user_path:
            key, path = f"sr.{self.block}.{self.user_path}", block.get(self.user_path)
            if not path and not (self.made_at or self.shipped):
                return f"{self.name} needs its weights, and {key} is null: {self.hint}"
            if path and path != self.made_at and not (Path(path).is_dir() if self.user_dir else Path(path).is_file()):
                return f"{key} ({path}) is not a {'folder' if self.user_dir else 'file'}"
        return None


SPECS = (
    SRModelSpec(
        "tiny",
        "tiny:TinySR",
        diffusion=True,
        options=("tile", "tile_overlap"),
        shipped="shipped/tiny",
        made_at="results/models/tiny",  # sr.tiny.path naming it: train_prior retrains the prior there
        made_by="train_prior",
        user_path="path",
        user_dir=True,
    ),
    SRModelSpec("sd-x4-upscaler", "sd_upscaler:SDX4Upscaler", diffusion=True, options=("tile", "tile_overlap", "noise_level", "prompt")),
    SRModelSpec(
        "stablesr-turbo",
        "stablesr:StableSRTurbo",
        diffusion=True,
        options=("cfw_weight", "tile", "tile_overlap", "colorfix"),
        made_at="results/models/stablesr-turbo",
        made_by="convert_stablesr",
        source_dir="weights_dir",
        source_files=STABLESR_FILES,
        hint=STABLESR_WEIGHTS_HINT,
    ),
    SRModelSpec(
        "realesrgan",
        "realesrgan:RealESRGAN",
        options=("tile", "tile_overlap"),
        made_at="results/models/realesrgan-x4plus.safetensors",
        made_by="convert_realesrgan",
        user_path="path",
    ),
    SRModelSpec(
        "realbasicvsr", "realbasicvsr:RealBasicVSR", options=("max_seq_len",), video=True, user_path="path", hint=REALBASICVSR_WEIGHTS_HINT
    ),
)
REGISTRY = {s.name: s for s in SPECS}

IMAGE_MODELS = tuple(s.name for s in SPECS if not s.video)  # sr.model, and isr-/sr2d-<model>
DIFFUSION_MODELS = tuple(s.name for s in SPECS if s.diffusion)  # 3dsr and 3dsr-<model>
VIDEO_MODELS = tuple(s.name for s in SPECS if s.video)  # supergaussian.upsampler only
UPSAMPLERS = IMAGE_MODELS + VIDEO_MODELS  # supergaussian.upsampler


def spec(name: str) -> SRModelSpec:
    return lookup(REGISTRY, name, "SR model")
