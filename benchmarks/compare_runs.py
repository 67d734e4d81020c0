"""Are two finished runs the same? The tables byte for byte, every 3DGS model's parameters (torch.equal) and every test
render's bytes: how a change that should change no result (a refactoring, a speed-up) is checked.
    python benchmarks/compare_runs.py RUN_A RUN_B      # each a project folder with results/ (e.g. two fresh clones' runs)
Exit status 0 when everything compared is identical.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args()
    a, b = args.a / "results", args.b / "results"
    different = 0
    for table in ("metrics/summary.csv", "metrics/per_view.csv"):
        same = (b / table).exists() and filecmp.cmp(a / table, b / table, shallow=False)
        different += not same
        print(f"{table}: {'identical' if same else 'DIFFERENT'}")
    models = sorted(a.glob("gs/*/*/*/ckpt.pt"))
    bad = []
    for ckpt in models:
        other = b / ckpt.relative_to(a)
        pa = torch.load(ckpt, weights_only=True)["params"]
        pb = torch.load(other, weights_only=True)["params"] if other.exists() else {}
        if pa.keys() != pb.keys() or not all(torch.equal(pa[k], pb[k]) for k in pa):
            bad.append(str(ckpt.relative_to(a)))
    renders = sorted(a.glob("renders/**/*.png"))
    differ = [r for r in renders if not (b / r.relative_to(a)).exists() or not filecmp.cmp(r, b / r.relative_to(a), shallow=False)]
    print(f"models: {len(models) - len(bad)}/{len(models)} identical{': ' + ', '.join(bad) if bad else ''}")
    print(f"test renders: {len(renders) - len(differ)}/{len(renders)} identical")
    return 1 if different or bad or differ else 0


if __name__ == "__main__":
    sys.exit(main())
