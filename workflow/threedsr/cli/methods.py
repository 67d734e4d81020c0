"""The methods' own commands: 3DSR's loop, SuperGaussian's frames, multi-view consistency."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import command, load_sr, params_argument, params_device, path_arguments, sampler_of, sr_model_arguments

log = logging.getLogger("threedsr")


def _run_3dsr_arguments(c):
    from ..sr.registry import DIFFUSION_MODELS

    path_arguments(c, "--scene", "--out")
    c.add_argument("--init", type=Path, required=True, help="the LR-pretrained 3DGS checkpoint")
    sr_model_arguments(c, DIFFUSION_MODELS)
    params_argument(c)


@command("run-3dsr", "the 3DSR stage: diffusion sampling and 3DGS fitting, interleaved", _run_3dsr_arguments)
def _run_3dsr(a):
    from ..methods.fit import train_config
    from ..methods.three_dsr import ThreeDSR, ThreeDSRConfig

    device = params_device(a.params)
    model, sr = load_sr(a, device)
    m = a.params.metrics  # LPIPS of the test views after each step
    run = ThreeDSR(
        a.scene,
        model,
        ThreeDSRConfig.from_block(a.params.threedsr),
        train_config(a.params.gs),
        a.init,
        a.out,
        device,
        sr.batch_size,
        m.lpips_backbone,
        m.fetch,
    )
    print(run.run().to_string(index=False))


def _supergaussian_frames_arguments(c):
    from ..sr.registry import UPSAMPLERS

    path_arguments(c, "--scene", "--out")
    c.add_argument("--ckpt", type=Path, required=True, help="the LR-pretrained 3DGS checkpoint")
    sr_model_arguments(c, UPSAMPLERS)
    params_argument(c)


@command(
    "supergaussian-frames",
    "SuperGaussian: render the LR model along a smooth path at LR and upsample the frames",
    _supergaussian_frames_arguments,
)
def _supergaussian_frames(a):
    from ..methods.supergaussian import make_frames

    device = params_device(a.params)
    model, sr = load_sr(a, device)
    make_frames(a.scene, a.ckpt, a.out, a.params.supergaussian.n_interp, model, sampler_of(a), sr.batch_size, device)


def _consistency_arguments(c):
    path_arguments(c, "--scene", "--out")
    c.add_argument("--depth-ckpt", type=Path, required=True, help="3DGS checkpoint whose HR depth is the shared geometry")
    c.add_argument(
        "--images", nargs="+", required=True, help="LABEL=FOLDER of <view>.png; FOLDER 'hr' = the ground truth, 'bicubic' = upsampled LR"
    )
    params_argument(c)


@command(
    "consistency", "multi-view consistency of image sets of a scene's training views (warp to the nearest view)", _consistency_arguments
)
def _consistency(a):
    from ..metrics.consistency import scene_consistency

    sets = dict(s.split("=", 1) for s in a.images)
    print(scene_consistency(a.scene, a.depth_ckpt, sets, a.out, a.params.device).to_string(index=False))
