"""3DSR step by step on a finished run: the kept training views' SR estimate H and render R after every diffusion step,
scored against their HR ground truth (PSNR, LPIPS-Alex), beside the same views' bicubic upsampling and per-image SR
(isr's targets). Where does LPIPS go between steps: into H (the prior's estimate) or into R (the 3D fit)?

    python benchmarks/threedsr_steps.py results --lpips ../shared/weights/lpips/alexnet_features.pth

Reads results/gs/<dataset>/<scene>/3dsr/steps/NN/<view>_{H,R}.png (the views fit_3dsr keeps), the prepared scene's
hr/ and lr/ images and results/sr/<dataset>/<scene>/<model>/ (isr's SR images); prints one table per scene.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from threedsr.imaging import to_float, upsample  # noqa: E402
from threedsr.io import read_image  # noqa: E402
from threedsr.metrics.image import load_lpips, lpips_distance, psnr  # noqa: E402


def score(img: np.ndarray, gt: np.ndarray, lpips) -> tuple[float, float]:
    a, b = to_float(img), to_float(gt)
    return float(psnr(a, b)), lpips_distance(lpips, a, b)


def scene_table(results: Path, dataset: str, scene: str, method: str, sr_model: str, lpips) -> list[str]:
    fit = results / "gs" / dataset / scene / method
    prepared = results / "scenes" / dataset / scene
    steps = sorted((fit / "steps").glob("[0-9][0-9]"))
    kept = [{p.name[: -len("_H.png")] for p in s.glob("*_H.png")} for s in steps]
    views = sorted(set.intersection(*kept))  # the views kept at every step
    rows = {}
    for v in views:
        gt = read_image(prepared / "hr" / f"{v}.png")
        lr = to_float(read_image(prepared / "lr" / f"{v}.png")).permute(2, 0, 1)[None]
        scale = gt.shape[0] // lr.shape[2]
        bicubic = (upsample(lr, scale)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        rows.setdefault("bicubic", []).append(score(bicubic, gt, lpips))
        sr = results / "sr" / dataset / scene / sr_model / f"{v}.png"
        if sr.is_file():
            rows.setdefault(f"per-image SR ({sr_model}, isr's target)", []).append(score(read_image(sr), gt, lpips))
        for s in steps:
            rows.setdefault(f"step {int(s.name)}: H", []).append(score(read_image(s / f"{v}_H.png"), gt, lpips))
            rows.setdefault(f"step {int(s.name)}: R", []).append(score(read_image(s / f"{v}_R.png"), gt, lpips))
    out = [f"### {dataset}/{scene} ({method}; training views {', '.join(views)}, against their HR ground truth)", ""]
    out += ["| images | PSNR | LPIPS-Alex |", "|---|---|---|"]
    for name, values in rows.items():
        p, lp = np.mean(values, axis=0)
        out.append(f"| {name} | {p:.2f} | {lp:.4f} |")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--lpips", type=Path, required=True, help="AlexNet backbone weights (../shared/weights/lpips/alexnet_features.pth)")
    ap.add_argument("--method", default="3dsr")
    ap.add_argument("--sr-model", default="tiny")
    a = ap.parse_args()
    lpips = load_lpips(a.lpips, fetch=False)
    for fit in sorted((a.results / "gs").glob(f"*/*/{a.method}/steps")):
        dataset, scene = fit.parts[-4], fit.parts[-3]
        print("\n".join(scene_table(a.results, dataset, scene, a.method, a.sr_model, lpips)))


if __name__ == "__main__":
    main()
