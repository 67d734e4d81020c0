import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from threedsr import config
from threedsr.errors import ConfigError
from threedsr.sr.names import STABLESR_FILES

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "workflow" / "presets").glob("*.yaml"))


def test_default_params_are_valid():
    config.validate(config.load(REPO / "params.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_merge_over_params(preset, tmp_path):
    cfg = config.load(REPO / "params.yaml", preset)
    if cfg["sr"]["model"] == "stablesr-turbo":  # its checkpoints are the user's download: refused until they are there
        with pytest.raises(ConfigError, match=r"sr\.stablesr_turbo\.weights_dir.*stablesr_turbo\.ckpt"):
            config.validate(cfg)
        for name in STABLESR_FILES:
            (tmp_path / name).write_bytes(b"")
        cfg["sr"]["stablesr_turbo"]["weights_dir"] = str(tmp_path)
    config.validate(cfg)
    assert cfg["datasets"]["synthetic"]["width"] == 384  # untouched keys survive the merge


@pytest.mark.parametrize("dataset", ["llff", "mipnerf360"])
def test_paper_presets_use_paper_settings(dataset):
    for name, factors, iters in ((f"paper-{dataset}.yaml", (8, 2), 5000), (f"paper-{dataset}-lr16-hr4.yaml", (16, 4), 1000)):
        cfg = config.load(REPO / "params.yaml", REPO / "workflow" / "presets" / name)
        assert (cfg["resolution"]["lr_factor"], cfg["resolution"]["hr_factor"], cfg["test_every"]) == (*factors, 8)
        assert cfg["sr"]["model"] == "stablesr-turbo" and cfg["sr"]["stablesr_turbo"]["cfw_weight"] == 0.5
        t = cfg["threedsr"]
        assert (t["steps"], t["iters_per_step"], t["lambda_lr"], t["delta_dssim"], t["update"]) == (4, iters, 1.0, 0.2, "ddpm_posterior")
        # the official code's 3D model: Mip-Splatting (3D smoothing filter, 2D Mip filter with kernel 0.1)
        gs = cfg["gs"]
        assert (gs["filter_3d"], gs["filter_3d_variance"], gs["rasterize_mode"], gs["eps2d"]) == (True, 0.2, "antialiased", 0.1)
        assert set(cfg["datasets"][dataset]["scenes"]) == set(config.OFFICIAL_SCENES[dataset])


def _with(tmp_path, override: dict) -> dict:
    p = tmp_path / "override.yaml"
    p.write_text(yaml.safe_dump(override))
    return config.load(REPO / "params.yaml", p)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"resolution": {"lr_factr": 8}}, "lr_factr"),
        ({"resolution": {"lr_factor": "eight"}}, "resolution.lr_factor"),
        ({"test_every": 1}, "test_every"),
        ({"datasets": {"synthetic": {"scenes": ["garden"]}}}, "datasets.synthetic.scenes.0"),
        ({"datasets": {"llff": {"root": 3}}}, "datasets.llff.root"),
        ({"resolution": {"lr_factor": 6, "hr_factor": 4}}, "resolution.lr_factor"),
        ({"datasets": {"mine": {"root": "/nonexistent", "scenes": ["a"]}}}, "datasets.mine.scenes"),
        ({"datasets": {"llff": {"root": "/nonexistent", "scenes": ["not_an_llff_scene"]}}}, "datasets.llff.scenes"),
        ({"methods": ["lr3dgs", "sr2d-esrgan"]}, "methods.1"),
        ({"sr": {"model": "stablesr"}}, "sr.model"),
        ({"sr": {"tiny": {"patch": 4}}}, "sr.tiny.patch"),
        ({"threedsr": {"update": "euler"}}, "threedsr.update"),
        ({"threedsr": {"eta": 2}}, "threedsr.eta"),
        ({"resolution": {"lr_factor": 4, "hr_factor": 2}}, "methods"),  # x4 SR models, x2 asked
        ({"threedsr": {"colorfix": "histogram"}}, "threedsr.colorfix"),
        ({"threedsr": {"iters_per_step": 0}}, "threedsr.iters_per_step"),
        ({"threedsr": {"freeze_means": "yes"}}, "threedsr.freeze_means"),
        ({"sr": {"model": "realesrgan"}}, "methods: 3dsr needs a diffusion"),  # 3dsr in the default methods
        ({"methods": ["3dsr-realesrgan"]}, "methods.0"),
        ({"sr": {"model": "stablesr-turbo"}}, "sr.stablesr_turbo.weights_dir"),  # null: where to get the files
        ({"sr": {"model": "stablesr-turbo", "stablesr_turbo": {"weights_dir": "/nonexistent"}}}, "sr.stablesr_turbo.weights_dir"),
        ({"methods": ["sr2d-stablesr-turbo"]}, "sr.stablesr_turbo.weights_dir"),
        ({"sr": {"stablesr_turbo": {"tile": 60}}}, "sr.stablesr_turbo.tile"),
        ({"sr": {"stablesr_turbo": {"cfw_weight": 2}}}, "sr.stablesr_turbo.cfw_weight"),
        # names that are not plain path components: `..` once replaced results/poses as "its" output folder
        ({"datasets": {"llff": {"scenes": [".."]}}}, "datasets.llff.scenes.0: '..' is not a plain folder name"),
        ({"datasets": {"llff": {"scenes": ["."]}}}, "datasets.llff.scenes.0"),
        ({"datasets": {"llff": {"scenes": ["-rf"]}}}, "datasets.llff.scenes.0"),
        ({"datasets": {"llff": {"scenes": ["a/b"]}}}, "datasets.llff.scenes.0"),
        ({"datasets": {"llff": {"scenes": [""]}}}, "datasets.llff.scenes.0"),
        ({"datasets": {"..": {"root": "data", "scenes": ["a"]}}}, "datasets: '..' is not a plain folder name"),
        ({"datasets": {".hidden": {"root": "data", "scenes": ["a"]}}}, "datasets: '.hidden'"),
        # what a schema lets through: a final newline ($ matches before it), numbers as keys, NaN and infinity,
        # names that flatten to the same file
        ({"datasets": {"llff": {"scenes": ["fern\n"]}}}, "datasets.llff.scenes.0: 'fern\\n' is not a plain folder name"),
        ({"datasets": {"mine\n": {"root": "data", "scenes": ["a"]}}}, "datasets: 'mine\\n' is not a plain folder name"),
        (
            {"datasets": {5: {"root": "data", "scenes": ["a"]}}},
            "datasets: the key 5 is not a string (YAML reads it as int): quote it ('5')",
        ),
        ({"gs": {"eps2d": float("nan")}}, "gs.eps2d: nan is not a finite number"),
        ({"threedsr": {"lambda_lr": float("inf")}}, "threedsr.lambda_lr: inf is not a finite number"),
        (
            {"datasets": {"a_b": {"root": "r", "scenes": ["c"]}, "a": {"root": "r", "scenes": ["b_c"]}}},
            "datasets: a/b_c and a_b/c would share the file names of 'a_b_c'",
        ),
        # relations between keys
        ({"sr": {"tile": 64, "tile_overlap": 64}}, "sr.tile_overlap (64) must be smaller than sr.tile (64)"),
        ({"sr": {"stablesr_turbo": {"tile": 32, "tile_overlap": 40}}}, "sr.stablesr_turbo.tile_overlap (40) must be smaller"),
        ({"gs": {"densify": {"start": 2000, "stop": 1000}}}, "gs.densify.start (2000) is after gs.densify.stop (1000)"),
        ({"threedsr": {"steps": 1001}}, "threedsr.steps"),
        ({"datasets": {"synthetic": {"scenes": []}}}, "datasets: no scenes to run"),
        ({"metrics": {"lpips_backbone": "missing/alex.pth$(touch PWNED)"}}, "metrics.lpips_backbone"),
        ({"metrics": {"fid_inception": "missing/pt_inception.pth"}}, "metrics.fid_inception (missing/pt_inception.pth) is not a file"),
        ({"metrics": {"niqe_model": "missing/niqe.mat"}}, "metrics.niqe_model (missing/niqe.mat) is not a file"),
        ({"metrics": {"fetch": "yes"}}, "metrics.fetch"),
    ],
)
def test_bad_params_name_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        config.validate(_with(tmp_path, override))


