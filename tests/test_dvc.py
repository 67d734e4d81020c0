"""DVC over the Snakemake workflow: dvc.yaml is generated from the workflow, and reruns reuse what was computed.

The end-to-end test runs in a temporary git repository on a tiny synthetic config (about 3 minutes):
a no-op rerun, a lambda_lr change that retrains only 3DSR, `dvc exp run -S`, a run-cache restore,
sharing through a DVC remote, and a dvc.yaml left stale by a new method being refused.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from threedsr import dvc_stages
from threedsr.sr.tiny import SHIPPED

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)  # snakemake and dvc of this environment, as the stages call them

TRAINING = {"pretrain_lr", "fit_3dsr"}  # (the SR prior ships trained: no train_prior stage by default)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _run(cwd, *cmd, check=True) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert r.returncode == 0 or not check, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r, time.perf_counter() - t


def _snakemake(cwd, *args):
    return _run(cwd, sys.executable, "-m", "snakemake", "--cores", "2", *args)


def _dvc(cwd, *args):
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _git(cwd, *args):
    return _run(cwd, "git", *args)


def _jobs_ran(r: subprocess.CompletedProcess) -> set[str]:
    """Rules in Snakemake's "Job stats" table (empty when there was nothing to do)."""
    out = r.stdout + r.stderr
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"all"}


def _stages_ran(r: subprocess.CompletedProcess) -> set[str]:
    return {m.group(1).split("-")[0] for m in re.finditer(r"Running stage '([^']+)'", r.stdout + r.stderr)}


def _set_lambda(repo: Path, value: float):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["threedsr"]["lambda_lr"] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def tiny_repo(tmp_path, tiny_config) -> Path:
    """A git + DVC repository holding the workflow (the package is the installed one) and a tiny params.yaml."""
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("Snakefile", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    for sub in ("workflow/rules", "workflow/schemas", "envs"):
        shutil.copytree(REPO / sub, repo / sub, ignore=shutil.ignore_patterns("__pycache__"))
    tiny = tiny_config(scene=True, methods=["lr3dgs", "3dsr"], threedsr={"steps": 2, "iters_per_step": 5}, video={"n_interp": 1, "fps": 8})
    params = _merged(yaml.safe_load((REPO / "params.yaml").read_text()), tiny)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "config", "user.name", "test")
    _git(repo, "config", "user.email", "test@example.com")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _run(repo, sys.executable, "-m", "threedsr", "dvc-yaml")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "tiny project")
    return repo


