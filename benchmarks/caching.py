"""How long reruns take with DVC and Snakemake caching, on a copy of this project and its params.yaml.

    python benchmarks/caching.py [--params params.yaml] [--work /tmp/threedsr-caching]

Times, in one fresh copy: the first run (`dvc repro`), a no-op rerun (`snakemake --cores all`), a
rerun after changing threedsr.lambda_lr (`snakemake`), and going back to the first value (`dvc repro`
restoring from the run-cache, then `threedsr mark-current`). The default params take ~20 minutes
on 2 CPU cores. tests/test_dvc.py checks the same behaviours on a tiny config.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(cwd: Path, *cmd: str) -> tuple[str, float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout + r.stderr, time.perf_counter() - t


def jobs_ran(out: str) -> str:
    """Snakemake's "Job stats" table, as `rule x count, ...`."""
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return ", ".join(f"{m[1]} x{m[2]}" for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] != "all")


def set_lambda(repo: Path, value: float) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["threedsr"]["lambda_lr"] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--work", type=Path, default=Path("/tmp/threedsr-caching"))
    a = ap.parse_args()
    repo = a.work
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", repo)
    shutil.copy(a.params, repo / "params.yaml")
    for sub in ("workflow/rules", "workflow/schemas", "envs"):
        shutil.copytree(REPO / sub, repo / sub, ignore=shutil.ignore_patterns("__pycache__"))
    py = sys.executable
    for cmd in (["git", "init", "-q"], [py, "-m", "dvc", "init", "-q"], [py, "-m", "threedsr", "dvc-yaml"]):
        run(repo, *cmd)
    lam = yaml.safe_load((repo / "params.yaml").read_text())["threedsr"]["lambda_lr"]
    rows = []

    out, t = run(repo, py, "-m", "dvc", "repro")
    rows.append(("first run: dvc repro", t, f"{len(re.findall('Running stage', out))} stages ran"))
    out, t = run(repo, py, "-m", "snakemake", "--cores", "all")
    rows.append(("no-op rerun: snakemake --cores all", t, "nothing to do" if "Nothing to be done" in out else "RAN JOBS"))
    set_lambda(repo, lam / 2)
    out, t = run(repo, py, "-m", "snakemake", "--cores", "all")
    rows.append((f"threedsr.lambda_lr {lam} -> {lam / 2}: snakemake --cores all", t, "ran " + jobs_ran(out)))
    _, t = run(repo, py, "-m", "dvc", "commit", "-f")
    rows.append(("dvc commit -f (record Snakemake's run)", t, ""))
    set_lambda(repo, lam)
    out, t = run(repo, py, "-m", "dvc", "repro")
    rows.append(
        (
            f"back to lambda_lr {lam}: dvc repro",
            t,
            f"{out.count('is cached - skipping run')} stages restored from the run-cache, {len(re.findall('Running stage', out))} ran",
        )
    )
    _, t = run(repo, py, "-m", "threedsr", "mark-current")
    rows.append(("threedsr mark-current", t, ""))
    out, t = run(repo, py, "-m", "snakemake", "--cores", "all")
    rows.append(("snakemake --cores all", t, "nothing to do" if "Nothing to be done" in out else "RAN JOBS"))

    print("| step | seconds | |\n|---|---|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.1f} | {note} |")


if __name__ == "__main__":
    main()
