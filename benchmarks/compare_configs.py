"""Run the pipeline under several configurations at once, one core each, and compare scores and rule times as ratios.

    python benchmarks/compare_configs.py --out /tmp/cmp off=off.yaml on=on.yaml \
        [--configfile params.yaml workflow/presets/cpu-llff.yaml my-paths.yaml] [--seed-models results/models]

Each NAME=OVERRIDE gets its own copy of the workflow under --out/NAME and runs `snakemake --cores 1` with
the --configfile files then OVERRIDE, all NAMEs at the same time: they share the machine alike, so their
wall times compare as ratios (2 cores: two configurations at once). --seed-models copies already trained
or converted models (the tiny prior, Real-ESRGAN) into each copy first, so no configuration spends its
time on them. Prints, in Markdown, every method's test-view scores per configuration and each rule's
wall time (summed over scenes, from the run's Snakemake log) with its ratio to the first configuration.
`--report-only NAME...` prints the same tables for copies already run (e.g. rescored afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rule_times import jobs, rule_times  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(REPO / name, dst / name)
    for sub in ("workflow/rules", "workflow/schemas", "workflow/presets", "workflow/report", "envs"):
        shutil.copytree(REPO / sub, dst / sub, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    # the package itself: this checkout's (the rules put <copy>/workflow first on PYTHONPATH)
    shutil.copytree(
        REPO / "workflow" / "threedsr", dst / "workflow" / "threedsr", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )


def run_log(work: Path) -> Path:
    """The copy's first Snakemake log: the run itself (later runs, e.g. rescoring with other weights, start no fits)."""
    return min((work / ".snakemake" / "log").glob("*.snakemake.log"))


def report(names: list[str], out: Path) -> None:
    """The scores (summary.csv, as last written) and each rule's wall time (the run's log) of every copy, in Markdown."""
    scores, times, walls = [], {}, {}
    for name in names:
        work = out / name
        s = pd.read_csv(work / "results" / "metrics" / "summary.csv").assign(config=name)
        scores.append(s[s.scene != "mean"])
        lines = run_log(work).read_text().splitlines()
        done = jobs(lines)
        times[name] = rule_times(lines)[0]
        walls[name] = (max(j["end"] for j in done) - min(j["start"] for j in done)).total_seconds()

    table = pd.concat(scores).pivot_table(
        index=["dataset", "scene", "method"], columns="config", values=["psnr", "ssim", "lpips"], dropna=False, sort=False
    )
    print(f"## Test-view scores ({', '.join(names)})\n")
    print("| dataset | scene | method | " + " | ".join(f"{metric} {n}" for metric in ("PSNR", "SSIM", "LPIPS") for n in names) + " |")
    print("|---" * (3 + 3 * len(names)) + "|")
    for (d, s, m), row in table.iterrows():
        cells = [f"{row[('psnr', n)]:.2f}" for n in names] + [f"{row[('ssim', n)]:.4f}" for n in names]
        cells += ["n/a" if pd.isna(row.get(("lpips", n))) else f"{row[('lpips', n)]:.3f}" for n in names]
        print(f"| {d} | {s} | {m} | " + " | ".join(cells) + " |")
    print(f"\n## Wall time, seconds (ratio to {names[0]}), one core each, run at the same time\n")
    print("| rule | " + " | ".join(names) + " |\n|---" * 1 + "|---" * len(names) + "|")
    first = times[names[0]]
    for rule in sorted(first, key=lambda r: -first[r]):
        cells = [
            f"{times[n].get(rule, 0):.0f} ({times[n].get(rule, 0) / first[rule]:.2f})" if first[rule] else f"{times[n].get(rule, 0):.0f}"
            for n in names
        ]
        print(f"| {rule} | " + " | ".join(cells) + " |")
    print(
        "| **whole run** (first job start to last job end) | "
        + " | ".join(f"{walls[n]:.0f} ({walls[n] / walls[names[0]]:.2f})" for n in names)
        + " |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", help="NAME=OVERRIDE.yaml (NAME alone with --report-only)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--configfile", nargs="+", default=["params.yaml"], help="config files before each override (relative to the repo)")
    p.add_argument("--seed-models", type=Path, help="a results/models folder to copy into each copy")
    p.add_argument("--report-only", action="store_true", help="only print the tables of copies already run under --out")
    a = p.parse_args()
    names = [spec.split("=", 1)[0] for spec in a.variants]
    if a.report_only:
        report(names, a.out)
        return

    procs = {}
    for spec in a.variants:
        name, override = spec.split("=", 1)
        work = a.out / name
        copy_workflow(work)
        shutil.copy(override, work / "override.yaml")
        configs = [str((REPO / c).resolve()) if not Path(c).is_absolute() else c for c in a.configfile]
        if a.seed_models:
            shutil.copytree(a.seed_models, work / "results" / "models", dirs_exist_ok=True)
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", *configs, "override.yaml"]
        log = open(work / "snakemake.out", "w")
        # the copy's package, also for the Snakefile's own imports (an installed threedsr would be this checkout's)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "workflow"), os.environ.get("PYTHONPATH")]))}
        procs[name] = (subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT), work)
    for name, (proc, work) in procs.items():
        if proc.wait():
            sys.exit(f"{name}: snakemake failed, see {work / 'snakemake.out'}")
    report(names, a.out)


if __name__ == "__main__":
    main()
