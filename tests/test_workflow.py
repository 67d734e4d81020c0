"""The workflow through Snakemake: dry runs, refusals and failures on small configs (fast tier), and real fern end to end
(marked `slow`: minutes)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from test_evaluate import SUMMARY_COLUMNS

from threedsr.io import read_json
from threedsr.reporting.video import count_frames, read_mp4

REPO = Path(__file__).resolve().parents[1]


def _snakemake(cwd, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd, capture_output=True, text=True)


def test_snakemake_lint_finds_nothing(workflow_dir):
    """`snakemake --lint` (the snakemake-workflows best practice's checks: a log per rule, no variable from outside a
    rule in its shell command, helpers in common.smk apart from the rules) has nothing to say."""
    r = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=workflow_dir, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _rules(workflow_dir, config: dict) -> dict:
    """Each rule of the workflow parsed with `config` as params.yaml: name -> (conda file, gpu resource)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        settings = ConfigSettings(config=config, replace_workflow_config=True)
        wf = api.workflow(ResourceSettings(cores=1), settings, snakefile=workflow_dir / "Snakefile", workdir=workflow_dir)
        rules = wf._workflow.rules  # no public API lists a workflow's rules
        return {r.name: (r.conda_env, getattr(r.resources.get("gpu"), "value", None)) for r in rules if r.name != "all"}


@pytest.mark.parametrize("device, gpu_env", [("cuda", "cuda.yaml"), ("auto", "cpu.yaml"), ("cpu", "cpu.yaml")])
def test_gpu_jobs_get_the_cuda_environment_when_the_run_asks_for_cuda(workflow_dir, device, gpu_env):
    """Under --software-deployment-method conda a job that uses the GPU (`resources: gpu=1`) gets envs/cuda.yaml when
    params.yaml says device: cuda, and every other job, or every job without it, envs/cpu.yaml."""
    rules = _rules(workflow_dir, {**yaml.safe_load((workflow_dir / "params.yaml").read_text()), "device": device})
    gpu = {name for name, (_, n) in rules.items() if n == 1}
    assert {"pretrain_lr", "fit_3dsr", "render_test", "super_resolve"} <= gpu
    assert all(env.endswith(gpu_env if name in gpu else "cpu.yaml") for name, (env, _) in rules.items()), rules