def test_dvc_yaml_is_generated_from_the_jobs_and_the_keys_they_read():
    text = dvc_stages.dvc_yaml(REPO)
    assert (REPO / "dvc.yaml").read_text() == text, "dvc.yaml is stale: run `threedsr dvc-yaml` and commit it"
    jobs = dvc_stages.workflow_jobs(REPO)
    stages = yaml.safe_load(text)["stages"]
    by_rule, by_stage = {}, {}
    for job in jobs.values():
        if job.rule == "all":
            continue
        stage = stages[dvc_stages.stage_name(job)]
        outs = [next(iter(o)) if isinstance(o, dict) else o for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
        assert sorted(outs) == sorted(job.outputs), job.rule
        assert sorted(stage.get("deps", [])) == sorted(set(job.inputs)), job.rule
        assert f"--allowed-rules {job.rule} " in stage["cmd"]
        by_rule[job.rule] = by_stage[dvc_stages.stage_name(job)] = set(stage.get("params", []))
    assert len(stages) == sum(j.rule != "all" for j in jobs.values())
    # what the rules' params pass on, as far as a reader of the .smk files can tell
    assert by_rule["pretrain_lr"] == {"device", "gs"}
    # the prior ships trained: no stage trains it, and its training settings rerun nothing; which prior is used does
    assert "train_prior" not in by_rule and not any(
        k.startswith("sr.tiny.") and k != "sr.tiny.path" for keys in by_rule.values() for k in keys
    )
    sr_keys = {"sr.model", "sr.dtype", "sr.batch_size", "sr.tile", "sr.tile_overlap", "sr.tiny.path", "sr.realesrgan"}
    assert {"threedsr", "gs", "metrics.lpips_backbone", "metrics.fetch"} | sr_keys <= by_rule["fit_3dsr"]  # its per-step LPIPS
    assert "metrics" in by_rule["render_test"] and "metrics" in by_rule["collect_sr2d"]  # every metric's weights
    assert "threedsr.lambda_lr" in by_rule["fit_isr"] and "threedsr" not in by_rule["fit_isr"]
    # per job, not per rule: the tiny prior samples (threedsr's sampler keys), Real-ESRGAN does not, so a sampler sweep
    # (dvc exp run -S threedsr.steps=3) reruns the one and not the other
    sr = {name: keys for name, keys in by_stage.items() if name.startswith("super_resolve-synthetic-forward-")}
    assert "threedsr.steps" in sr["super_resolve-synthetic-forward-tiny"] and not any(
        k.startswith("threedsr") for k in sr["super_resolve-synthetic-forward-realesrgan"]
    )
    assert all("threedsr.lambda_lr" not in keys for keys in sr.values())
    assert by_rule["prepare_scene"] == {
        "resolution",
        "test_every",
        "poses.undistort",
        "poses.undistort_above_px",
    }  # lr/hr factors only valid together
    # SuperGaussian's frames: Real-ESRGAN has no sampler, so 3DSR's sampler keys do not rerun them
    assert sr_keys | {"device", "supergaussian.n_interp", "supergaussian.upsampler"} <= by_rule["supergaussian_frames"]
    assert not any(k.startswith("threedsr") for k in by_rule["supergaussian_frames"])
    # isr and supergaussian get 3DSR's 3DGS budget unless their iterations are set (null): its keys rerun them
    assert by_rule["fit_supergaussian"] == {
        "device",
        "gs",
        "supergaussian.iterations",
        "supergaussian.lambda_lr",
        "threedsr.steps",
        "threedsr.iters_per_step",
    }
    assert {"isr", "threedsr.steps", "threedsr.iters_per_step"} <= by_rule["fit_isr"]
    assert by_rule["videos"] == {"device", "video"}
    # only the stage guarding against a stale dvc.yaml lists the keys that decide which stages exist: methods, every
    # dataset (a new one too), and the keys whose other values add or remove jobs or change the files they read (found
    # by perturbation: the SR models' weights)
    assert by_rule.pop("data_report") == {
        "methods",
        "datasets",
        "sr.model",
        "sr.realesrgan.path",
        "sr.tiny.path",
        "supergaussian.upsampler",
    }
    assert not any("scenes" in k or k in ("methods", "datasets") for keys in by_rule.values() for k in keys)
    assert by_rule["generate_synthetic"] == {f"datasets.synthetic.{k}" for k in ("width", "height", "supersample", "num_points", "seed")}
    summary = next(s for s in stages.values() if "metrics" in s)
    assert summary["metrics"] == [{"results/metrics/summary.json": {"cache": False}}]


def test_an_invalid_params_yaml_is_named(tmp_path):
    shutil.copy(REPO / "Snakefile", tmp_path)
    shutil.copytree(REPO / "workflow" / "rules", tmp_path / "workflow" / "rules")
    shutil.copytree(REPO / "workflow" / "schemas", tmp_path / "workflow" / "schemas")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["threedsr"]["lambda_lr"] = "one"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(dvc_stages.ConfigError, match=r"(?s)params.yaml.*lambda_lr"):
        dvc_stages.dvc_yaml(tmp_path)


def test_a_key_no_valid_value_can_replace_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dvc_stages, "_alternatives", lambda value, schema, workdir: [])
    config = yaml.safe_load((REPO / "params.yaml").read_text())
    with pytest.raises(dvc_stages.ConfigError, match="test_every"):
        dvc_stages.params_read(REPO, {"test_every": config["test_every"]}, {})


