"""One registry of SR models: the schema, the CLI and the rules accept exactly its names, and its entries are true."""

import importlib
from pathlib import Path

import pytest
import yaml

from threedsr import config
from threedsr.methods import registry as method_registry
from threedsr.sr import registry
from threedsr.sr.base import DiffusionSR, SRModel

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "params.schema.yaml").read_text())["properties"]


def test_the_schema_accepts_exactly_the_registered_models_and_methods():
    assert SCHEMA["sr"]["properties"]["model"]["enum"] == list(registry.IMAGE_MODELS)
    assert sorted(SCHEMA["supergaussian"]["properties"]["upsampler"]["enum"]) == sorted(registry.UPSAMPLERS)
    # the methods' names are the registry's alone: the schema file lists none, config.schema() adds them
    assert "enum" not in SCHEMA["methods"]["items"]
    assert config.schema()["properties"]["methods"]["items"]["enum"] == method_registry.method_names()
    # every model has its block in sr, and every block of sr belongs to a model
    blocks = {k for k, v in SCHEMA["sr"]["properties"].items() if v.get("type") == "object"}
    assert blocks == {s.block for s in registry.SPECS}


@pytest.mark.parametrize("spec", registry.SPECS, ids=lambda s: s.name)
def test_each_entry_names_its_class_truly(spec):
    module, cls_name = spec.implementation.split(":")
    cls = getattr(importlib.import_module(f"threedsr.sr.{module}"), cls_name)
    assert cls.is_diffusion == spec.diffusion == issubclass(cls, DiffusionSR)
    assert hasattr(cls, "super_resolve_video") == spec.video and issubclass(cls, SRModel) != spec.video  # video models see sequences
    keys = set(SCHEMA["sr"]["properties"][spec.block]["properties"]) | set(SCHEMA["sr"]["properties"])
    assert set(spec.options) <= keys, spec.options


def test_weights_come_from_the_package_the_rule_or_the_users_file(tmp_path, monkeypatch):
    sr = {"tiny": {"path": None}, "realesrgan": {"path": None}, "realbasicvsr": {"path": None}, "stablesr_turbo": {"weights_dir": None}}
    # the shipped prior: relative to a checkout it runs in (dvc.yaml names it so in every clone), else absolute
    monkeypatch.chdir(Path(registry.__file__).parents[3])
    assert registry.spec("tiny").weights(sr) == "workflow/threedsr/sr/shipped/tiny" and registry.spec("tiny").missing_weights(sr) is None
    monkeypatch.chdir(tmp_path)
    assert registry.spec("tiny").weights(sr) == str(Path(registry.__file__).parent.resolve() / "shipped" / "tiny")
    # retrained by train_prior (its output need not exist yet), or the user's folder (which must)
    sr["tiny"]["path"] = "results/models/tiny"
    assert registry.spec("tiny").weights(sr) == "results/models/tiny" and registry.spec("tiny").missing_weights(sr) is None
    sr["tiny"]["path"] = "my-prior"
    assert registry.spec("tiny").missing_weights(sr) == "sr.tiny.path (my-prior) is not a folder"
    (tmp_path / "my-prior").mkdir()
    assert registry.spec("tiny").missing_weights(sr) is None
    assert registry.spec("realesrgan").weights(sr) == "results/models/realesrgan-x4plus.safetensors"
    assert registry.spec("sd-x4-upscaler").weights(sr) is None
    assert "sr.realbasicvsr.path is null" in registry.spec("realbasicvsr").missing_weights(sr)
    assert "sr.stablesr_turbo.weights_dir is null" in registry.spec("stablesr-turbo").missing_weights(sr)
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"")
    sr["realesrgan"]["path"] = str(mine)
    assert registry.spec("realesrgan").weights(sr) == str(mine) and registry.spec("realesrgan").missing_weights(sr) is None
    sr["realesrgan"]["path"] = str(tmp_path / "typo.safetensors")
    assert registry.spec("realesrgan").missing_weights(sr) == f"sr.realesrgan.path ({tmp_path / 'typo.safetensors'}) is not a file"
    with pytest.raises(ValueError, match="unknown SR model 'esrgan'; known: tiny, sd-x4-upscaler"):
        registry.spec("esrgan")
