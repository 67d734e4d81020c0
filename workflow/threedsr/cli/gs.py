"""3D Gaussian splatting commands: fitting a model to a scene's targets, rendering its test views."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .base import command, params_argument, params_device, path_arguments, score_arguments, score_if_asked

log = logging.getLogger("threedsr")


def _fit_arguments(c):
    path_arguments(c, "--scene", "--out")
    c.add_argument(
        "--targets",
        choices=["lr", "method", "sr", "frames"],
        required=True,
        help="lr: pretrain_lr; method: the HR targets of --method (bicubic, ...); sr: isr (with --sr-dir); "
        "frames: supergaussian (with --frames-dir)",
    )
    c.add_argument("--method", help="--targets method: a method whose registry entry names its targets (`targets`)")
    c.add_argument("--sr-dir", type=Path, help="SR images of the training views (--targets sr), <view>.png")
    c.add_argument("--frames-dir", type=Path, help="SuperGaussian's upsampled trajectory frames (--targets frames)")
    c.add_argument("--init", type=Path, help="start from this checkpoint's Gaussians")
    params_argument(c)


@command("fit", "fit 3DGS to a scene's LR views, a method's HR targets, their SR images or SuperGaussian's frames", _fit_arguments)
def _fit(a):
    from ..data.scene import PreparedScene
    from ..methods.fit import fit, hr_lr_loss, train_config
    from ..methods.registry import hr_iterations, of
    from ..methods.training_views import frame_views, lr_views, method_views, sr_views

    p, scene = a.params, PreparedScene(a.scene)
    # each target's budget and loss weight, from the block params.yaml keeps them in
    if a.targets == "lr":
        cfg = train_config(p.gs)
        views, loss_fn = lr_views(scene), None
    elif a.targets == "method":
        if a.method is None or not of(a.method).targets:
            raise SystemExit("threedsr fit: --targets method needs --method, a method whose registry entry has `targets`")
        cfg = train_config(p.gs, of(a.method).hr_budget.steps(p.raw))
        views, loss_fn = method_views(scene, a.method), None
    elif a.targets == "sr":
        if a.sr_dir is None:
            raise SystemExit("threedsr fit: --targets sr needs --sr-dir")
        cfg = train_config(p.gs, hr_iterations(p.raw, "isr"))
        views, loss_fn = sr_views(scene, a.sr_dir), hr_lr_loss(p.threedsr.lambda_lr, cfg.delta_dssim)
    else:
        if a.frames_dir is None:
            raise SystemExit("threedsr fit: --targets frames needs --frames-dir")
        cfg = train_config(p.gs, hr_iterations(p.raw, "supergaussian"))
        lam = p.supergaussian.lambda_lr
        views, loss_fn = frame_views(scene, a.frames_dir, lam), hr_lr_loss(lam, cfg.delta_dssim)
    every = int(os.environ.get("THREEDSR_CHECKPOINT_EVERY", 1000))  # steps between resume points (the fault tests: fewer)
    trainer = fit(a.scene, a.out, cfg, views, params_device(p), init=a.init, checkpoint_every=every, loss_fn=loss_fn)
    log.info("%s: %d steps on %s targets, %d Gaussians", a.out, trainer.step, a.targets, len(trainer.params["means"]))


def _render_arguments(c):
    path_arguments(c, "--ckpt", "--scene", "--out")
    score_arguments(c)


@command("render", "render a checkpoint at the test views (HR colour and depth), and score them", _render_arguments)
def _render(a):
    from ..metrics.scoring import render_test_views

    render_test_views(a.ckpt, a.scene, a.out, params_device(a.params))
    score_if_asked(a, a.out)
