"""The workflow through a real SLURM cluster: Snakemake's SLURM executor with workflow/profiles/slurm.

Runs against the single-node cluster of `.ci/slurm-cluster up` (partitions `cpu` and `gpu`, one fake GPU,
accounting in slurmdbd); `.ci/run` starts it before the tests and stops it afterwards. Skipped where
SLURM is absent or down, failed instead in CI (CI=true). A few minutes: `pytest -m slurm -s` prints the
time of each step.
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)  # `python -m threedsr` in the jobs is this environment's, as locally
ACCOUNT = "threedsr"  # the account .ci/slurm-cluster creates (root's default account stays `root`)

# test-only: poll a cluster whose jobs last seconds every second (the profile polls once a minute)
FAST_POLLING = [
    "--seconds-between-status-checks",
    "1",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--max-status-checks-per-second",
    "10",
    "--latency-wait",
    "5",
]
LIMIT = 600  # seconds for any one snakemake run: a hang fails the test, not CI


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; in CI, .ci/run starts the local cluster (.ci/slurm-cluster up) before the tests")
    pytest.skip(reason)


def _query(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def cluster():
    for tool in ("sbatch", "sacct", "sinfo", "squeue", "timeout"):
        if shutil.which(tool) is None:
            _unavailable(f"`{tool}` not found: no SLURM here (.ci/slurm-cluster up installs and starts a local cluster)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        _unavailable("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=15)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes", "-o", "JobID"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        nodes = acct = None
    if nodes is None or nodes.returncode != 0 or acct.returncode != 0:
        _unavailable("no SLURM cluster answers (sinfo/sacct failed; .ci/slurm-cluster up starts the local one)")
    states = [line.split() for line in nodes.stdout.splitlines()]
    usable = {p.rstrip("*") for p, s in states if s.rstrip("*~#$@") in ("idle", "mixed", "allocated", "completing")}
    if not {"cpu", "gpu"} <= usable:
        _unavailable(f"the cluster lacks usable partitions `cpu` and `gpu` (sinfo: {nodes.stdout.strip()})")


def _snakemake(*args: str) -> list[str]:
    return ["timeout", "-k", "20", str(LIMIT), sys.executable, "-m", "snakemake", *args]


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _start(cwd: Path, cmd: list[str], log: Path, procs: list) -> subprocess.Popen:
    """A snakemake run in the background, its output in `log`; `procs` (the `background` fixture) stops it
    if the test ends first."""
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=_env())
    procs.append(p)
    return p


def _run(cwd: Path, cmd: list[str], log: Path, procs: list) -> tuple[int, str, float]:
    t = time.perf_counter()
    rc = _start(cwd, cmd, log, procs).wait(timeout=LIMIT + 60)
    return rc, log.read_text(), time.perf_counter() - t


def _dag_jobs(workdir: Path, *configfiles: str) -> tuple[dict[str, dict], set[str]]:
    """Every job of the DAG (but `all`), by the comment the SLURM executor gives it (rule, threads, mem_mb,
    runtime, gpu as the rule declares them: no default resources here), and every rule of the workflow."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        # nodes, not cores: as on a cluster, threads are not scaled down to this machine's cores
        settings = ConfigSettings(configfiles=[workdir / f for f in configfiles])
        wf = api.workflow(ResourceSettings(nodes=100), settings, snakefile=workdir / "Snakefile", workdir=workdir)
        wf.dag(DAGSettings(forceall=True))
        w = wf._workflow  # Snakemake has no public API listing a DAG's jobs (as threedsr.dvc_stages)
        w._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        w._build_dag()
        jobs = {}
        for j in w.dag.jobs:
            if j.rule.name == "all":
                continue
            values = "_".join(j.wildcards).replace("/", "_")
            comment = f"rule_{j.rule.name}" + (f"_wildcards_{values}" if values else "")
            jobs[comment] = {"rule": j.rule.name, "threads": j.threads, **{k: j.resources.get(k) for k in ("mem_mb", "runtime", "gpu")}}
        rules = {r.name for r in w.rules} - {"all"}
    return jobs, rules


