"""How much detail each method's test views carry: their mean gradient magnitude (grey levels, |∂x| + |∂y|) relative
to the ground truth's, per scene (1.00 = as much as the ground truth; bicubic and a blurry render sit well below).
A crude, reference-free companion to LPIPS for "is it sharper", which crops show and tables do not.

    python benchmarks/sharpness.py [RUN_DIR ...]     # a finished run's folder (default: .)

Reads results/renders/<dataset>/<scene>/<method>/<view>.png (the test views) and results/scenes/<dataset>/<scene>/hr/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def gradient_energy(path: Path) -> float:
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def scene_sharpness(run: Path, dataset: str, scene: str) -> dict[str, float]:
    renders = run / "results/renders" / dataset / scene
    hr = run / "results/scenes" / dataset / scene / "hr"
    views = sorted(p.name for p in (renders / "lr3dgs").glob("*.png") if not p.stem.endswith("_lr"))  # the test views
    truth = np.mean([gradient_energy(hr / v) for v in views])
    return {m.name: np.mean([gradient_energy(m / v) for v in views]) / truth for m in sorted(renders.iterdir()) if (m / views[0]).is_file()}


def main(runs: list[str]) -> None:
    for run in map(Path, runs or ["."]):
        for folder in sorted((run / "results/renders").glob("*/*")):
            dataset, scene = folder.parts[-2:]
            scores = scene_sharpness(run, dataset, scene)
            print(f"{run} {dataset}/{scene}: " + ", ".join(f"{m} {v:.2f}" for m, v in scores.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
