"""params.yaml: schema validation, the checks a schema cannot express, and where each scene comes from."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml

from .data.datasets import OFFICIAL_SCENES, local_scene
from .errors import ConfigError
from .methods import registry as methods
from .sr import registry

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "params.schema.yaml"

# Names that become path components (results/<stage>/<dataset>/<scene>): plain folder names only, never
# '.', '..', hidden, a leading '-' (read as an option) or a separator. The schema's patterns say the same.
DATASET_NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
SCENE_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
NAME_RULE = "a plain folder name: letters, digits, '_', '-' (and '.' in scenes), not starting with '.' or '-'"
# metrics.* keys naming a weight file (null: the torch hub cache); a named file must exist
METRIC_FILE_KEYS = ("lpips_backbone", "fid_inception", "niqe_model")


def merge(base: dict, override: dict) -> dict:
    """Recursive dict merge, lists replaced: the way Snakemake merges several --configfile files."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(*paths: str | Path) -> dict:
    config: dict = {}
    for p in paths:
        try:
            data = yaml.safe_load(Path(p).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{p}: cannot read ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        config = merge(config, data)
    return config


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _message(error) -> str:
    """One line per schema error: the key, then what is wrong (not the schema, which jsonschema would print)."""
    where = list(error.absolute_path)
    if error.validator == "pattern" or (error.validator == "propertyNames" and where[:1] == ["datasets"]):
        name = error.instance if error.validator == "pattern" else error.cause or error.instance
        return f"{_key(where)}: {name!r} is not {NAME_RULE}"
    return f"{_key(where)}: {error.message}"


def schema() -> dict:
    """params.schema.yaml, with the names `methods` accepts taken from the method registry (one list, in one place)."""
    return methods.with_method_names(yaml.safe_load(SCHEMA.read_text()))


def _unschematic(node, path=()) -> list[str]:
    """What a schema lets through and no step can use: keys that are not strings (YAML reads `5:` as a number) and
    numbers that are not finite (`.nan`, `.inf`), each with its key."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                out.append(f"{_key(path)}: the key {k!r} is not a string (YAML reads it as {type(k).__name__}): quote it ('{k}')")
            out += _unschematic(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _unschematic(v, (*path, i))
    elif isinstance(node, float) and not math.isfinite(node):
        out.append(f"{_key(path)}: {node} is not a finite number")
    return out


def validate(config: dict) -> None:
    """Schema errors (unknown key, wrong type, out of range) and cross-key errors, each naming the key."""
    import jsonschema

    if problems := _unschematic(config):
        raise ConfigError("params invalid:\n" + "\n".join(f"  {p}" for p in problems))
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("params invalid:\n" + "\n".join(f"  {_message(e)}" for e in errors))
    check(config)


def check_device(config: dict, visible_gpus: int) -> None:
    """`device: cuda` where no GPU is visible, refused before any job. Called where the jobs run on this machine: on a
    cluster the nodes have the GPUs, not the host that submits."""
    if config["device"] == "cuda" and visible_gpus == 0:
        raise ConfigError(
            "device: cuda, but no CUDA device is visible on this machine (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES "
            "hides them): use device: auto (CUDA where present) or cpu"
        )


def check_writable(folder: Path) -> None:
    """Every job writes under `folder` (results/): refused in one line when this user cannot create a file there (a
    read-only mount, another user's folder), before any job."""
    import tempfile

    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=existing)
    except OSError as e:
        raise ConfigError(f"{existing}: cannot write there ({e.strerror}); every job writes under {folder}: make it writable") from None
    os.close(fd)
    os.unlink(probe)


def method_sr_model(config: dict, method: str) -> str | None:
    """The SR model a method runs: an isr/sr2d/3dsr method's after the hyphen (sr2d-realesrgan), else sr.model;
    SuperGaussian's upsampler; None for a method without one."""
    return methods.of(method).sr_model(config, method)


def sr_models_used(config: dict) -> set[str]:
    """The SR models the configured methods run."""
    return {model for m in config["methods"] if (model := method_sr_model(config, m))}


def check(config: dict) -> None:
    """What the schema cannot say: relations between keys, and that every scene can be found or downloaded."""
    check_names(config)
    if not scenes(config):
        raise ConfigError(
            f"datasets: no scenes to run: every dataset's scenes list is empty ({', '.join(f'datasets.{d}.scenes' for d in config['datasets'])})"
        )
    lr, hr = config["resolution"]["lr_factor"], config["resolution"]["hr_factor"]
    if lr <= hr or lr % hr:
        raise ConfigError(f"resolution.lr_factor ({lr}) must be a multiple of resolution.hr_factor ({hr}) and larger than it")
    sr_methods = [m for m in config["methods"] if method_sr_model(config, m)]
    if sr_methods and lr // hr != 4:
        raise ConfigError(
            f"methods: {', '.join(sr_methods)} use x4 SR models, but resolution.lr_factor / resolution.hr_factor = {lr}/{hr} = {lr // hr}"
        )
    d = config["gs"]["densify"]
    if d["start"] > d["stop"]:
        raise ConfigError(f"gs.densify.start ({d['start']}) is after gs.densify.stop ({d['stop']}): densification would never run")
    for block in ("sr", "sr.stablesr_turbo"):
        tiles = config["sr"] if block == "sr" else config["sr"]["stablesr_turbo"]
        if tiles["tile_overlap"] >= tiles["tile"]:
            raise ConfigError(f"{block}.tile_overlap ({tiles['tile_overlap']}) must be smaller than {block}.tile ({tiles['tile']})")
    # weights the used models need, and files the user names: missing ones are an error now, not a failed job later
    for model in sorted(sr_models_used(config)):
        if problem := registry.spec(model).missing_weights(config["sr"]):
            raise ConfigError(problem)
    for key in METRIC_FILE_KEYS:
        if (path := config["metrics"][key]) and not Path(path).is_file():
            raise ConfigError(f"metrics.{key} ({path}) is not a file")
    for m in config["methods"]:
        spec, model = methods.of(m), methods.split(m)[1]
        if spec.sr_models and (used := method_sr_model(config, m)) not in spec.sr_models:
            where = f"the model after the hyphen ({model})" if model else f"sr.model ({used})"
            kind = "a diffusion SR model" if set(spec.sr_models) <= set(registry.DIFFUSION_MODELS) else "an SR model"
            raise ConfigError(f"methods: {m} needs {kind} ({', '.join(spec.sr_models)}), but {where} is not one")
    for dataset, spec in config["datasets"].items():
        if dataset == "synthetic":
            continue
        for scene in spec["scenes"]:
            if local_scene(spec["root"], scene) is None and scene not in OFFICIAL_SCENES.get(dataset, {}):
                known = f" (official scenes: {', '.join(OFFICIAL_SCENES[dataset])})" if dataset in OFFICIAL_SCENES else ""
                raise ConfigError(
                    f"datasets.{dataset}.scenes: {scene!r} has no folder with images under datasets.{dataset}.root "
                    f"({spec['root']}) and cannot be downloaded{known}"
                )


def check_names(config: dict) -> None:
    """Dataset and scene names are whole plain names (the schema's `$` also matches before a final newline), and no two
    (dataset, scene) pairs flatten to the same file name (results/figures/crops_<dataset>_<scene>.png, DVC's
    <rule>-<dataset>-<scene> stages)."""
    for dataset, spec in config["datasets"].items():
        if not re.fullmatch(DATASET_NAME, dataset):
            raise ConfigError(f"datasets: {dataset!r} is not {NAME_RULE}")
        for i, scene in enumerate(spec["scenes"]):
            if not re.fullmatch(SCENE_NAME, scene):
                raise ConfigError(f"datasets.{dataset}.scenes.{i}: {scene!r} is not {NAME_RULE}")
    for sep in ("_", "-"):
        seen: dict[str, str] = {}
        for d, s in scenes(config):
            if (flat := f"{d}{sep}{s}") in seen:
                raise ConfigError(
                    f"datasets: {seen[flat]} and {d}/{s} would share the file names of {flat!r} (figures, DVC stages): "
                    "rename one of the datasets or scenes"
                )
            seen[flat] = f"{d}/{s}"


def why_download(config: dict, dataset: str, scene: str) -> str | None:
    """Why a scene of an official dataset is downloaded rather than read from datasets.<name>.root (None: it is not)."""
    root = Path(config["datasets"][dataset]["root"])
    if local_scene(root, scene) is not None:
        return None
    if not root.is_dir():
        return f"datasets.{dataset}.root ({root}) does not exist"
    if not (root / scene).is_dir():
        return f"datasets.{dataset}.root ({root}) has no folder {scene}"
    return f"{root / scene} has no images/ or images_N/ folder"


def downloads(config: dict) -> dict[str, list[str]]:
    """Archive file name -> why it is needed ("<reason>: <dataset>/<scene> is downloaded"), for every scene not found locally."""
    out: dict[str, list[str]] = {}
    for dataset, scene in scenes(config):
        if dataset in OFFICIAL_SCENES and (reason := why_download(config, dataset, scene)):
            out.setdefault(OFFICIAL_SCENES[dataset][scene][0], []).append(f"{reason}: {dataset}/{scene} is downloaded")
    return out


def scenes(config: dict) -> list[tuple[str, str]]:
    """(dataset, scene) for every configured scene."""
    return [(d, s) for d, spec in config["datasets"].items() for s in spec["scenes"]]
