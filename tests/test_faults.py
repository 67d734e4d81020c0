"""Fault injection (slow tier): each job that keeps resumable state is killed, as SIGKILL would (THREEDSR_FAULT, see
io.fault_point), early, in the middle or inside its final write; the rerun must succeed, resume from what was finished
(the log says where) and write outputs identical to an uninterrupted run's."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

SCENE = "results/gs/synthetic/forward"
FITS = ("lr3dgs", "bicubic", "isr", "supergaussian", "3dsr")
SR = "results/sr/synthetic/forward/tiny"
FRAMES = "results/supergaussian/synthetic/forward/frames"
VIDEOS = "results/videos/synthetic/forward"
TARGETS = [*(f"{SCENE}/{m}/ckpt.pt" for m in FITS), f"{VIDEOS}/side_by_side.mp4"]
# (rule, where it is killed, what the rerun's log says (None: the job is one unit, done again), the output it writes);
# the tiny scene has 20 views (5 batches of 4) and 33 frames along the path (9 batches)
CASES = [
    ("pretrain_lr", "fit:resume-saved@1", "at step 20", "lr3dgs"),  # early: after its first resume point
    ("pretrain_lr", "fit:resume-saved@3", "at step 60", "lr3dgs"),  # mid, after train_log.csv's row of step 50
    ("pretrain_lr", "write:ckpt.pt", "at step 100", "lr3dgs"),  # inside the final write
    ("fit_hr_targets", "fit:resume-saved@1", "at step 20", "bicubic"),
    ("fit_3dsr", "3dsr:round-saved@1", "after step 1 of 2", "3dsr"),
    ("fit_3dsr", "write:ckpt.pt", "after step 2 of 2", "3dsr"),  # every round done: none is redone
    ("super_resolve", "sr:batch-saved@1", "resuming: 4 images finished", "sr"),
    ("super_resolve", "sr:batch-saved@3", "resuming: 12 images finished", "sr"),
    ("super_resolve", "write:tiny", "resuming: 20 images finished", "sr"),  # inside the final write: no batch redone
    ("supergaussian_frames", "frames:batch-saved@5", "resuming: 20 images finished", "frames"),
    ("supergaussian_frames", "write:frames", "resuming: 33 images finished", "frames"),
    ("videos", "write:bicubic.mp4", None, "videos"),  # one unit (the videos are encoded as one stream of poses)
    ("videos", "write:side_by_side.mp4", None, "videos"),
]


def _snakemake(workflow_dir, config_name, *args, fault=None, also=()):
    """Snakemake on TARGETS and `also` (an intermediate output whose job was killed: with TARGETS up to date, Snakemake
    does not remake it unless asked)."""
    env = {**os.environ, "THREEDSR_CHECKPOINT_EVERY": "20"}
    if fault:
        env["THREEDSR_FAULT"] = fault
    cmd = [sys.executable, "-m", "snakemake", *TARGETS, *also, "--cores", "2", *args, "--configfile", "params.yaml", config_name]
    return subprocess.run(cmd, cwd=workflow_dir, capture_output=True, text=True, env=env)


def _fit(folder) -> dict:
    """What a fit leaves: its model's parameters, the PLY's and the tables' bytes."""
    out = {"params": torch.load(folder / "ckpt.pt", weights_only=True)["params"], "ply": (folder / "point_cloud.ply").read_bytes()}
    if (folder / "train_log.csv").exists():
        out["train_log.csv"] = (folder / "train_log.csv").read_bytes()
    if (folder / "steps.csv").exists():  # 3DSR's table, but its wall times
        out["steps.csv"] = pd.read_csv(folder / "steps.csv").drop(columns="seconds").to_csv(index=False)
    return out


def _folder(folder) -> dict:
    """Every file's bytes; the JSON records without their wall times."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix == ".json":
            record = json.loads(p.read_text())
            out[p.name] = {k: v for k, v in record.items() if "seconds" not in k} if isinstance(record, dict) else record
        elif p.is_file():
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return out


FOLDERS = {"sr": SR, "frames": FRAMES, "videos": VIDEOS}


def _outputs(wd, unit: str) -> dict:
    return _fit(wd / SCENE / unit) if unit in FITS else _folder(wd / FOLDERS[unit])


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
        "methods": list(FITS),
        "gs": {**TINY_BUDGETS["gs"], "iterations": 120},
        "bicubic": {"iterations": 40},
        "threedsr": {"steps": 2, "iters_per_step": 5},
    }
    (wd / "test.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(wd, "test.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return wd, {unit: _outputs(wd, unit) for unit in {case[-1] for case in CASES}}


@pytest.mark.parametrize("rule, fault, resumed, unit", CASES, ids=[f"{r}-{f}" for r, f, _, _ in CASES])
def test_a_killed_job_resumes_to_the_outputs_of_an_uninterrupted_run(reference, rule, fault, resumed, unit):
    wd, expected = reference
    killed = _snakemake(wd, "test.yaml", "--forcerun", rule, "--until", rule, fault=fault)
    assert killed.returncode != 0, killed.stdout[-2000:]
    (log,) = (wd / "results" / "logs" / rule).rglob("*.log")
    assert f"fault injected at {fault}" in log.read_text()
    again = _snakemake(wd, "test.yaml", "--until", rule, also=[FOLDERS[unit]] if unit in ("sr", "frames") else [])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    text = log.read_text()
    if resumed:
        assert "resuming" in text and resumed in text, text[-2000:]
    else:
        assert "resuming" not in text, text[-2000:]
    assert _same(_outputs(wd, unit), expected[unit])
    assert not list((wd / "results").rglob(".*.tmp")), "a temporary file of the killed write survived the rerun"
    assert not list((wd / "results").rglob(".*.partial")), "the finished batches were not removed with the output complete"
