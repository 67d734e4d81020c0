"""The cache of trained `tiny` priors: keyed by what decides the weights, checked before use, never in the way."""

import json
import logging

import numpy as np

from threedsr.sr import prior_cache
from threedsr.sr.train_tiny import TinyTrainConfig

CFG = TinyTrainConfig(iterations=2, batch_size=2, patch=8, block_out_channels=(16, 32), warmup=1)


def _photos(seed=0):
    return {"a": np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)}


def _prior(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "weights.safetensors").write_bytes(b"\x00" * 100)
    return folder


def test_the_key_follows_config_photos_and_code(monkeypatch):
    k = prior_cache.key(CFG, _photos())
    assert k == prior_cache.key(CFG, _photos())
    assert k != prior_cache.key(TinyTrainConfig(**{**CFG.__dict__, "iterations": 3}), _photos())
    assert k != prior_cache.key(CFG, _photos(seed=1))
    monkeypatch.setattr(prior_cache, "_version", lambda p: "other" if p == "torch" else "x")
    assert k != prior_cache.key(CFG, _photos())


def test_stored_prior_is_copied_back_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("THREEDSR_PRIOR_CACHE", str(tmp_path / "cache"))
    src = _prior(tmp_path / "trained")
    assert not prior_cache.fetch("k1", tmp_path / "out")
    prior_cache.store("k1", src)
    assert prior_cache.fetch("k1", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "weights.safetensors"]
    assert (tmp_path / "out" / "weights.safetensors").read_bytes() == (src / "weights.safetensors").read_bytes()


def test_an_entry_that_does_not_match_its_fingerprint_is_removed_and_retrained(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("THREEDSR_PRIOR_CACHE", str(tmp_path / "cache"))
    prior_cache.store("k1", _prior(tmp_path / "trained"))
    entry = tmp_path / "cache" / "tiny" / "k1"
    (entry / "weights.safetensors").write_bytes(b"\x00" * 50)  # truncated
    with caplog.at_level(logging.WARNING):
        assert not prior_cache.fetch("k1", tmp_path / "out")
    assert "does not match its fingerprint" in caplog.text and not entry.exists() and not (tmp_path / "out").exists()
    prior_cache.store("k2", _prior(tmp_path / "trained2"))
    (tmp_path / "cache" / "tiny" / "k2" / prior_cache.FINGERPRINT).write_text("{not json")
    assert not prior_cache.fetch("k2", tmp_path / "out")


def test_off_and_unwritable_caches_cost_nothing_but_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("THREEDSR_PRIOR_CACHE", "off")
    prior_cache.store("k1", _prior(tmp_path / "trained"))
    assert not prior_cache.fetch("k1", tmp_path / "out")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("THREEDSR_PRIOR_CACHE", str(blocker))  # a file where the folder would be
    with caplog.at_level(logging.WARNING):
        prior_cache.store("k1", tmp_path / "trained")
    assert "could not keep the trained prior" in caplog.text


def test_train_prior_trains_once_then_reuses(tmp_path, monkeypatch, caplog):
    from PIL import Image

    from threedsr import settings
    from threedsr.cli import main
    from threedsr.data.photos import load_photo

    monkeypatch.setenv("THREEDSR_PRIOR_CACHE", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    (photos / "set").mkdir(parents=True)
    for name in ("camera", "coins", "rocket"):  # the first (sorted) is held out, as every 16th of a real folder
        Image.fromarray(load_photo(f"skimage:{name}")).save(photos / "set" / f"{name}.png")
    tiny = settings.Tiny(iterations=2, batch_size=2, patch=8, block_out_channels=(16, 32), photos=str(photos)).to_dict()
    params = json.dumps({"sr": {"tiny": tiny}, "threedsr": {"steps": 2}})
    args = ["--photos", str(photos), "--params", params, "--threads", "1"]
    assert main(["train-prior", "--out", str(tmp_path / "a"), *args]) == 0
    assert json.loads((tmp_path / "a/tiny_sr.json").read_text())["training"]["photos"] == ["set/coins.png", "set/rocket.png"]
    with caplog.at_level(logging.INFO):
        assert main(["train-prior", "--out", str(tmp_path / "b"), *args]) == 0
    assert "trained earlier with the same config" in caplog.text
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