def test_official_scene_without_local_copy_is_downloadable(tmp_path):
    cfg = _with(tmp_path, {"datasets": {"llff": {"root": str(tmp_path / "none"), "scenes": ["fern"]}}})
    config.validate(cfg)
    # ... and the reason is said before anything is downloaded: the root the user named is missing
    assert config.downloads(cfg) == {
        "nerf_llff_data.zip": [f"datasets.llff.root ({tmp_path / 'none'}) does not exist: llff/fern is downloaded"]
    }
    (tmp_path / "none" / "fern").mkdir(parents=True)
    assert config.downloads(cfg)["nerf_llff_data.zip"][0].startswith(f"{tmp_path / 'none' / 'fern'} has no images/ or images_N/ folder")


def test_more_steps_than_timesteps_is_refused_by_the_sampler():
    from threedsr.sr.sampling import respaced_timesteps

    assert len(set(respaced_timesteps(1000, 1000))) == 1000
    with pytest.raises(ConfigError, match=r"threedsr\.steps \(11\).*10 timesteps"):
        respaced_timesteps(10, 11)


def test_cli_check_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("poses:\n  sfm_max_image_size: 10\n")
    ok = subprocess.run([sys.executable, "-m", "threedsr", "check-config", str(REPO / "params.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    r = subprocess.run(
        [sys.executable, "-m", "threedsr", "check-config", str(REPO / "params.yaml"), str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "poses.sfm_max_image_size" in r.stderr and "Traceback" not in r.stderr


def _snakemake_refuses(workflow_dir, override: str) -> str:
    """What Snakemake says, failing, with params.yaml and this override file."""
    (workflow_dir / "override.yaml").write_text(override)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "params.yaml", "override.yaml"]
    r = subprocess.run(cmd, cwd=workflow_dir, capture_output=True, text=True)
    assert r.returncode != 0
    return r.stdout + r.stderr


def test_snakemake_rejects_bad_key_before_any_job(workflow_dir):
    out = _snakemake_refuses(workflow_dir, "resolution:\n  hr_factr: 2\n")
    assert "resolution: Additional properties are not allowed ('hr_factr' was unexpected)" in out
    assert "$schema" not in out and len(out.splitlines()) < 20  # the message, not the schema and the config
    assert not (workflow_dir / "results").exists()


def test_scene_named_dotdot_fails_before_any_job(workflow_dir):
    """`..` as a scene once made the poses job replace results/poses as a whole, deleting every dataset's poses."""
    (workflow_dir / "results" / "poses" / "other" / "kept").mkdir(parents=True)
    out = _snakemake_refuses(workflow_dir, "datasets:\n  llff: {root: data, scenes: ['..']}\n")
    assert "datasets.llff.scenes.0: '..' is not a plain folder name" in out
    assert (workflow_dir / "results" / "poses" / "other" / "kept").is_dir()
    assert sorted(p.name for p in (workflow_dir / "results").iterdir()) == ["poses"]  # no job ran: no logs


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch):
    from threedsr.devices import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert visible_gpus() == 0


def test_gpu_jobs_are_capped_at_the_gpus_present(workflow_dir):
    """With one GPU visible, snakemake gets gpu=1 as a global resource: one training at a time."""
    import os

    (workflow_dir / "tiny.yaml").write_text("datasets:\n  synthetic: {scenes: [forward], width: 64, height: 48, supersample: 1}\n")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/reports/data/summary.csv",
        "--cores",
        "2",
        "--configfile",
        "params.yaml",
        "tiny.yaml",
    ]
    one_gpu = subprocess.run(cmd, cwd=workflow_dir, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    assert one_gpu.returncode == 0, one_gpu.stderr[-2000:]
    assert 'gpu=Resource("gpu", 1)' in one_gpu.stdout + one_gpu.stderr
    no_gpu = subprocess.run(
        cmd + ["--forcerun", "data_report"],
        cwd=workflow_dir,
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert no_gpu.returncode == 0 and "Provided resources: gpu" not in no_gpu.stdout + no_gpu.stderr


def test_device_cuda_without_a_gpu_fails_before_any_job(workflow_dir, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, on any machine
    out = _snakemake_refuses(workflow_dir, "device: cuda\n")
    assert "device: cuda, but no CUDA device is visible on this machine" in out and "Traceback" not in out
    assert not (workflow_dir / "results").exists()


def test_a_job_asked_for_cuda_without_one_says_so_in_one_line():
    import torch

    from threedsr.devices import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device: cuda, but torch sees no CUDA device"):
        resolve_device("cuda")


def _declared(full: dict, keys: list[str]) -> dict:
    """The keys of `full` a job declares, nested as params_json nests them."""
    declared: dict = {}
    for key in keys:
        *path, last = key.split(".")
        src, dst = full, declared
        for k in path:
            src, dst = src[k], dst.setdefault(k, {})
        dst[last] = src[last]
    return declared


@pytest.mark.parametrize("iterations", [None, 250])
def test_each_methods_budget_reads_only_the_keys_its_jobs_declare(iterations):
    """A method's budget (its fit job) and the tables' budget note (the aggregate job) are computed from the keys those
    jobs declare (Budget.keys, hr_budget_keys) alone, or a change to another would leave them stale."""
    from threedsr.methods import registry as method_registry

    full = {**config.load(REPO / "params.yaml"), "methods": method_registry.method_names()}
    full["isr"]["iterations"] = full["supergaussian"]["iterations"] = iterations
    for m in method_registry.METHODS:
        if m.hr_budget:
            assert m.hr_budget.steps(_declared(full, m.hr_budget.keys(full))) == m.hr_budget.steps(full) > 0, m.name
    declared = _declared(full, method_registry.hr_budget_keys(full))
    assert method_registry.hr_budgets(declared) == method_registry.hr_budgets(full)
    assert method_registry.hr_budgets(full).keys() == {n for n in method_registry.method_names() if method_registry.of(n).hr_budget}


@pytest.mark.parametrize("iterations", [None, 250])
@pytest.mark.parametrize("block", ["isr", "supergaussian"])
def test_an_hr_fit_declares_the_keys_its_budget_reads(block, iterations):
    """fit_isr / fit_supergaussian declare hr_iteration_keys: with iterations null they read 3DSR's budget, so a
    threedsr.steps change must rerun them, and with iterations set it must not."""
    from threedsr.methods import registry as method_registry

    full = config.load(REPO / "params.yaml")
    full[block]["iterations"] = iterations
    keys = method_registry.hr_iteration_keys(full, block)
    declared = {}
    for key in keys:
        head, last = key.split(".")
        declared.setdefault(head, {})[last] = full[head][last]
    assert method_registry.hr_iterations(declared, block) == method_registry.hr_iterations(full, block)
    assert ("threedsr.steps" in keys) == (iterations is None)


def test_a_results_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path, monkeypatch):
    """A read-only results/ was Snakemake's traceback at the first job; the run's start checks it (onstart)."""
    import tempfile

    config.check_writable(tmp_path / "results")  # not there yet: its parent is tried
    (tmp_path / "results").mkdir()
    config.check_writable(tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []  # the probe is gone

    def read_only(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'results'}: cannot write there \(Read-only file system\)"):
        config.check_writable(tmp_path / "results")
