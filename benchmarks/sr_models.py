"""Per-image SR quality on a prepared scene: bicubic vs an SR model, one-pass and sampled.

    python benchmarks/sr_models.py results/scenes/llff/fern --model tiny [--path results/models/tiny] \
        [--lpips ../shared/...alexnet.pth] [--views test|all]

(tiny without --path: the prior the package ships.)

Prints a markdown table (PSNR / SSIM / LPIPS against the HR views, seconds per view). "one-pass" is
x̂0 predicted once from the start latent (1 step); "sampler" runs `--steps` steps with DDIM at η=0 and η=1
and with the DDPM posterior update. Every view has its own seed, as in the pipeline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from threedsr.data.scene import PreparedScene
from threedsr.imaging import to_float, upsample
from threedsr.metrics.image import image_metrics, load_lpips
from threedsr.sr.load import load_sr_model
from threedsr.sr.sampling import SamplerConfig, view_seeds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scene")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--path", default=None)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--views", choices=["test", "all", "train"], default="all")
    ap.add_argument("--lpips", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    scene = PreparedScene(args.scene)
    views = {"test": scene.test_views, "train": scene.train_views, "all": scene.views}[args.views]
    lr = torch.stack([to_float(scene.image(v, "lr")).permute(2, 0, 1) for v in views])
    hr = [to_float(scene.image(v, "hr")) for v in views]
    seeds = view_seeds(args.seed, [v.name for v in views])
    model = load_sr_model(args.model, {"path": args.path} if args.path else {}, torch.device("cpu"))
    lpips = load_lpips(args.lpips) if args.lpips else None
    runs = {"bicubic": lambda: upsample(lr, 4)}
    if model.is_diffusion:
        runs["one-pass (1 step)"] = lambda: model.super_resolve(lr, SamplerConfig(steps=1), seeds)
        for eta in (0.0, 1.0):
            runs[f"sampler {args.steps} steps, DDIM η={eta:g}"] = lambda eta=eta: model.super_resolve(
                lr, SamplerConfig(steps=args.steps, eta=eta), seeds
            )
        runs[f"sampler {args.steps} steps, DDPM posterior"] = lambda: model.super_resolve(
            lr, SamplerConfig(steps=args.steps, update="ddpm_posterior"), seeds
        )
    else:
        runs[model.name] = lambda: model.super_resolve(lr, SamplerConfig(), seeds)
    print(f"{args.scene}: {len(views)} {args.views} views, LR {tuple(lr.shape[-2:])}, model {model.name}")
    print("| method | PSNR | SSIM | LPIPS | s/view |\n|---|---|---|---|---|")
    for name, fn in runs.items():
        t0 = time.perf_counter()
        out = fn()
        dt = (time.perf_counter() - t0) / len(views)
        m = [image_metrics(o.permute(1, 2, 0), h, lpips) for o, h in zip(out, hr)]
        avg = {k: float(np.mean([r[k] for r in m])) for k in m[0]}
        print(f"| {name} | {avg['psnr']:.2f} | {avg['ssim']:.3f} | {avg['lpips']:.3f} | {dt:.3f} |")


if __name__ == "__main__":
    main()