def test_every_rule_declares_what_a_cluster_job_asks_for(workflow_dir):
    """threads, mem_mb, runtime (minutes) and gpu (0 or 1) in every rule, so no job runs on the profile's defaults."""
    weights = workflow_dir / "weights"  # the paper preset checks that the StableSR checkpoints exist
    weights.mkdir()
    for name in ("stablesr_turbo.ckpt", "vqgan_cfw_00011.ckpt"):
        (weights / name).touch()
    (workflow_dir / "paper.yaml").write_text(
        yaml.safe_dump(
            {"sr": {"stablesr_turbo": {"weights_dir": str(weights)}}, "datasets": {"llff": {"root": str(workflow_dir / "no-data")}}}
        )
    )
    (workflow_dir / "retrain.yaml").write_text(yaml.safe_dump({"sr": {"tiny": {"path": "results/models/tiny"}}}))
    default, rules = _dag_jobs(workflow_dir, "params.yaml")
    paper, _ = _dag_jobs(workflow_dir, "params.yaml", "workflow/presets/paper-llff.yaml", "paper.yaml")
    retrain, _ = _dag_jobs(workflow_dir, "params.yaml", "retrain.yaml")  # the shipped prior retrained, its photos downloaded
    jobs = {**default, **paper, **retrain}
    assert {j["rule"] for j in jobs.values()} == rules  # the three DAGs hold every rule (downloads included)
    for job in jobs.values():
        assert isinstance(job["mem_mb"], int) and job["mem_mb"] > 0, job
        assert isinstance(job["runtime"], int) and job["runtime"] > 0, job
        assert job["gpu"] in (0, 1) and job["threads"] >= 1, job


