"""Does 3DSR's feedback help? 3DSR vs the same loop without feedback vs isr, with the SR double of the tests.

The double (tests/test_three_dsr.py: OracleSR) returns the Bayes posterior mean for a belief
"truth + this view's own structured error" drawn afresh per view and step. Three ways to use it,
each with the same number of 3DGS steps from the same LR model, on the synthetic forward scene
at LR 16x12 -> HR 64x48:
  3dsr         the loop as shipped: renders re-encoded and fed into x_t -> x_{t-1};
  no feedback  the same loop (rounds, densification, targets D(x̂0)) but x_{t-1} from the model's own x̂0;
  isr          per-image SR (the plain sampler), then one 3DGS fit of 4 x N steps densifying in its first half.
Prints PSNR on the training and test views of each final 3DGS, per budget N (3DGS steps per sampling step).

    python benchmarks/mechanism.py --iters 150 300 600
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow"), str(ROOT / "tests")]

from test_three_dsr import GS, OracleSR  # noqa: E402  (the double is a test fixture)

from threedsr.data import synthetic  # noqa: E402
from threedsr.data.poses import load_scene_poses  # noqa: E402
from threedsr.data.prepare import prepare_scene  # noqa: E402
from threedsr.data.scene import PreparedScene  # noqa: E402
from threedsr.imaging import to_float  # noqa: E402
from threedsr.io import read_image  # noqa: E402
from threedsr.methods.fit import fit, hr_lr_loss  # noqa: E402
from threedsr.methods.three_dsr import ThreeDSR, ThreeDSRConfig  # noqa: E402
from threedsr.methods.training_views import lr_views, sr_views  # noqa: E402
from threedsr.metrics.image import psnr  # noqa: E402
from threedsr.splat.render import RenderSettings, render_views  # noqa: E402
from threedsr.splat.trainer import TrainConfig, load_params  # noqa: E402
from threedsr.sr.run import super_resolve_scene  # noqa: E402
from threedsr.sr.sampling import SamplerConfig  # noqa: E402


class NoFeedback(ThreeDSR):
    """The 3DSR loop with the model's own D(x̂0) in place of the renders in the update."""

    def predict_hr(self, *args):
        hr, eps = super().predict_hr(*args)
        self._hr = hr
        return hr, eps

    def step_latents(self, x, eps_all, renders, noise, k):
        return super().step_latents(x, eps_all, self._hr, noise, k)


def scores(scene: PreparedScene, ckpt: Path) -> tuple[float, float]:
    params, _ = load_params(ckpt)
    out = []
    for views in (scene.train_views, scene.test_views):
        r, _ = render_views(params, views, RenderSettings.of(GS), "cpu")
        out.append(float(np.mean([psnr(a, to_float(scene.image(v, "hr"))) for a, v in zip(r, views)])))
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, nargs="+", default=[150, 300, 600])
    p.add_argument("--amplitude", type=float, default=0.3)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mechanism-"))
    synthetic.generate_scene("forward", tmp / "raw", 256, 192, 2, 1500, 0)
    prepare_scene(tmp / "raw", load_scene_poses(tmp / "raw", tmp / "work"), tmp / "scene", 16, 4, 8)
    scene = PreparedScene(tmp / "scene")
    fit(tmp / "scene", tmp / "lr3dgs", GS, lr_views(scene), torch.device("cpu"))
    lr_ckpt = tmp / "lr3dgs" / "ckpt.pt"
    model = OracleSR(scene, amplitude=a.amplitude)
    sampler = SamplerConfig(steps=4, update="ddim", eta=0.0)
    super_resolve_scene(tmp / "scene", model, sampler, tmp / "sr", batch_size=5)
    own = np.mean([psnr(to_float(read_image(tmp / "sr" / f"{v.name}.png")), to_float(scene.image(v, "hr"))) for v in scene.train_views])
    rows = []
    for n in a.iters:
        cfg = ThreeDSRConfig(sampler=sampler, iters_per_step=n, colorfix="none")
        for name, cls in (("3dsr", ThreeDSR), ("no feedback", NoFeedback)):
            cls(tmp / "scene", model, cfg, GS, lr_ckpt, tmp / f"{name}-{n}", torch.device("cpu"), batch_size=5).run()
            rows.append((n, name, *scores(scene, tmp / f"{name}-{n}" / "ckpt.pt")))
        isr_cfg = TrainConfig(**{**GS.__dict__, "iterations": 4 * n, "refine_start": n // 10, "refine_stop": 2 * n})
        fit(
            tmp / "scene",
            tmp / f"isr-{n}",
            isr_cfg,
            sr_views(scene, tmp / "sr"),
            torch.device("cpu"),
            init=lr_ckpt,
            loss_fn=hr_lr_loss(1.0, 0.2),
        )
        rows.append((n, "isr", *scores(scene, tmp / f"isr-{n}" / "ckpt.pt")))
    print(f"\nper-image SR of the training views: {own:.2f} dB (amplitude {a.amplitude})")
    print("| 3DGS steps per sampling step | method | train PSNR | test PSNR |\n|---|---|---|---|")
    for n, name, tr, te in rows:
        print(f"| {n} | {name} | {tr:.2f} | {te:.2f} |")


if __name__ == "__main__":
    main()
