"""params.yaml: schema validation, the checks a schema cannot express, and where each scene comes from."""

from __future__ import annotations

from pathlib import Path

import yaml

from .datasets import OFFICIAL_SCENES, local_scene
from .errors import ConfigError
from .sr.names import DIFFUSION_MODELS, REALBASICVSR_WEIGHTS_HINT, STABLESR_FILES, STABLESR_WEIGHTS_HINT

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "params.schema.yaml"


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


def validate(config: dict) -> None:
    """Schema errors (unknown key, wrong type, out of range) and cross-key errors, each naming the key."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("params invalid:\n" + "\n".join(f"  {_key(e.absolute_path)}: {e.message}" for e in errors))
    check(config)


def split_method(method: str) -> tuple[str, str | None]:
    """A method name's base and the SR model it names: 'sr2d-realesrgan' -> ('sr2d', 'realesrgan'), 'isr' -> ('isr', None)."""
    base, _, model = method.partition("-")
    return base, model or None


def method_sr_model(config: dict, method: str) -> str:
    """The SR model an isr/sr2d/3dsr method runs: the one after the hyphen (sr2d-realesrgan), else sr.model."""
    return split_method(method)[1] or config["sr"]["model"]


def sr_models_used(config: dict) -> set[str]:
    """The SR models the configured methods run (a method's own model, else sr.model; SuperGaussian's upsampler)."""
    used = set()
    for m in config["methods"]:
        base = split_method(m)[0]
        if base in ("isr", "sr2d", "3dsr"):
            used.add(method_sr_model(config, m))
        elif base == "supergaussian":
            used.add(config["supergaussian"]["upsampler"])
    return used


def check(config: dict) -> None:
    """What the schema cannot say: factor relations and that every scene can be found or downloaded."""
    lr, hr = config["resolution"]["lr_factor"], config["resolution"]["hr_factor"]
    if lr <= hr or lr % hr:
        raise ConfigError(f"resolution.lr_factor ({lr}) must be a multiple of resolution.hr_factor ({hr}) and larger than it")
    sr_methods = [m for m in config["methods"] if split_method(m)[0] in ("isr", "sr2d", "3dsr", "supergaussian")]
    if sr_methods and lr // hr != 4:
        raise ConfigError(
            f"methods: {', '.join(sr_methods)} use x4 SR models, but resolution.lr_factor / resolution.hr_factor = {lr}/{hr} = {lr // hr}"
        )
    used = sr_models_used(config)
    if "realbasicvsr" in used and not config["sr"]["realbasicvsr"]["path"]:
        raise ConfigError(f"supergaussian.upsampler: realbasicvsr needs its weights, and sr.realbasicvsr.path is null: {REALBASICVSR_WEIGHTS_HINT}")
    if "stablesr-turbo" in used:
        folder = config["sr"]["stablesr_turbo"]["weights_dir"]
        if not folder:
            raise ConfigError(f"sr.stablesr_turbo.weights_dir is null, but the methods use stablesr-turbo: {STABLESR_WEIGHTS_HINT}")
        missing = [f for f in STABLESR_FILES if not (Path(folder) / f).is_file()]
        if missing:
            raise ConfigError(f"sr.stablesr_turbo.weights_dir ({folder}) has no {' or '.join(missing)}: {STABLESR_WEIGHTS_HINT}")
    for m in config["methods"]:
        base, model = split_method(m)
        if base == "3dsr" and method_sr_model(config, m) not in DIFFUSION_MODELS:
            where = f"the model after the hyphen ({model})" if model else f"sr.model ({config['sr']['model']})"
            raise ConfigError(f"methods: {m} needs a diffusion SR model ({', '.join(DIFFUSION_MODELS)}), but {where} is not one")
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


def scenes(config: dict) -> list[tuple[str, str]]:
    """(dataset, scene) for every configured scene."""
    return [(d, s) for d, spec in config["datasets"].items() for s in spec["scenes"]]
