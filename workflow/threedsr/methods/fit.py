"""The 3DGS stages: LR pretraining and fitting to other targets (bicubic-upsampled or super-resolved LR views).

Each run writes <out>/ckpt.pt (the final, resumable checkpoint), <out>/point_cloud.ply (3DGS PLY)
and <out>/train_log.csv. Every `checkpoint_every` steps it also writes <out>/resume.pt, which a
rerun of a killed job continues from.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, fields, replace
from pathlib import Path

import pandas as pd
import torch

from .. import settings
from ..data.scene import PreparedScene
from ..imaging import resize
from ..io import atomic_path, fault_point, load_resume_point
from ..splat.gaussians import export_ply, init_from_points
from ..splat.trainer import CHECKPOINT_KEYS, TrainConfig, Trainer, TrainView, load_params, photometric_loss, scene_scale

log = logging.getLogger(__name__)


DENSIFY_NAMES = {"start": "refine_start", "stop": "refine_stop", "every": "refine_every"}  # gs.densify.* -> TrainConfig (gsplat's)


def train_config(g: settings.GS, iterations: int | None = None) -> TrainConfig:
    """TrainConfig from params.yaml's `gs` block: the one place where its keys meet the trainer's names (gsplat's:
    densify.start -> refine_start ...); `iterations` replaces gs.iterations (a fit at HR has its own budget)."""
    same = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(g)} - {"densify"}  # sh_degree, ..., seed
    densify = {DENSIFY_NAMES.get(k, k): v for k, v in asdict(g.densify).items()}
    return TrainConfig(**{k: getattr(g, k) for k in same} | densify | {"iterations": iterations or g.iterations})


def targets_fingerprint(views: list[TrainView]) -> str:
    """A digest of what a fit is fit to (images and cameras): a resume point is only reused for the same."""
    h = hashlib.sha256()
    for v in views:
        for t in (v.target, v.lr_target, v.world_to_camera, v.K):
            if t is not None:
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def hr_lr_loss(lambda_lr: float, delta_dssim: float):
    """L = L_hr(H, R) + λ·L_lr(L, down(R)), each (1−δ)·L1 + δ·D-SSIM; down = antialiased bicubic to the LR size.
    A view without an HR target (SuperGaussian's real LR views) has the λ·L_lr term alone."""

    def loss(render: torch.Tensor, view: TrainView) -> torch.Tensor:
        hr = 0.0 if view.target is None else photometric_loss(render, view.target, delta_dssim)
        if lambda_lr == 0 or view.lr_target is None:
            return hr
        h, w = view.lr_target.shape[:2]
        down = resize(render.permute(2, 0, 1), h, w).permute(1, 2, 0)
        return hr + lambda_lr * photometric_loss(down, view.lr_target, delta_dssim)

    return loss


def fit(
    scene_dir: Path,
    out_dir: Path,
    cfg: TrainConfig,
    views: list[TrainView],
    device: torch.device,
    init: Path | None = None,
    checkpoint_every: int = 1000,
    loss_fn=None,
) -> Trainer:
    """Fit from the scene's points (or the Gaussians of checkpoint `init`) to `views`, resuming if a resume.pt exists."""
    scene = PreparedScene(scene_dir)
    if init is not None:
        # the initial model's SH coefficients are trained: use them all from the first step
        cfg = replace(cfg, sh_degree_start=cfg.sh_degree)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = out_dir / "resume.pt"
    key = {
        "config": asdict(cfg),
        "targets": targets_fingerprint(views),
        "init": init and hashlib.sha256(Path(init).read_bytes()).hexdigest(),
    }
    stored = load_resume_point(resume, keys=CHECKPOINT_KEYS)
    if stored is not None and {k: stored.get(k) for k in key} != key:
        log.warning("%s was written with other settings, targets or initial model; starting over", resume)
        stored = None
    history = []
    if stored is not None:
        trainer = Trainer.from_state(stored, views, device, cfg)
        history = list(stored.get("history", []))  # train_log.csv's rows before the resume point
        log.info("resuming from %s at step %d", resume, trainer.step)
    else:
        if init is not None:
            params, _ = load_params(init)
        else:
            xyz, rgb = scene.points()
            params = init_from_points(xyz, rgb, cfg.sh_degree, seed=cfg.seed)
        trainer = Trainer(params, views, cfg, scene_scale([v.world_to_camera for v in scene.train_views]), device)

    def on_step(t: Trainer, loss: float):
        if t.step % 50 == 0:
            history.append({"step": t.step, "loss": loss, "gaussians": len(t.params["means"])})
        if t.step % checkpoint_every == 0 and t.step < cfg.iterations:
            with atomic_path(resume) as tmp:
                torch.save({**t.state_dict(), **key, "history": history}, tmp)
            fault_point("fit:resume-saved")

    trainer.train(cfg.iterations, loss_fn=loss_fn, on_step=on_step, desc=f"fit {scene.root.name}")
    export_ply(trainer.params, out_dir / "point_cloud.ply")
    with atomic_path(out_dir / "train_log.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    trainer.save(out_dir / "ckpt.pt")
    resume.unlink(missing_ok=True)
    return trainer