def _run_id(log: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", log)
    assert m, log[-3000:]
    return m.group(1)


def _tres(text: str) -> dict[str, float]:
    """'billing=2,cpu=2,gres/gpu=1,mem=8000M,node=1' -> {'cpu': 2, 'gres/gpu': 1, 'mem': 8000 (MB), ...}"""
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=", 1)
        if key == "mem":
            value = float(value[:-1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[value[-1]]
        out[key] = float(value)
    return out


def _minutes(limit: str) -> int:
    days, _, hms = limit.rpartition("-")
    h, m, _ = (["0"] * 3 + hms.split(":"))[-3:]
    return int(days or 0) * 1440 + int(h) * 60 + int(m)


def _sacct(run_id: str) -> list[dict]:
    fields = ["JobID", "Comment", "Partition", "Account", "State", "ReqTRES", "AllocTRES", "Timelimit", "ExitCode"]
    text = _query("sacct", "-X", "-P", "-n", f"--name={run_id}", "-S", "now-1days", "-E", "now", "-o", ",".join(fields))
    return [dict(zip(fields, line.split("|"))) for line in text.splitlines() if line]


def _settled(run_id: str) -> list[dict]:
    """The run's jobs once none is pending or running any more (a killed run's jobs must have been cancelled)."""
    deadline = time.monotonic() + 60
    while True:
        rows = _sacct(run_id)
        if all(r["State"] not in ("PENDING", "RUNNING", "COMPLETING") for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def _child(pid: int) -> int:
    """The process `timeout` runs."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _tree(root: Path) -> dict[str, str]:
    """Checksums of the results (logs aside). A checkpoint (torch zip) names its temporary file inside, so
    it is compared by content: every tensor's bytes and every other value."""
    import torch

    out = {}
    for p in sorted((root / "results").rglob("*")):
        if not p.is_file() or p.relative_to(root / "results").parts[0] == "logs":
            continue
        h = hashlib.sha256()
        if p.suffix == ".pt":

            def feed(x):
                if torch.is_tensor(x):
                    h.update(f"{x.dtype}{tuple(x.shape)}".encode() + x.contiguous().numpy().tobytes())
                elif isinstance(x, dict):
                    for k in sorted(x, key=str):
                        h.update(repr(k).encode())
                        feed(x[k])
                elif isinstance(x, (list, tuple)):
                    for v in x:
                        feed(v)
                else:
                    h.update(repr(x).encode())

            feed(torch.load(p, map_location="cpu", weights_only=False))
        else:
            h.update(p.read_bytes())
        out[str(p.relative_to(root))] = h.hexdigest()
    return out


@pytest.fixture
def background():
    """Snakemake runs started in the background; whatever still runs when the test ends is interrupted
    (Ctrl-C: Snakemake cancels its SLURM jobs), all at once, then killed with its process group (`timeout`
    leads one: itself, Snakemake and the jobs' local processes)."""
    procs = []
    yield procs
    running = [p for p in procs if p.poll() is None]
    for p in running:
        try:
            os.kill(_child(p.pid), signal.SIGINT)
        except (OSError, AssertionError):
            pass
    for p in running:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.slurm
@pytest.mark.slow
def test_the_workflow_through_slurm(cluster, workflow_dir, tiny_config, tmp_path_factory, background):
    times = {}
    (workflow_dir / "test.yaml").write_text(yaml.safe_dump(tiny_config(scene=True, methods=["lr3dgs"])))
    config = ["--configfile", "params.yaml", "test.yaml"]

    # the reference: the same configuration run locally, alongside the cluster runs (they mostly wait)
    local = tmp_path_factory.mktemp("local")
    shutil.copytree(workflow_dir, local, dirs_exist_ok=True)
    t_start = time.perf_counter()
    local_run = _start(local, _snakemake("--cores", "2", *config), local / "run.log", background)

    # the user's profile as a user edits it: only the account
    profile = workflow_dir / "slurm-profile"
    shutil.copytree(REPO / "workflow" / "profiles" / "slurm", profile)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["default-resources"]["slurm_account"] = ACCOUNT
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    slurm = ["--workflow-profile", str(profile), *FAST_POLLING, *config]
    expected, _ = _dag_jobs(workflow_dir, "params.yaml", "test.yaml")
    assert {j["gpu"] for j in expected.values()} == {0, 1}, "the configuration must have CPU and GPU jobs"

    # 1. a run killed (Ctrl-C) once the LR pretraining has finished: its queued jobs are cancelled
    t = time.perf_counter()
    log1 = workflow_dir / "run1.log"
    run1 = _start(workflow_dir, _snakemake(*slurm), log1, background)
    deadline = time.monotonic() + LIMIT

    def pretrained_and_no_submission_in_flight(text: str) -> bool:
        # the interrupt must not land while sbatch runs: a job submitted after the cancellation would be left running
        # (the jobs that follow pretrain_lr are started, and every started job has been submitted)
        done = re.search(r"Finished jobid: \d+ \(Rule: pretrain_lr\)", text)
        started = len(re.findall(r"^rule \w+:$", text, re.M))
        return bool(done and re.search(r"^rule \w+:$", text[done.end() :], re.M)) and started == text.count("has been submitted")

    while not pretrained_and_no_submission_in_flight(log1.read_text()):
        assert run1.poll() is None, f"the first run ended before pretrain_lr finished:\n{log1.read_text()[-5000:]}"
        assert time.monotonic() < deadline, "pretrain_lr did not finish"
        time.sleep(0.2)
    os.kill(_child(run1.pid), signal.SIGINT)
    assert run1.wait(timeout=120) != 0
    times["run 1 (killed after pretrain_lr)"] = time.perf_counter() - t
    ckpt = workflow_dir / "results/gs/synthetic/forward/lr3dgs/ckpt.pt"
    ckpt_mtime = ckpt.stat().st_mtime_ns
    first = _settled(_run_id(log1.read_text()))
    assert {r["State"].split()[0] for r in first} <= {"COMPLETED", "CANCELLED"}, first
    done_first = {r["Comment"] for r in first if r["State"] == "COMPLETED"}
    assert {f"rule_{r}_wildcards_synthetic_forward" for r in ("poses", "prepare_scene", "pretrain_lr")} <= done_first

    # 2. the restart, with one job made to fail: a test view's ground truth truncated, so that render_test
    # writes its renders and then fails scoring them
    scene = workflow_dir / "results/scenes/synthetic/forward"
    test_view = next(v["name"] for v in json.loads((scene / "scene.json").read_text())["views"] if v["split"] == "test")
    truth = scene / "hr" / f"{test_view}.png"
    good = truth.read_bytes()
    truth.write_bytes(good[: len(good) // 2])
    rc, out2, times["run 2 (restart, render_test fails)"] = _run(workflow_dir, _snakemake(*slurm), workflow_dir / "run2.log", background)
    assert rc != 0
    rule_log = "results/logs/render_test/synthetic/forward/lr3dgs.log"
    m = re.search(r"Error in rule render_test:.*?log: (\S+), (\S+/slurm_logs/\S+\.log) \(check log", out2, re.S)
    assert m and m.group(1) == rule_log, out2[-5000:]
    assert Path(m.group(2)).is_file()  # the SLURM job's own log is kept when it fails
    assert f"{test_view}.png" in (workflow_dir / rule_log).read_text() and "Traceback" not in (workflow_dir / rule_log).read_text()
    renders, scores = (
        workflow_dir / "results/renders/synthetic/forward/lr3dgs",
        workflow_dir / "results/metrics/synthetic/forward/lr3dgs.csv",
    )
    assert not renders.exists() and not scores.exists()
    for folder in (renders.parent, scores.parent):
        assert not (folder.exists() and [p for p in folder.iterdir() if p.name.startswith(".lr3dgs")])
    second = _settled(_run_id(out2))
    assert {r["Comment"]: r["State"] for r in second}["rule_render_test_wildcards_synthetic_forward_lr3dgs"] == "FAILED"
    assert ckpt.stat().st_mtime_ns == ckpt_mtime

    # 3. the cause repaired, the rest runs; then 4. nothing is left to do
    truth.write_bytes(good)
    rc, out3, times["run 3 (the rest)"] = _run(workflow_dir, _snakemake(*slurm), workflow_dir / "run3.log", background)
    assert rc == 0, out3[-5000:]
    third = _settled(_run_id(out3))
    rc, out4, times["run 4 (nothing to do)"] = _run(workflow_dir, _snakemake(*slurm), workflow_dir / "run4.log", background)
    assert rc == 0 and "Nothing to be done" in out4 and "has been submitted" not in out4, out4[-3000:]
    assert ckpt.stat().st_mtime_ns == ckpt_mtime

    # every job ran to completion exactly once over the runs (a finished job never ran again), and asked
    # SLURM for its rule's resources: GPU rules one GPU in the gpu partition, the others the cpu partition
    rows = first + second + third
    completed = [r["Comment"] for r in rows if r["State"] == "COMPLETED"]
    assert sorted(completed) == sorted(expected), (sorted(completed), sorted(expected))
    for r in rows:
        job = expected[r["Comment"]]
        req = _tres(r["ReqTRES"])
        got = {
            "partition": r["Partition"],
            "account": r["Account"],
            "cpus": req["cpu"],
            "mem_mb": req["mem"],
            "gpus": req.get("gres/gpu", 0),
            "minutes": _minutes(r["Timelimit"]),
        }
        want = {
            "partition": "gpu" if job["gpu"] else "cpu",
            "account": ACCOUNT,
            "cpus": job["threads"],
            "mem_mb": job["mem_mb"],
            "gpus": job["gpu"],
            "minutes": job["runtime"],
        }
        assert got == want, (r, job)
        if r["State"] in ("COMPLETED", "FAILED"):
            assert _tres(r["AllocTRES"]).get("gres/gpu", 0) == job["gpu"], r

    # the cluster's results are the local run's, bit for bit
    assert local_run.wait(timeout=LIMIT + 60) == 0, (local / "run.log").read_text()[-5000:]
    elapsed = re.search(r"Elapsed time: (\d+):(\d+):(\d+)", (local / "run.log").read_text())
    times["local run (alongside run 1)"] = int(elapsed[1]) * 3600 + int(elapsed[2]) * 60 + int(elapsed[3])
    times["all of it"] = time.perf_counter() - t_start
    there, here = _tree(workflow_dir), _tree(local)
    assert "results/metrics/per_view.csv" in here and len(here) > 50
    assert sorted(there) == sorted(here)
    assert [f for f in here if there[f] != here[f]] == []
    print("\n".join(f"{k}: {v:.1f} s" for k, v in times.items()))
