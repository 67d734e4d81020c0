"""CPU time the scoring jobs add per test view: NIQE of the render, Inception features of the render and of its
ground truth (FID), at the default synthetic HR size and others; and FID's exact low-rank trace against
scipy's sqrtm (pytorch-fid's / pyiqa's computation) for the few views of a scene.

    python benchmarks/metric_costs.py                 # sizes 192x144 (default HR), 96x72, 252x188 (fern, CPU preset)
    python benchmarks/metric_costs.py --sqrtm         # also the FID comparison (a 2048x2048 sqrtm: ~1 min)

Inception runs with random weights in the official layout (the same arithmetic as the real ones); NIQE with a
model fitted on bundled photos (the cost does not depend on the model's values).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["192x144", "96x72", "252x188"])
    p.add_argument("--threads", type=int, default=2, help="torch threads (render_test runs with 2)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sqrtm", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import warnings

    import skimage.data

    from threedsr.metrics import fid, niqe

    model = niqe.fit_model([skimage.data.chelsea(), skimage.data.rocket()])
    net = fid.FIDInceptionV3().eval()
    photo = skimage.data.astronaut()
    print(f"torch threads: {a.threads}; best of {a.repeat}")
    print("| HR size | NIQE (render) | Inception features (render + ground truth) | added per view |")
    print("|---|---|---|---|")
    for size in a.sizes:
        w, h = map(int, size.split("x"))
        img = np.ascontiguousarray(photo[:h, :w])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_niqe = best_of(lambda: model(img), a.repeat)
        fid.inception_features(net, [img, img])
        t_inc = best_of(lambda: fid.inception_features(net, [img, img]), a.repeat)
        print(f"| {w}x{h} | {1e3 * t_niqe:.0f} ms | {1e3 * t_inc:.0f} ms | {t_niqe + t_inc:.2f} s |")
    if a.sqrtm:
        rng = np.random.default_rng(0)
        base = rng.normal(size=(3, 2048))
        x, y = base + 0.3 * rng.normal(size=(3, 2048)), base + 0.3 * rng.normal(size=(3, 2048)) + 0.1
        t = time.perf_counter()
        ref = fid.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        ours = fid.fid(x, y)
        t_ours = time.perf_counter() - t
        print(
            f"FID of 3 vs 3 random 2048-d features: scipy sqrtm {ref:.6f} ({t_ref:.1f} s), exact low-rank {ours:.6f} "
            f"({1e3 * t_ours:.1f} ms), difference {abs(ref - ours):.2e}"
        )


if __name__ == "__main__":
    main()