@pytest.mark.slow
def test_caching_sweeps_and_sharing(tiny_repo, tmp_path):
    repo = tiny_repo
    timings = {}

    # 3. `dvc repro` runs the pipeline, one Snakemake job per stage
    r, timings["first run (dvc repro)"] = _dvc(repo, "repro")
    assert {"pretrain_lr", "fit_3dsr", "aggregate_metrics"} <= _stages_ran(r)
    first = json.loads((repo / "results/metrics/summary.json").read_text())
    assert first["synthetic"]["3dsr"]["psnr"] > 5
    # the synthetic scene records its textures, and the (shipped) prior never saw them
    textures = json.loads((repo / "results/raw/synthetic/forward/synthetic.json").read_text())["textures"]
    photos = json.loads((SHIPPED / "tiny_sr.json").read_text())["training"]["photos"]
    assert textures and photos and not set(textures) & set(photos)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first run")
    # git holds the DVC metrics and plots (cache: false); DVC's cache holds the rest
    tracked = set(_git(repo, "ls-files", "results")[0].stdout.split())
    assert tracked == {
        f"results/metrics/{f}" for f in ("summary.json", "summary.csv", "per_view.csv", "consistency.csv", "synthetic.md", "synthetic.html")
    } | {"results/gs/synthetic/forward/3dsr/steps.csv"}

    # 1. Snakemake agrees that everything DVC ran is current
    r, timings["no-op rerun (snakemake)"] = _snakemake(repo)
    assert _jobs_ran(r) == set()
    assert timings["no-op rerun (snakemake)"] < 20

    # 2. only threedsr.lambda_lr changes: 3DSR and what reads its model rerun, nothing upstream is retrained
    _set_lambda(repo, 0.5)
    r, timings["lambda_lr changed (snakemake)"] = _snakemake(repo)
    assert _jobs_ran(r) == {"fit_3dsr", "render_test", "consistency", "aggregate_metrics", "crops_figure", "videos", "viewer_page"}
    half = json.loads((repo / "results/metrics/summary.json").read_text())
    assert half != first
    # DVC has not recorded this run: mark-current refuses to vouch for it
    refused, _ = _run(repo, sys.executable, "-m", "threedsr", "mark-current", check=False)
    assert refused.returncode == 1 and "fit_3dsr-synthetic-forward-3dsr" in refused.stderr
    _dvc(repo, "commit", "-f")  # Snakemake's run, recorded in dvc.lock and in DVC's run-cache
    assert "Data and pipelines are up to date" in _dvc(repo, "status")[0].stdout
    _run(repo, sys.executable, "-m", "threedsr", "mark-current")  # dvc commit gave single-file outputs new timestamps
    assert _jobs_ran(_snakemake(repo)[0]) == set()  # the README's one-liner leaves both tools agreeing

    # 3. back to the committed value: DVC's run-cache restores the first run's outputs without training
    _git(repo, "checkout", "params.yaml")
    r, timings["back to lambda_lr 1 (dvc repro, run-cache)"] = _dvc(repo, "repro")
    assert _stages_ran(r) & TRAINING == set()
    assert "is cached - skipping run, checking out outputs" in r.stdout
    assert json.loads((repo / "results/metrics/summary.json").read_text()) == first
    assert _git(repo, "status", "--porcelain")[0].stdout == ""  # dvc.lock is the first run's again
    # restored files are newer than Snakemake's records: mark-current makes Snakemake agree with DVC
    _, timings["threedsr mark-current"] = _run(repo, sys.executable, "-m", "threedsr", "mark-current")
    assert _jobs_ran(_snakemake(repo)[0]) == set()

    # 5. share through a DVC remote: a fresh clone pulls the checkpoints and trains nothing
    _dvc(repo, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    _git(repo, "commit", "-qam", "remote")
    _dvc(repo, "push")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    _, timings["fresh clone: dvc pull"] = _dvc(clone, "pull")
    assert _snakemake(clone, "-n")[0].stdout.count("pretrain_lr")  # pulled files look stale to Snakemake ...
    _run(clone, sys.executable, "-m", "threedsr", "mark-current")
    assert _jobs_ran(_snakemake(clone)[0]) == set()  # ... until marked current
    assert json.loads((clone / "results/metrics/summary.json").read_text()) == first

    # 4. an experiment (here a run-cache hit: Snakemake's lambda_lr 0.5 run was committed above)
    _, timings["dvc exp run -S threedsr.lambda_lr=0.5"] = _dvc(repo, "exp", "run", "-S", "threedsr.lambda_lr=0.5")
    shown = json.loads(_dvc(repo, "exp", "show", "--json")[0].stdout)
    psnr = {}
    for rev in shown:
        for exp in [rev] + [e for ex in rev.get("experiments") or [] for e in ex["revs"]]:
            lam = exp["data"]["params"]["params.yaml"]["data"]["threedsr"]["lambda_lr"]
            psnr[exp["name"] if exp.get("name") and exp["rev"] != "workspace" else exp["rev"], lam] = exp["data"]["metrics"][
                "results/metrics/summary.json"
            ]["data"]["synthetic"]["3dsr"]["psnr"]
    assert psnr.pop(("workspace", 0.5)) == half["synthetic"]["3dsr"]["psnr"]
    assert sorted(psnr.values()) == sorted([first["synthetic"]["3dsr"]["psnr"], half["synthetic"]["3dsr"]["psnr"]])  # HEAD, the experiment

    # another method without regenerating dvc.yaml: DVC's Snakemake refuses to run with stages missing
    params = yaml.safe_load((clone / "params.yaml").read_text())
    (clone / "params.yaml").write_text(yaml.safe_dump({**params, "methods": ["lr3dgs", "bicubic", "3dsr"]}, sort_keys=False))
    stale, _ = _run(clone, sys.executable, "-m", "dvc", "repro", check=False)
    assert stale.returncode != 0 and "run `threedsr dvc-yaml`" in stale.stdout + stale.stderr
    # a new dataset (any name, a local copy) without regenerating dvc.yaml: refused too (DVC once said "up to date")
    _git(clone, "checkout", "params.yaml")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["datasets"]["mydata"] = {"root": "results/raw/synthetic", "scenes": ["forward"]}
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale, _ = _run(clone, sys.executable, "-m", "dvc", "repro", check=False)
    out = stale.stdout + stale.stderr
    assert stale.returncode != 0 and "generated for other datasets" in out and "mydata" in out and "run `threedsr dvc-yaml`" in out
    for step, seconds in timings.items():
        print(f"{step}: {seconds:.1f} s")


def test_a_dvc_yaml_generated_for_another_root_is_refused(tmp_path):
    """A dataset's root decides what its pose stages read (their deps): pointed at another copy, DVC kept the old
    results, "up to date". The root is part of what dvc.yaml is generated for, so the guard stage's run refuses it."""
    from threedsr.config import load
    from threedsr.errors import ConfigError

    config = load(REPO / "params.yaml")
    config["datasets"]["mine"] = {"root": "/data/copy-a", "scenes": ["room"]}
    dvc = tmp_path / "dvc.yaml"
    dvc.write_text(dvc_stages.GENERATED_FOR + json.dumps(dvc_stages.shape(config, [])) + "\nstages: {}\n")
    dvc_stages.check_generated_for(config, dvc)
    config["datasets"]["mine"]["root"] = "/data/copy-b"
    with pytest.raises(ConfigError, match=r"generated for other datasets .*copy-b.*run `threedsr dvc-yaml`"):
        dvc_stages.check_generated_for(config, dvc)