# tiny 3DGS schedules so that the whole chain runs in seconds
@pytest.mark.slow
def test_real_scene_end_to_end(workflow_dir, config_file, llff_root):
    # the synthetic scenes run end to end in tests/test_dvc.py
    cfg = {
        "datasets": {"synthetic": {"scenes": []}, "llff": {"root": str(llff_root), "scenes": ["fern"]}},
        "resolution": {"lr_factor": 64, "hr_factor": 16},  # fern: LR 63x47, HR 252x188
        # a third of the default 3DGS budgets, without densifying (one densification at step 300 of 400 multiplies the
        # Gaussians that every later fit carries): the scores are checked in range only (tests/test_three_dsr.py: quality)
        "gs": {"iterations": 400, "densify": {"start": 500, "stop": 1000}},
        "bicubic": {"iterations": 150},
        "threedsr": {"iters_per_step": 50},
    }
    args = ["--configfile", "params.yaml", config_file(**cfg)]
    r = _snakemake(workflow_dir, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(workflow_dir / "results" / "reports" / "data" / "summary.csv")
    assert sorted(zip(table.dataset, table.scene)) == [("llff", "fern")]
    fern = table[table.scene == "fern"].iloc[0]
    assert (fern.views, fern.train, fern.test, fern.lr_size, fern.hr_size) == (20, 17, 3, "63x47", "252x188")
    for d, s in zip(table.dataset, table.scene):
        sheet = Image.open(workflow_dir / "results" / "reports" / "data" / f"contact_{d}_{s}.png")
        assert sheet.width > 2 * int(table[table.scene == s].iloc[0].hr_size.split("x")[0])
        assert (workflow_dir / "results" / "logs" / "prepare_scene" / d / f"{s}.log").exists()

    summary = pd.read_csv(workflow_dir / "results" / "metrics" / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    methods = ["lr3dgs", "bicubic", "supergaussian", "isr", "sr2d", "sr2d-realesrgan", "3dsr"]  # the default list
    assert list(summary[summary.scene == "mean"].method) == methods  # the tables' rows in params' order
    assert len(summary) == 7 + 7  # 7 methods, plus a mean row per method
    for m in methods:  # FID's features beside every method's scores (empty offline, without the Inception weights)
        assert (workflow_dir / "results" / "metrics" / "llff" / "fern" / f"{m}.inception.npz").exists()
    assert summary.psnr.between(5, 60).all() and summary.ssim.between(0, 1).all()
    assert set(summary[summary.method.str.startswith("sr2d")].kind) == {"2D"} and set(summary[summary.method == "isr"].kind) == {"3D"}
    # isr fits to SR images of every view, sr2d-realesrgan needs the test views only
    assert len(list((workflow_dir / "results" / "sr" / "llff" / "fern" / "tiny").glob("*.png"))) == 20
    assert len(list((workflow_dir / "results" / "sr" / "llff" / "fern" / "realesrgan").glob("*.png"))) == 3
    per_view = pd.read_csv(workflow_dir / "results" / "metrics" / "per_view.csv")
    assert sorted(per_view[(per_view.scene == "fern") & (per_view.method == "bicubic")].view) == ["IMG_4026", "IMG_4034", "IMG_4042"]
    assert (workflow_dir / "results" / "metrics" / "llff.md").read_text().count("| lr3dgs |") == 2
    assert (workflow_dir / "results" / "metrics" / "llff.md").read_text().count("| sr2d-realesrgan (2D) |") == 2
    # 3dsr: per-step table and plot, strips, and the consistency table beside isr's SR images
    for d, s in zip(table.dataset, table.scene):
        steps = pd.read_csv(workflow_dir / "results" / "gs" / d / s / "3dsr" / "steps.csv")
        assert list(steps.step) == [0, 1, 2, 3, 4] and list(steps.t[1:]) == [999, 666, 333, 0]
        assert (workflow_dir / "results" / "gs" / d / s / "3dsr" / "steps.png").stat().st_size > 0
        assert len(list((workflow_dir / "results" / "gs" / d / s / "3dsr" / "strips").glob("*.png"))) == 3
        assert not (workflow_dir / "results" / "gs" / d / s / "3dsr" / "state.pt").exists()
    consistency = pd.read_csv(workflow_dir / "results" / "metrics" / "consistency.csv")
    assert set(consistency.images) == {"ground truth", "bicubic", "isr: SR images", "3dsr: H, decoded x0", "3dsr: R, renders"}
    assert len(consistency) == 5 and consistency.l1.notna().all()
    assert "Multi-view consistency" in (workflow_dir / "results" / "metrics" / "llff.md").read_text()
    # SuperGaussian: 17 training cameras, 1 pose between each pair -> 33 frames, upsampled by the configured model
    frames = workflow_dir / "results" / "supergaussian" / "llff" / "fern" / "frames"
    assert len(list((frames / "hr").glob("*.png"))) == 33 and read_json(frames / "frames.json")["upsampler"] == "tiny"
    # one video per 3D method along the same path (the 17 training cameras alone), and all of them side by side: every frame decodes
    videos = workflow_dir / "results" / "videos" / "llff" / "fern"
    assert sorted(p.stem for p in videos.glob("*.mp4")) == sorted(["lr3dgs", "bicubic", "supergaussian", "isr", "3dsr", "side_by_side"])
    assert {p.stem: count_frames(p) for p in videos.glob("*.mp4")} == {p.stem: 17 for p in videos.glob("*.mp4")}
    assert read_mp4(videos / "side_by_side.mp4")[0][0].shape == (2 * 188, 3 * 252, 3)
    # the report: one self-contained page with every flagged result embedded
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--report", "results/report.html", *args], cwd=workflow_dir, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = (workflow_dir / "results" / "report.html").read_text()
    for category in ("Scores", "Test-view crops", "3DSR per step", "Fly-through videos", "3D viewer"):
        assert category in report
    # the viewer's static page: every 3D model's layer recorded in viser's client page
    page = (workflow_dir / "results" / "reports" / "viewer" / "llff_fern.html").read_text()
    assert "threedsr-scene.viser" in page and all(m in page[:3000] for m in ("lr3dgs", "supergaussian", "3dsr"))
    assert len(report) > sum(p.stat().st_size for p in videos.glob("*.mp4"))
    for d, s in zip(table.dataset, table.scene):
        assert Image.open(workflow_dir / "results" / "figures" / f"crops_{d}_{s}.png").width > 0
        ply = (workflow_dir / "results" / "gs" / d / s / "lr3dgs" / "point_cloud.ply").read_bytes()
        assert b"property float f_dc_0" in ply[:2000]

    # a killed or failed job's outputs are deleted by Snakemake; a plain rerun must redo it and everything downstream
    # (Snakemake does not rebuild a missing intermediate file whose dependents exist: rule all asks for every output)
    (workflow_dir / "results" / "gs" / "llff" / "fern" / "3dsr" / "ckpt.pt").unlink()
    dry = _snakemake(workflow_dir, "-n", *args)
    assert dry.returncode == 0 and "Nothing to be done" not in dry.stdout
    for rule in ("fit_3dsr", "render_test", "consistency", "aggregate_metrics", "crops_figure", "videos", "viewer_page"):
        assert f"rule {rule}:" in dry.stdout, rule

    # changed factors redo the downsampling only, not the poses (x4 kept: the SR models are x4)
    cfg["resolution"] = {"lr_factor": 32, "hr_factor": 8}
    dry = _snakemake(workflow_dir, "-n", "--configfile", "params.yaml", config_file(**cfg))
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0
    assert "prepare_scene" in out and "rule poses" not in out


def _copy_fern8(fern_dir, scene):
    """A user's copy of fern with the release's images_8/, poses and points."""
    scene.mkdir(parents=True)
    shutil.copytree(fern_dir / "images_8", scene / "images_8")
    shutil.copy(fern_dir / "poses_bounds.npy", scene)
    (scene / "sparse" / "0").mkdir(parents=True)
    shutil.copy(fern_dir / "sparse" / "0" / "points3D.bin", scene / "sparse" / "0")
    return scene


def test_a_failing_job_leaves_no_finished_looking_output(workflow_dir, config_file, fern_dir, tmp_path):
    root = tmp_path / "mydata"
    scene = _copy_fern8(fern_dir, root / "fern8")
    bad = scene / "images_8" / "image007.png"
    bad.write_bytes(bad.read_bytes()[:3000])
    cfg = {
        "datasets": {"synthetic": {"scenes": []}, "mine": {"root": str(root), "scenes": ["fern8"]}},
        "resolution": {"lr_factor": 64, "hr_factor": 16},
    }
    r = _snakemake(workflow_dir, "--configfile", "params.yaml", config_file(**cfg))
    assert r.returncode != 0
    log = (workflow_dir / "results" / "logs" / "prepare_scene" / "mine" / "fern8.log").read_text()
    assert "image007.png" in log and "Traceback" not in log
    assert not (workflow_dir / "results" / "scenes" / "mine" / "fern8").exists()
    assert not list((workflow_dir / "results" / "scenes" / "mine").glob(".fern8*"))


def _strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _strings(v)


def test_config_values_never_run_as_shell_code(workflow_dir, config_file, fern_dir, tmp_path, llff_root):
    """A root with spaces, non-ASCII letters, quotes and $(...) is a path like any other: the scene is found and
    prepared, and nothing in it runs. The same for every other path that reaches a command (here LPIPS' weights)."""
    import shlex

    root = tmp_path / "my data é \"q\" 'x' $(touch PWNED) `touch PWNED2`"
    _copy_fern8(fern_dir, root / "fern")
    weights = tmp_path / "alex $(touch PWNED_LPIPS).pth"
    weights.write_bytes(b"")  # only its name matters here: the config check wants a file
    cfg = {
        "datasets": {"synthetic": {"scenes": []}, "llff": {"root": str(root), "scenes": ["fern"]}},
        "resolution": {"lr_factor": 64, "hr_factor": 16},
        "metrics": {"lpips_backbone": str(weights)},
    }
    args = ["--configfile", "params.yaml", config_file(**cfg)]
    r = _snakemake(workflow_dir, "results/scenes/llff/fern", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_json(workflow_dir / "results" / "scenes" / "llff" / "fern" / "scene.json")["num_views"] == 20
    # every command the workflow would run: each path is one argument, as written
    dry = _snakemake(workflow_dir, "-n", "--printshellcmds", "--forceall", *args)
    assert dry.returncode == 0, dry.stderr[-3000:]
    commands = [ln for ln in dry.stdout.splitlines() if "python -m threedsr" in ln]
    assert len(commands) > 10
    arguments = {a for c in commands for a in shlex.split(c)}
    # config values travel inside the one JSON argument (--params): whole, as written
    in_json = {v for a in arguments if a.startswith("{") for v in _strings(json.loads(a))}
    assert str(weights) in in_json and f"{root}/fern" in arguments | in_json, sorted(in_json)
    for where in (workflow_dir, tmp_path, root, root / "fern"):
        assert not list(where.glob("PWNED*")), where


def test_a_job_whose_shell_is_killed_stops_too(tmp_path, small_scene_and_lr_model):
    """Ctrl-C to Snakemake kills a job's shell; the Python under it ran on until its own PID was killed. Now it gets
    SIGTERM when its parent goes, and exits as on SIGTERM (its temporary files removed)."""
    import json
    import signal
    import time

    scene, lr_ckpt = small_scene_and_lr_model
    params = {"gs": {**yaml.safe_load((REPO / "params.yaml").read_text())["gs"], "iterations": 10**6}, "device": "cpu"}
    fit = f"{sys.executable} -m threedsr fit --scene {scene} --out {tmp_path / 'out'} --targets lr --params '{json.dumps(params)}'"
    shell = subprocess.Popen(["bash", "-c", f"{fit} > {tmp_path / 'log'} 2>&1 & echo $! > {tmp_path / 'pid'}; wait"])
    deadline = time.time() + 60
    while not (tmp_path / "log").exists() or "fit" not in (tmp_path / "log").read_text():  # training has started
        assert time.time() < deadline, "the fit did not start"
        time.sleep(0.5)
    pid = int((tmp_path / "pid").read_text())
    shell.send_signal(signal.SIGKILL)
    shell.wait()
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the job's Python outlived its shell by 20 s")
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_the_prior_is_retrained_when_params_ask_and_a_wrong_prior_path_runs_nothing(workflow_dir, config_file, tmp_path):
    """sr.tiny.path: results/models/tiny retrains the shipped prior (train_prior, on sr.tiny.photos less every 16th),
    and the SR jobs then read it; a folder that does not exist is one error naming the key, before any job."""
    from threedsr.data.photos import load_photo

    photos = tmp_path / "photos $(touch PWNED)"  # a path like any other
    photos.mkdir()
    for name in ("camera", "coins", "rocket"):
        Image.fromarray(load_photo(f"skimage:{name}")).save(photos / f"{name}.png")
    tiny = {"path": "results/models/tiny", "photos": str(photos), "iterations": 2, "batch_size": 2, "patch": 8}
    args = ["--configfile", "params.yaml", config_file(scene=True, sr={"tiny": {**tiny, "block_out_channels": [16, 32]}})]
    r = _snakemake(workflow_dir, "results/models/tiny", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    info = read_json(workflow_dir / "results/models/tiny/tiny_sr.json")
    assert info["training"]["photos"] == ["coins.png", "rocket.png"] and info["training"]["config"]["iterations"] == 2
    dry = _snakemake(workflow_dir, "-n", "--printshellcmds", "results/sr/synthetic/forward/tiny", *args)
    assert "--model-path results/models/tiny" in dry.stdout, dry.stdout[-3000:]
    assert not list(tmp_path.glob("PWNED*")) and not list(workflow_dir.glob("PWNED*"))

    args = ["--configfile", "params.yaml", config_file(scene=True, sr={"tiny": {"path": "my-prior"}})]
    r = _snakemake(workflow_dir, "all", *args)
    assert r.returncode != 0 and "sr.tiny.path (my-prior) is not a folder" in r.stdout + r.stderr
    assert not (workflow_dir / "results/scenes").exists() and not (workflow_dir / "results/raw").exists()
