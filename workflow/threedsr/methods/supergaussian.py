"""The SuperGaussian baseline (Shen et al., ECCV 2024): upsample a video of the LR model, then fit 3DGS at HR to it.

1. Render the LR-pretrained 3DGS at LR along a smooth path through the training cameras
   (`trajectory.scene_trajectory`; the 3DSR authors used 4 poses between consecutive cameras).
2. Upsample the frames ×4 (`upsample_frames`). The paper's prior is VideoGigaGAN, which is not
   public; its public code ships RealBasicVSR (`sr/realbasicvsr.py`, where its weights are
   present), which sees the whole sequence. Any image SR model of the project does it frame by
   frame instead (Real-ESRGAN by default, offline): no temporal propagation, so the frames agree
   less with each other, and the 3DGS fit is what reconciles them.
3. Fit a new 3DGS at HR to the frames with their cameras, starting from the LR model
   (`training_views.frame_views`; `fit.fit` does the fitting). The original has no loss against the real LR
   views; `lambda_lr` > 0 adds λ·L_lr(L, down(R)) on the training cameras.

<frames>/lr/<frame>.png, <frames>/hr/<frame>.png, <frames>/trajectory.json (the cameras) and
<frames>/frames.json (what made them) are written together, atomically.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..data.scene import PreparedScene
from ..data.trajectory import scene_trajectory, trajectory_to_json
from ..imaging import to_float, to_uint8
from ..io import atomic_dir, write_json, write_png
from ..partial import PartialImages, fingerprint
from ..progress import progress
from ..splat.render import RenderSettings, render_views
from ..splat.trainer import load_params
from ..sr.base import SRModel
from ..sr.run import check_no_leak, save_batch
from ..sr.sampling import SamplerConfig, view_seeds

log = logging.getLogger(__name__)


def upsample_frames(
    model: SRModel, frames: list[np.ndarray], views: list, sampler: SamplerConfig, seeds: list[int], batch_size: int, partial: PartialImages
) -> None:
    """H×W×3 uint8 LR frames of `views` -> ×scale frames, saved in `partial` by view name. A video model (RealBasicVSR)
    sees the whole sequence in path order (one unit); an image SR model sees batches of frames, each frame on its own,
    and a batch finished by a killed run is not computed again."""
    lr = [to_float(f).permute(2, 0, 1) for f in frames]
    if getattr(model, "is_video", False):
        if not partial.finished([v.name for v in views]):
            save_batch(partial, model, views, model.super_resolve_video(torch.stack(lr)))
        return
    for i in progress(range(0, len(frames), batch_size), desc=f"upsample ({model.name})", unit="batch", mininterval=2.0):
        chunk = views[i : i + batch_size]
        if not partial.finished([v.name for v in chunk]):
            save_batch(partial, model, chunk, model.super_resolve(torch.stack(lr[i : i + batch_size]), sampler, seeds[i : i + batch_size]))


def make_frames(
    scene_dir: Path,
    lr_ckpt: Path,
    out_dir: Path,
    n_interp: int,
    model: SRModel,
    sampler: SamplerConfig,
    batch_size: int,
    device: torch.device,
) -> dict:
    """Steps 1 and 2: the LR model's frames along the path and their upsampled versions, in `out_dir`."""
    scene = PreparedScene(scene_dir)
    check_no_leak(model, scene)
    path = scene_trajectory(scene, n_interp)
    params, state = load_params(lr_ckpt, device)
    start = time.perf_counter()
    rendered, _ = render_views(params, path, RenderSettings.of(state["config"]), device, "lr")
    lr = [to_uint8(f) for f in rendered]  # the upsampler sees 8-bit frames, as it would a video file
    render_seconds = time.perf_counter() - start
    names = [v.name for v in path]
    key = fingerprint(model.fingerprint(), sampler.__dict__, batch_size, *names, *lr)
    partial = PartialImages(out_dir, key, fault="frames:batch-saved")
    upsample_frames(model, lr, path, sampler, view_seeds(sampler.seed, names), batch_size, partial)
    with atomic_dir(out_dir) as tmp:
        partial.link_into(tmp / "hr", names)
        for v, a in zip(path, lr):
            write_png(tmp / "lr" / f"{v.name}.png", a)
        write_json(tmp / "trajectory.json", trajectory_to_json(path))
        info = {
            "frames": len(path),
            "n_interp": n_interp,
            "keys": len(scene.train_views),
            "upsampler": model.name,
            "sampler": sampler.__dict__ if model.is_diffusion else None,
            "render_seconds": round(render_seconds, 2),
            "upsample_seconds": round(time.perf_counter() - start - render_seconds, 2),
        }
        write_json(tmp / "frames.json", info)
    partial.done()
    log.info("%s: %d frames, upsampled by %s in %.1f s", out_dir, len(path), model.name, info["upsample_seconds"])
    return info
