"""Adding a method is one module plus one registry entry: a toy method (nearest-neighbour x4 of the LR views, then the
LR model fitted further at HR to those, as the bicubic baseline is) added to a copy of the workflow by touching only
those two places is accepted by the config check, planned by Snakemake (fit, render and score, tables) and fitted."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

TOY_MODULE = '''"""A toy method: the LR training views upsampled x4 by nearest neighbour are its HR targets."""

import torch.nn.functional as F

from ..imaging import to_float


def hr_target(scene, view):
    lr = to_float(scene.image(view, "lr")).permute(2, 0, 1)[None]
    return F.interpolate(lr, scale_factor=scene.scale, mode="nearest")[0].permute(1, 2, 0)
'''
TOY_ENTRY = '    Method("nearest", 3, "nearest-neighbour x4 of the LR views", hr_budget=THREEDSR_BUDGET, targets="nearest"),\n'


def _add_toy_method(workflow_dir: Path) -> Path:
    """The package copied beside the copied workflow, plus the toy method's module and registry entry; returns the
    copy's `workflow` folder (the jobs put it first on PYTHONPATH, as they put a checkout's)."""
    package = workflow_dir / "workflow" / "threedsr"
    shutil.copytree(REPO / "workflow" / "threedsr", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "methods" / "nearest.py").write_text(TOY_MODULE)
    registry = package / "methods" / "registry.py"
    head = "METHODS: tuple[Method, ...] = (\n"
    assert head in registry.read_text()
    registry.write_text(registry.read_text().replace(head, head + TOY_ENTRY))
    return workflow_dir / "workflow"


def _changed(package: Path) -> set[str]:
    ours = {p.relative_to(REPO / "workflow" / "threedsr") for p in (REPO / "workflow" / "threedsr").rglob("*.py")}
    theirs = {p.relative_to(package) for p in package.rglob("*.py")}
    same = {p for p in ours & theirs if (package / p).read_bytes() == (REPO / "workflow" / "threedsr" / p).read_bytes()}
    return {str(p) for p in (ours | theirs) - same}


def test_a_new_method_is_one_module_and_one_registry_entry(workflow_dir, small_scene_and_lr_model, tmp_path):
    code = _add_toy_method(workflow_dir)
    assert _changed(code / "threedsr") == {"methods/nearest.py", "methods/registry.py"}
    env = {**os.environ, "PYTHONPATH": str(code)}  # this copy's package, not the installed one

    # the config check accepts the name, and the workflow plans its fit, its render and scores, the tables
    (workflow_dir / "toy.yaml").write_text(
        yaml.safe_dump({"datasets": {"synthetic": {"scenes": ["forward"]}}, "methods": ["lr3dgs", "nearest"]})
    )
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", "params.yaml", "toy.yaml"],
        cwd=workflow_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for planned in (
        "results/gs/synthetic/forward/nearest/ckpt.pt",
        "results/logs/fit_hr_targets/synthetic/forward/nearest.log",
        "results/metrics/synthetic/forward/nearest.csv",
    ):
        assert planned in r.stdout, planned
    assert "rule fit_hr_targets:" in r.stdout and "--method nearest" in r.stdout

    # its fit: the command the planned job runs, on a small scene from its LR model, with 3DSR's budget (its entry's)
    scene, lr_ckpt = small_scene_and_lr_model
    params = {
        "gs": {**yaml.safe_load((REPO / "params.yaml").read_text())["gs"], "sh_degree": 1, "filter_3d": False},
        "threedsr": {"steps": 2, "iters_per_step": 10},
        "device": "cpu",
    }
    out = tmp_path / "nearest"
    fit = [sys.executable, "-m", "threedsr", "fit", "--scene", str(scene), "--out", str(out), "--targets", "method"]
    fit += ["--method", "nearest", "--init", str(lr_ckpt), "--params", json.dumps(params)]
    r = subprocess.run(fit, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "20 steps on method targets" in r.stderr
    state = torch.load(out / "ckpt.pt", weights_only=True)
    assert state["step"] == 20 and (out / "point_cloud.ply").is_file()

    # the installed package (without the entry) refuses the name in one line
    r = subprocess.run(fit, capture_output=True, text=True)
    assert r.returncode != 0 and "nearest" in r.stderr and "Traceback" not in r.stderr
