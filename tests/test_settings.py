"""params.yaml, its schema and the typed settings cannot drift: the same keys, the same defaults."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from threedsr import config, settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "params.schema.yaml").read_text())


def _resolve(node: dict) -> dict:
    return SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def _compare(node: dict, cls, where: str, skip=()) -> None:
    """The schema's keys at `node` are `cls`'s fields (both ways), every one required; blocks recursively."""
    node = _resolve(node)
    keys = set(node.get("properties", {})) - set(skip)
    fields = {f.name for f in dataclasses.fields(cls)} - set(skip)
    assert keys == fields, (
        f"{where}: schema keys without a field {sorted(keys - fields)}, fields without a schema key {sorted(fields - keys)}"
    )
    assert set(node.get("required", [])) - set(skip) == keys, f"{where}: every key is required in params.yaml"
    hints = typing.get_type_hints(cls)
    for name in keys:
        if dataclasses.is_dataclass(hints[name]):
            _compare(node["properties"][name], hints[name], f"{where}.{name}")


def test_every_schema_key_is_a_settings_field_and_back():
    _compare(SCHEMA, settings.Params, "params", skip=("datasets",))
    datasets = SCHEMA["properties"]["datasets"]
    _compare(datasets["properties"]["synthetic"], settings.Synthetic, "datasets.synthetic")
    for name in ("llff", "mipnerf360"):
        _compare(datasets["properties"][name], settings.LocalDataset, f"datasets.{name}")
    _compare(datasets["additionalProperties"], settings.LocalDataset, "datasets.<any name>")


def test_the_defaults_are_params_yaml():
    """One default per key: the dataclasses', equal to params.yaml's (the file users edit, commented)."""
    assert settings.Params.from_dict(config.load(REPO / "params.yaml")) == settings.Params()


@pytest.mark.parametrize("preset", sorted((REPO / "workflow" / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_are_typed_settings_and_back(preset):
    merged = config.load(REPO / "params.yaml", preset)
    assert settings.Params.from_dict(merged).to_dict() == merged


def test_an_unknown_key_is_refused_by_name():
    with pytest.raises(TypeError, match=r"GS: unknown keys \['itertions'\]"):
        settings.GS.from_dict({"itertions": 3})


def test_the_params_reference_is_current():
    """docs/params.md is generated (`threedsr params-reference`) from the schema's descriptions and params.yaml."""
    from threedsr.reporting.params_reference import params_reference

    text = params_reference(REPO)
    assert (REPO / "docs" / "params.md").read_text() == text, "docs/params.md is stale: run `threedsr params-reference`"
    for key in ("gs.filter_3d", "poses.undistort", "metrics.fid_inception", "isr.iterations", "sr.stablesr_turbo.cfw_weight"):
        assert f"| `{key}` |" in text


def test_a_command_gets_typed_blocks_and_only_the_keys_its_rule_passes():
    """settings.Given, the one parse of `--params`: whole blocks are the block classes, a block passed in part
    (dotted keys) has those fields only (its methods read them), and reading a key the rule did not pass is an error
    naming it: never a default, which would let a job miss a rerun when that key changes."""
    from threedsr.errors import ConfigError
    from threedsr.sr.sampler_config import SamplerConfig

    given = settings.Given(
        {
            "gs": settings.GS().to_dict(),
            "threedsr": {"steps": 3, "update": "ddpm_posterior", "eta": 0.0, "init": "noise", "seed": 7},
            "sr": {"tiny": settings.Tiny(iterations=5).to_dict()},
            "datasets": {"synthetic": {"width": 64, "height": 48}},
            "methods": ["lr3dgs", "3dsr"],
            "device": "cpu",
        }
    )
    assert given.gs == settings.GS() and given.device == "cpu" and list(given.methods) == ["lr3dgs", "3dsr"]
    assert given.threedsr.sampler() == SamplerConfig(steps=3, update="ddpm_posterior", init="noise", seed=7)
    assert given.sr.tiny == settings.Tiny(iterations=5) and given.datasets["synthetic"].width == 64
    for read, key in [
        (lambda: given.threedsr.lambda_lr, "threedsr.lambda_lr"),
        (lambda: given.sr.batch_size, "sr.batch_size"),
        (lambda: given.datasets["synthetic"].seed, "datasets.synthetic.seed"),
        (lambda: given.video, "video"),
        (lambda: given.datasets["synthetic"].to_dict(), "datasets.synthetic.num_points"),
    ]:
        with pytest.raises(ConfigError, match=f"--params has no '{key}'"):
            read()


def test_the_cli_reads_params_only_through_the_typed_blocks():
    """No command indexes the raw JSON: `a.params.<block>.<key>` (or the registry helpers, on the keys declared)."""
    import re

    source = "".join(p.read_text() for p in (REPO / "workflow" / "threedsr" / "cli").glob("*.py"))
    assert "def load_sr" in source
    assert not re.findall(r"\ba\.params\[|(?<![.\w])(?:p|params)\[", source)
