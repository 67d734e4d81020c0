"""tools/gpu_check.sh, the GPU check: its dry mode runs here every step that needs no GPU (so the script
cannot rot between GPU sessions), and the wheel list's bookkeeping (tools/gpu_wheels.py) is checked on
made-up wheels. The GPU steps themselves run only on a GPU machine (docs/gpu-check.md)."""

import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402
import rule_times  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out, work = tmp_path_factory.mktemp("gpu-check-out"), tmp_path_factory.mktemp("gpu-check-work")
    env = {**os.environ, "PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("OUT", None)
    r = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_check.sh"), "--dry", "--out", str(out), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return r, out, json.loads((out / "summary.json").read_text())


def test_dry_mode_runs_every_step_that_needs_no_gpu(dry_run):
    r, out, summary = dry_run
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    steps = summary["steps"]
    assert summary["mode"] == "dry"
    assert {k: v["status"] for k, v in steps.items()} == {
        "env": "ok",
        "imports": "ok",
        "sr": "ok",
        "build": "skipped",
        "raster": "ok",
        "tests": "ok",
        "pipeline": "ok",
    }
    assert all(not v["problems"] for v in steps.values())
    # every third-party module the check imports resolved against the device's packages and the wheel list
    assert steps["imports"]["figures"]["third-party modules"] >= 15
    # the three SR models ran through load_sr_model, and their outputs were checked
    assert {f"{m} s/view" for m in ("stablesr-turbo", "tiny", "realesrgan")} <= set(steps["sr"]["figures"])
    # every cuda test was collected, and skipped (no GPU here)
    tests = steps["tests"]["figures"]
    assert tests["collected"] >= 16 and tests["passed / failed / errors / skipped"] == f"0 / 0 / 0 / {tests['collected']}"
    # the GPU preset passes the config check and plans every method, as the device machine would (no ffmpeg, no ncnn wheel)
    pipeline = steps["pipeline"]["figures"]
    assert pipeline["check-config workflow/presets/gpu-check.yaml"].startswith("ok")
    assert pipeline["jobs planned"] >= 20 and "--omit-from videos" in pipeline["command"]
    md = (out / "summary.md").read_text()
    assert "| fit_3dsr | 1 |" in md and "| supergaussian_frames | 1 |" in md and "convert_realesrgan" not in md
    assert "## Cuts" in md and md.count("| ok |") >= 6
    assert "step pipeline: ok" in (out / "gpu_check.log").read_text()


def test_every_package_left_out_has_a_way_round():
    wl = gpu_wheels.read_list()
    assert set(wl.omitted) == set(gpu_check.OMITTED)
    # a pin of something the image has shadows it: only where its version is unknown and a wheel needs a newer one
    assert set(wl.pins) & set(gpu_wheels.read_device()) <= {"typing-extensions"}
    assert {"gsplat", "diffusers", "snakemake", "pycolmap", "jsonschema", "pytorch-msssim"} <= set(wl.pins)


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}\n\nA description.\nRequires-Dist: not-a-header\n".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_wheel_check_finds_unmet_requirements(tmp_path):
    wl = gpu_wheels.WheelList(pins={"alpha": "1.0", "beta": "1.5", "gamma": "2.0"}, omitted={"pulp": "greedy scheduler"})
    device = {"numpy": "2.5.2", "rich": None}
    _wheel(
        tmp_path, "alpha", "1.0", ["beta>=2", "numpy<2", "rich>=12", "pulp", "delta", "old; python_version < '3.8'", "doc; extra == 'docs'"]
    )
    _wheel(tmp_path, "beta", "1.5", [])
    _wheel(tmp_path, "stale", "0.1", [])
    problems, notes = gpu_wheels.check_wheels(tmp_path, wl, device)
    text = "\n".join(problems)
    assert "beta>=2, the list pins beta==1.5" in text
    assert "numpy<2, the device has numpy==2.5.2" in text
    assert "requires delta: neither on the device nor in" in text
    assert "gamma==2.0: no wheel" in text and "stale-0.1-py3-none-any.whl: not in" in text
    assert "not-a-header" not in text and "old" not in text and "doc" not in text  # description, markers and extras
    assert len(problems) == 5
    assert any("pulp, left out" in n for n in notes) and any("rich" in n for n in notes)


def test_import_scan_and_resolution(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text(
        "import os, numpy.linalg\nfrom . import sibling\n\ndef f():\n    from surely_missing_xyz.sub import g\n    import gsplat\n"
    )
    smk = tmp_path / "rules.smk"
    smk.write_text("import json\nfrom threedsr.config import x\n\nrule a:\n    shell: 'import nothing'\n")
    assert gpu_wheels.imports_in(src) == {"os", "numpy", "surely_missing_xyz", "gsplat"}
    assert gpu_wheels.imports_in(smk) == {"json", "threedsr"}
    modules = gpu_wheels.third_party(gpu_wheels.imports_in(src) | gpu_wheels.imports_in(smk), {"threedsr"})
    assert modules == {"numpy", "surely_missing_xyz", "gsplat"}
    where, problems = gpu_wheels.check_imports(modules, gpu_wheels.read_list(), gpu_wheels.read_device())
    assert where["numpy"].startswith("device") and where["gsplat"].startswith("wheel gsplat==")
    assert problems == [p for p in problems if "surely_missing_xyz" in p] and len(problems) == 1


def test_gpu_jobs_at_once_from_the_log():
    def start(second, kind, rule, jobid, gpu, mem):
        return [
            f"[Tue Dec  1 14:00:{second:02d} 2026]",
            f"{kind} {rule}:",
            f"    jobid: {jobid}",
            f"    resources: tmpdir=/tmp, gpu={gpu}, mem_mb={mem}",
        ]

    log = (
        start(0, "rule", "fit_hr_targets", 3, 1, 8000)
        + start(1, "localrule", "train_prior", 4, 0, 6000)
        + ["[Tue Dec  1 14:00:05 2026]", "Finished jobid: 3 (Rule: fit_hr_targets)"]
        + start(5, "rule", "fit_isr", 5, 1, 8000)
        + ["[Tue Dec  1 14:00:09 2026]", "Finished jobid: 5 (Rule: fit_isr)", "Finished jobid: 4 (Rule: train_prior)"]
    )
    jobs = rule_times.jobs(log)
    assert [(j["rule"], j["gpu"]) for j in jobs] == [("fit_hr_targets", 1), ("fit_isr", 1), ("train_prior", 0)]
    gpu = [(j["start"], j["end"]) for j in jobs if j["gpu"]]
    assert rule_times.max_concurrent(gpu) == 1  # one ends at 14:00:05 as the next starts
    assert rule_times.max_concurrent([(j["start"], j["end"]) for j in jobs]) == 2
    t = datetime(2026, 1, 1)
    assert rule_times.max_concurrent([(t, t.replace(second=9)), (t.replace(second=2), t.replace(second=3))]) == 2
    seconds, counts = rule_times.rule_times(log)
    assert seconds == {"fit_hr_targets": 5.0, "train_prior": 8.0, "fit_isr": 4.0} and counts["fit_isr"] == 1
