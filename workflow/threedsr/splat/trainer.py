"""Fitting a 3DGS model to posed images, on CPU or CUDA with the same code.

Follows gsplat's simple_trainer: one Adam per parameter group, an exponentially decaying learning
rate for the means, SH degree raised every `sh_degree_interval` steps, loss (1-delta) L1 +
delta (1 - SSIM), densification by gsplat's DefaultStrategy (kept apart from the loop).
Checkpoints hold everything needed to resume exactly (Gaussians, optimizers, scheduler, strategy
state, step, RNG) and load with torch.load(weights_only=True).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..io import atomic_path, load_checkpoint
from ..progress import progress
from . import filter3d, gaussians
from .fused_ssim import fused_ssim
from .render import render
from .strategy import OpacityResetStrategy
from .train_config import TrainConfig

__all__ = ["CHECKPOINT_KEYS", "TrainConfig", "TrainView", "Trainer", "load_params", "photometric_loss", "scene_scale"]

# what Trainer.state_dict() writes and from_state() reads: a torch file without them is not one of this trainer's
CHECKPOINT_KEYS = (
    "step",
    "scale",
    "config",
    "params",
    "optimizers",
    "scheduler",
    "strategy_state",
    "rng",
    "torch_rng",
    "cuda_rng",
    "order",
)


@dataclass
class TrainView:
    world_to_camera: torch.Tensor  # (4, 4)
    K: torch.Tensor  # (3, 3)
    width: int
    height: int
    target: torch.Tensor | None  # (H, W, 3) in [0, 1]; None: a loss_fn compares this view at LR only
    lr_target: torch.Tensor | None = None  # the view's LR image, for losses that also compare at LR


def photometric_loss(render: torch.Tensor, target: torch.Tensor, delta_dssim: float) -> torch.Tensor:
    """(1 - delta) L1 + delta (1 - SSIM) on (..., H, W, 3) images; SSIM with an 11x11, sigma 1.5 window."""
    l1 = (render - target).abs().mean()
    r, t = render.reshape(-1, *render.shape[-3:]).permute(0, 3, 1, 2), target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2)
    return (1 - delta_dssim) * l1 + delta_dssim * (1 - fused_ssim(r, t))


def scene_scale(world_to_cameras: list[np.ndarray]) -> float:
    """1.1 x the largest distance of a camera centre from their mean (3DGS' cameras_extent)."""
    centres = np.array([-w[:3, :3].T @ w[:3, 3] for w in world_to_cameras])
    return float(1.1 * np.linalg.norm(centres - centres.mean(0), axis=1).max()) or 1.0


class Trainer:
    def __init__(
        self, params: torch.nn.ParameterDict, views: list[TrainView], cfg: TrainConfig, scale: float, device: str | torch.device = "cpu"
    ):
        self.cfg, self.scale, self.device = cfg, scale, torch.device(device)
        # cameras and targets move to the device once, not at every step
        self.views = [
            replace(
                v,
                world_to_camera=v.world_to_camera.to(self.device),
                K=v.K.to(self.device),
                target=None if v.target is None else v.target.to(self.device),
                lr_target=None if v.lr_target is None else v.lr_target.to(self.device),
            )
            for v in views
        ]
        self.params = params.to(self.device)
        lrs = {
            "means": cfg.means_lr * scale,
            "scales": cfg.scales_lr,
            "quats": cfg.quats_lr,
            "opacities": cfg.opacities_lr,
            "sh0": cfg.sh0_lr,
            "shN": cfg.shN_lr,
        }
        # fused: one kernel per parameter and step instead of a dozen tensor operations (13x faster on 2 CPU cores)
        self.optimizers = {
            k: torch.optim.Adam([{"params": self.params[k], "lr": lr, "name": k}], eps=1e-15, fused=True) for k, lr in lrs.items()
        }
        gamma = (cfg.means_lr_final / cfg.means_lr) ** (1.0 / max(cfg.iterations, 1)) if cfg.means_lr > 0 else 1.0
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizers["means"], gamma=gamma)
        self.strategy = OpacityResetStrategy(
            refine_start_iter=cfg.refine_start,
            refine_stop_iter=cfg.refine_stop,
            refine_every=cfg.refine_every,
            reset_every=cfg.reset_every,
            grow_grad2d=cfg.grow_grad2d,
        )
        self.strategy.check_sanity(self.params, self.optimizers)
        self.strategy_state = self.strategy.initialize_state(scene_scale=scale)
        self.step = 0
        # gsplat's densification samples from torch's global generator: seed it, and checkpoint it
        torch.manual_seed(cfg.seed)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self._order: list[int] = []
        self.update_filter()

    def update_filter(self) -> None:
        """Mip-Splatting's 3D filter from the cameras this fit trains on (LR or HR: the rate follows), stored in the
        model; without `filter_3d` a filter the initial model carried is dropped. A trainer without views (one
        rebuilt to save a finished fit) keeps the model's filter."""
        if not self.cfg.filter_3d:
            if filter3d.KEY in self.params:
                del self.params[filter3d.KEY]
            return
        if not self.views:
            return
        sigma = filter3d.compute(
            self.params["means"].detach(),
            torch.stack([v.world_to_camera for v in self.views]),
            torch.stack([v.K for v in self.views]),
            [v.width for v in self.views],
            [v.height for v in self.views],
            self.cfg.filter_3d_variance,
        )
        self.params[filter3d.KEY] = torch.nn.Parameter(sigma, requires_grad=False)

    def _filter_due(self, step: int) -> bool:
        """After every densification, and every `filter_3d_every` steps once it stopped, but not in the last steps (as
        Mip-Splatting's train.py)."""
        cfg = self.cfg
        if not cfg.filter_3d:
            return False
        densified = cfg.refine_start < step < cfg.refine_stop and step % cfg.refine_every == 0
        later = step >= cfg.refine_stop and step % cfg.filter_3d_every == 0 and step < cfg.iterations - cfg.filter_3d_every
        return densified or later

    def _next_view(self) -> TrainView:
        if not self._order:
            self._order = torch.randperm(len(self.views), generator=self.rng).tolist()
        return self.views[self._order.pop()]

    def train(self, until: int, loss_fn: Callable | None = None, desc: str = "train", on_step: Callable | None = None) -> None:
        """Run steps self.step .. until-1. loss_fn(render, view) replaces the photometric loss."""
        cfg = self.cfg
        bar = progress(range(self.step, until), desc=desc, unit="step", mininterval=2.0)
        for step in bar:
            view = self._next_view()
            sh_degree = min(cfg.sh_degree_start + step // cfg.sh_degree_interval, cfg.sh_degree)
            img, _, info = render(
                self.params,
                view.world_to_camera[None],
                view.K[None],
                view.width,
                view.height,
                sh_degree,
                cfg.rasterize_mode,
                eps2d=cfg.eps2d,
            )
            self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, step, info)
            loss = loss_fn(img[0], view) if loss_fn else photometric_loss(img[0], view.target, cfg.delta_dssim)
            loss.backward()
            for opt in self.optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, step, info, packed=False)
            if self._filter_due(step):
                self.update_filter()
            self.step = step + 1
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", gaussians=len(self.params["means"]), refresh=False)
            if on_step:
                on_step(self, loss.item())

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "scale": self.scale,
            "config": asdict(self.cfg),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scheduler": self.scheduler.state_dict(),
            "strategy_state": {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in self.strategy_state.items()},
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "order": list(self._order),
        }

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    @classmethod
    def load(
        cls, path: str | Path, views: list[TrainView], device: str | torch.device = "cpu", cfg: TrainConfig | None = None
    ) -> "Trainer":
        """Resume from a checkpoint file; `cfg` overrides the stored config (e.g. more iterations)."""
        return cls.from_state(load_checkpoint(path, keys=CHECKPOINT_KEYS), views, device, cfg)

    @classmethod
    def from_state(
        cls, ckpt: dict, views: list[TrainView], device: str | torch.device = "cpu", cfg: TrainConfig | None = None
    ) -> "Trainer":
        """Resume from a loaded `state_dict()`."""
        cfg = cfg or TrainConfig(**ckpt["config"])
        t = cls(gaussians.from_state(ckpt["params"]), views, cfg, ckpt["scale"], device)
        if filter3d.KEY in ckpt["params"] and cfg.filter_3d:  # the stored filter, not one recomputed from moved centres
            t.params[filter3d.KEY] = torch.nn.Parameter(ckpt["params"][filter3d.KEY].to(t.device), requires_grad=False)
        for k, o in t.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        t.scheduler.load_state_dict(ckpt["scheduler"])
        t.strategy_state = {k: (v.to(t.device) if torch.is_tensor(v) else v) for k, v in ckpt["strategy_state"].items()}
        t.step = ckpt["step"]
        t.rng.set_state(ckpt["rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        t._order = list(ckpt["order"])
        return t


def load_params(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.ParameterDict, dict]:
    ckpt = load_checkpoint(path, map_location=device, keys=("params", "config"))
    return gaussians.from_state(ckpt["params"]), ckpt
