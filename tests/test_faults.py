"""Fault injection (slow tier): each job that keeps resumable state is killed, as SIGKILL would (THREEDSR_FAULT, see
io.fault_point), early, in the middle or inside its final write; the rerun must succeed, resume from what was finished
(the log says where) and write outputs identical to an uninterrupted run's."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

SCENE = "results/gs/synthetic/forward"
TARGETS = [f"{SCENE}/{m}/ckpt.pt" for m in ("lr3dgs", "bicubic", "3dsr")]
# (rule, where it is killed, what the rerun's log says, the method folder it writes)
CASES = [
    ("pretrain_lr", "fit:resume-saved@1", "at step 20", "lr3dgs"),  # early: after its first resume point
    ("pretrain_lr", "fit:resume-saved@3", "at step 60", "lr3dgs"),  # mid, after train_log.csv's row of step 50
    ("pretrain_lr", "write:ckpt.pt", "at step 100", "lr3dgs"),  # inside the final write
    ("fit_hr_targets", "fit:resume-saved@1", "at step 20", "bicubic"),
    ("fit_3dsr", "3dsr:round-saved@1", "after step 1 of 2", "3dsr"),
    ("fit_3dsr", "write:ckpt.pt", "after step 2 of 2", "3dsr"),  # every round done: none is redone
]


def _snakemake(workflow_dir, config_name, *args, fault=None):
    env = {**os.environ, "THREEDSR_CHECKPOINT_EVERY": "20"}
    if fault:
        env["THREEDSR_FAULT"] = fault
    cmd = [sys.executable, "-m", "snakemake", *TARGETS, "--cores", "2", *args, "--configfile", "params.yaml", config_name]
    return subprocess.run(cmd, cwd=workflow_dir, capture_output=True, text=True, env=env)


def _outputs(folder) -> dict:
    """What a fit leaves: its model's parameters, the PLY's and the tables' bytes."""
    out = {"params": torch.load(folder / "ckpt.pt", weights_only=True)["params"], "ply": (folder / "point_cloud.ply").read_bytes()}
    if (folder / "train_log.csv").exists():
        out["train_log.csv"] = (folder / "train_log.csv").read_bytes()
    if (folder / "steps.csv").exists():  # 3DSR's table, but its wall times
        out["steps.csv"] = pd.read_csv(folder / "steps.csv").drop(columns="seconds").to_csv(index=False)
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (a[k].keys() == b[k].keys() and all(torch.equal(a[k][p], b[k][p]) for p in a[k])) if k == "params" else a[k] == b[k] for k in a
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the tiny configuration (LR model, bicubic, 3DSR on the tiny scene)."""
    import shutil

    from conftest import REPO, TINY_BUDGETS, TINY_SCENE

    wd = tmp_path_factory.mktemp("faults")
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(REPO / name, wd / name)
    for sub in ("rules", "schemas", "presets", "report"):
        shutil.copytree(REPO / "workflow" / sub, wd / "workflow" / sub)
    shutil.copytree(REPO / "envs", wd / "envs")
    cfg = {
        **TINY_BUDGETS,
        **TINY_SCENE,
        "methods": ["lr3dgs", "bicubic", "3dsr"],
        "gs": {**TINY_BUDGETS["gs"], "iterations": 120},
        "bicubic": {"iterations": 40},
        "threedsr": {"steps": 2, "iters_per_step": 5},
    }
    (wd / "test.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(wd, "test.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return wd, {m: _outputs(wd / SCENE / m) for m in ("lr3dgs", "bicubic", "3dsr")}


@pytest.mark.parametrize("rule, fault, resumed, method", CASES, ids=[f"{r}-{f}" for r, f, _, _ in CASES])
def test_a_killed_job_resumes_to_the_outputs_of_an_uninterrupted_run(reference, rule, fault, resumed, method):
    wd, expected = reference
    killed = _snakemake(wd, "test.yaml", "--forcerun", rule, "--until", rule, fault=fault)
    assert killed.returncode != 0, killed.stdout[-2000:]
    log = next((wd / "results" / "logs" / rule).rglob(f"{'forward' if rule == 'pretrain_lr' else method}.log"))
    assert f"fault injected at {fault}" in log.read_text()
    again = _snakemake(wd, "test.yaml", "--until", rule)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    text = log.read_text()
    assert "resuming" in text and resumed in text, text[-2000:]
    assert _same(_outputs(wd / SCENE / method), expected[method])
    assert not list((wd / "results").rglob(".*.tmp")), "a temporary file of the killed write survived the rerun"
