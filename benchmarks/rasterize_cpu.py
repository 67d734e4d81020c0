"""Time forward+backward of the CPU rasterizer on one view of a prepared scene.

    python benchmarks/rasterize_cpu.py results/scenes/llff/fern [--ckpt results/gs/llff/fern/bicubic/ckpt.pt] [--gaussians 20000] [--runs 7]

With --ckpt, the Gaussians of a fitted model (randomly subsampled to --gaussians if it has more;
SH colours of its degree). Otherwise they are initialised from the scene's points as 3DGS does
(each point repeated with a small jitter up to --gaussians, isotropic scales from the mean
distance to the 3 nearest neighbours, random rotations), with opacities drawn from U(0.05, 0.95)
and random colours. The view is the first training view at HR. Prints the median of --runs timed runs after one warm-up (numba
compiles on first use and caches the machine code).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from threedsr.data.scene import PreparedScene
from threedsr.splat import gaussians
from threedsr.splat.render import RenderSettings, render
from threedsr.splat.trainer import load_params


def gaussians_from_points(xyz: np.ndarray, n: int, seed: int = 0) -> torch.nn.ParameterDict:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(xyz), n)
    d, _ = cKDTree(xyz).query(xyz, k=4)
    spacing = d[:, 1:].mean(axis=1)
    means = xyz[idx] + rng.normal(size=(n, 3)) * spacing[idx, None] * 0.5
    scales = np.repeat(spacing[idx, None], 3, axis=1)
    as_t = lambda a: torch.tensor(a, dtype=torch.float32)
    return torch.nn.ParameterDict(
        {
            "means": as_t(means),
            "quats": as_t(rng.normal(size=(n, 4))),
            "scales": as_t(np.log(scales)),
            "opacities": torch.logit(as_t(rng.uniform(0.05, 0.95, n))),
            "sh0": as_t(rng.uniform(-1, 1, (n, 1, 3))),
            "shN": torch.zeros(n, 0, 3),
        }
    )


def gaussians_from_checkpoint(path: str, n: int, seed: int = 0) -> tuple[torch.nn.ParameterDict, RenderSettings]:
    """n Gaussians of a fitted model (with its 3D filter, if it has one) and the settings it renders with."""
    params, ckpt = load_params(path)
    keep = torch.randperm(len(params["means"]), generator=torch.Generator().manual_seed(seed))[:n]
    return gaussians.from_state({k: v.detach()[keep] for k, v in params.items()}), RenderSettings.of(ckpt["config"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene")
    p.add_argument("--gaussians", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--ckpt", help="take the Gaussians of this fitted checkpoint")
    a = p.parse_args()

    scene = PreparedScene(a.scene)
    view = scene.train_views[0]
    if a.ckpt:
        params, settings = gaussians_from_checkpoint(a.ckpt, a.gaussians)
    else:
        params, settings = gaussians_from_points(scene.points()[0].astype(np.float64), a.gaussians), RenderSettings(0, "classic", 0.3)
    viewmat = torch.tensor(view.world_to_camera, dtype=torch.float32)[None]
    K = torch.tensor(view.hr.K, dtype=torch.float32)[None]
    target = torch.rand(1, view.hr.height, view.hr.width, 3)

    def step():
        t0 = time.perf_counter()
        img, _, info = render(
            params, viewmat, K, view.hr.width, view.hr.height, settings.sh_degree, settings.rasterize_mode, eps2d=settings.eps2d
        )
        t1 = time.perf_counter()
        (img - target).abs().mean().backward()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, info

    step()  # warm-up / compile
    fwd, bwd = [], []
    for _ in range(a.runs):
        f, b, info = step()
        fwd.append(f)
        bwd.append(b)
    visible = int((info["radii"] > 0).any(dim=-1).sum())
    total = [f + b for f, b in zip(fwd, bwd)]
    source = a.ckpt or "initialised from the scene's points"
    print(
        f"view {view.name} {view.hr.width}x{view.hr.height}, {len(params['means'])} Gaussians ({visible} in view) {source}, threads {torch.get_num_threads()}"
    )
    print(f"forward  median {statistics.median(fwd):.4f} s")
    print(f"backward median {statistics.median(bwd):.4f} s")
    print(f"fwd+bwd  median {statistics.median(total):.4f} s over {a.runs} runs")


if __name__ == "__main__":
    main()
