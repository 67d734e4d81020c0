"""The 3DSR stage: diffusion sampling and 3DGS fitting, interleaved (Chen et al., ICCV 2025).

From the LR-pretrained 3DGS and every training view's own latent x_t, at each of the sampler's
timesteps t:
  1. the SR model predicts x̂0 from x_t (equation 1); H = D(x̂0), colour-fixed against the
     bicubic-upsampled LR view;
  2. the 3DGS is fit for `iters_per_step` steps on all H with L_hr(H, R) + λ·L_lr(L, down(R));
  3. the renders R are re-encoded, ẍ0 = E(R), and x_t -> x_{t-1} takes ẍ0 in place of x̂0
     (the paper's DDIM update, equation 3, or the DDPM posterior the official code runs).
The result is the 3DGS after the last round.

Differences from the official code, on purpose (each reproducible by a key, as the paper presets do):
  - every view keeps its own x_t and its own seeded noise; the official code reuses the last
    view's first-step latent as x_t for every view in later steps (a bug; `latents: official`);
  - each round is a fresh optimiser over the current Gaussians, densifying during 10–50 % of the
    round (official: 500–2500 of 5000) with no opacity reset; the centres keep the usual decaying
    learning rate, restarted each round. The official code's centre learning rate is 0 after
    loading the LR model (a side effect of its schedule); `freeze_means` reproduces that.

Every finished round is checkpointed atomically to <out>/state.pt (Gaussians, latents, noise
generator states, round index, per-step rows): a killed job continues from the last finished
round and ends with the numbers an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import settings
from ..data.scene import PreparedScene
from ..errors import ConfigError
from ..imaging import to_float, to_uint8, upsample
from ..io import atomic_dir, atomic_path, fault_point, load_resume_point, write_png
from ..metrics.consistency import consistency
from ..metrics.image import image_metrics, load_lpips
from ..progress import progress
from ..splat import gaussians
from ..splat.gaussians import export_ply
from ..splat.render import RenderSettings, render_views
from ..splat.trainer import TrainConfig, Trainer, load_params, scene_scale
from ..sr.base import DiffusionSR
from ..sr.colorfix import color_fix
from ..sr.registry import DIFFUSION_MODELS
from ..sr.run import check_no_leak
from ..sr.sampling import SamplerConfig, ViewNoise, update, view_seeds
from .fit import hr_lr_loss
from .three_dsr_figures import plot_steps, step_strip
from .training_views import train_view

log = logging.getLogger(__name__)

STATE = "state.pt"
STATE_KEYS = ("fingerprint", "round", "rows", "params", "latents", "noise")  # what a round's state.pt holds


@dataclass(frozen=True)
class ThreeDSRConfig:
    """params.yaml's threedsr block (its defaults; the paper's values in comments), the sampler as one object."""

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    iters_per_step: int = settings.ThreeDSRBlock.iters_per_step  # paper: 5000
    lambda_lr: float = settings.ThreeDSRBlock.lambda_lr  # paper: 1
    delta_dssim: float = settings.ThreeDSRBlock.delta_dssim  # paper: 0.2
    colorfix: str = settings.ThreeDSRBlock.colorfix  # official code: wavelet
    freeze_means: bool = settings.ThreeDSRBlock.freeze_means  # True: the official code's centres, fixed after LR pretraining
    latents: str = settings.ThreeDSRBlock.latents  # "official": every view's update starts from one shared latent (_shared_latent)
    strip_views: int = 3  # training views whose H and R are drawn at every step

    @classmethod
    def from_block(cls, t: settings.ThreeDSRBlock) -> "ThreeDSRConfig":
        """From params.yaml's threedsr block, as the command got it (settings.Given)."""
        return cls(t.sampler(), t.iters_per_step, t.lambda_lr, t.delta_dssim, t.colorfix, t.freeze_means, t.latents)


def round_config(gs: TrainConfig, cfg: ThreeDSRConfig, k: int) -> TrainConfig:
    """The 3DGS settings of round k: densify in the first half, no opacity reset, full SH degree."""
    n = cfg.iters_per_step
    out = replace(
        gs,
        iterations=n,
        refine_start=n // 10,
        refine_stop=n // 2,
        reset_every=n + 1,
        delta_dssim=cfg.delta_dssim,
        sh_degree_start=gs.sh_degree,
        seed=gs.seed + k,
    )
    return replace(out, means_lr=0.0, means_lr_final=0.0) if cfg.freeze_means else out


def _batches(images: list[torch.Tensor], size: int) -> list[list[int]]:
    """Index lists of at most `size` consecutive views with the same image size (they are stacked)."""
    out: list[list[int]] = []
    for i, img in enumerate(images):
        if out and len(out[-1]) < size and images[out[-1][0]].shape == img.shape:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _fingerprint(cfg: ThreeDSRConfig, gs: TrainConfig, model: DiffusionSR, init: Path, names: list[str]) -> str:
    """What a state.pt must have been written with to be resumed."""
    h = hashlib.sha256(Path(init).read_bytes())
    key = {"cfg": asdict(cfg), "gs": asdict(gs), "model": model.name, "weights": model.fingerprint(), "views": names}
    h.update(json.dumps(key, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if not math.isnan(r[key])]
    return float(np.mean(vals)) if vals else math.nan


class ThreeDSR:
    """One scene's 3DSR run; `run()` does every remaining round and writes the outputs."""

    def __init__(
        self,
        scene_dir: Path,
        model: DiffusionSR,
        cfg: ThreeDSRConfig,
        gs: TrainConfig,
        init: Path,
        out_dir: Path,
        device: torch.device,
        batch_size: int = 4,
        lpips_backbone: str | None = None,
        fetch: bool = True,
    ):
        if not model.is_diffusion:
            raise ConfigError(f"3DSR needs a diffusion SR model ({', '.join(DIFFUSION_MODELS)}); {model.name} is not one")
        self.scene = PreparedScene(scene_dir)
        check_no_leak(model, self.scene)
        self.model, self.cfg, self.gs, self.init, self.device = model, cfg, gs, Path(init), torch.device(device)
        self.out = Path(out_dir)
        self.views = self.scene.train_views
        self.names = [v.name for v in self.views]
        self.lr = [to_float(self.scene.image(v, "lr")).permute(2, 0, 1) for v in self.views]
        self.gt = [to_float(self.scene.image(v, "hr")) for v in self.views]
        self.batches = _batches(self.lr, batch_size)
        self.timesteps = model.timesteps(cfg.sampler.steps)
        self.lpips = load_lpips(lpips_backbone, fetch)
        self.strip_names = self.names[:: max(1, len(self.names) // max(1, cfg.strip_views))][: cfg.strip_views]
        self.fingerprint = _fingerprint(cfg, gs, model, init, self.names)
        self.shared: torch.Tensor | None = None  # latents: official, set by start()

    # -- the sampler's side ---------------------------------------------------------------------
    def _lr_batch(self, b: list[int]) -> torch.Tensor:
        return torch.stack([self.lr[i] for i in b]).to(self.model.device)

    def start(self) -> tuple[list, list[torch.Tensor], ViewNoise]:
        """Conditions and start latents per batch, drawing each view's noise in a fixed order."""
        noise = ViewNoise(view_seeds(self.cfg.sampler.seed, self.names))
        conds = [self.model.condition(self._lr_batch(b), noise.subset(b)) for b in self.batches]
        x = [self.model.start_latent(self._lr_batch(b), self.timesteps[0], self.cfg.sampler.init, noise.subset(b)) for b in self.batches]
        self.shared = self._shared_latent(x)
        return conds, x, noise

    def _shared_latent(self, x: list[torch.Tensor]) -> torch.Tensor | None:
        """`latents: official`: the x_t every view's update starts from after the first step, the start latent of the
        last view (the official code keeps one variable, x_T, written by each view at the first step and never again:
        train_3dsr.py, `x_T_1 = sample_canvas_one_iter(..., x_T=x_T, x0_input=E(R))`). None with `per_view`."""
        if self.cfg.latents != "official":
            return None
        if self.cfg.sampler.update == "ddim":
            log.warning(
                "threedsr.latents: official changes nothing with update: ddim (DDIM's step is written in x0 and the "
                "predicted noise, it does not read x_t); the official code's update is ddpm_posterior"
            )
        if len({tuple(x_b.shape[1:]) for x_b in x}) > 1:
            raise ConfigError(
                f"{self.scene.root}: threedsr.latents: official shares one latent between views, but the views differ in size; "
                "use latents: per_view"
            )
        return x[-1][-1:].clone()

    @torch.no_grad()
    def predict_hr(self, conds, x: list[torch.Tensor], t: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """H = colourfix(D(x̂0)) per view (H×W×3, CPU) and ε̂ per batch."""
        hr, eps_all = [], []
        for b, cond, x_b in zip(self.batches, conds, x):
            eps, x0 = self.model.predict(x_b, t, cond)
            h = self.model.decode(x0, cond).float().cpu()
            h = color_fix(h, upsample(torch.stack([self.lr[i] for i in b]), self.model.scale), self.cfg.colorfix)
            hr.extend(h.permute(0, 2, 3, 1))
            eps_all.append(eps)
        return hr, eps_all

    @torch.no_grad()
    def step_latents(self, x, eps_all, renders: list[torch.Tensor], noise: ViewNoise, k: int) -> list[torch.Tensor]:
        """x_t -> x_{t-1} with ẍ0 = E(R) in place of x̂0 (after the last round: ẍ0 itself)."""
        t = self.timesteps[k]
        prev = self.timesteps[k + 1] if k + 1 < len(self.timesteps) else None
        out = []
        for b, x_b, eps in zip(self.batches, x, eps_all):
            x0_3d = self.model.encode(torch.stack([renders[i] for i in b]).permute(0, 3, 1, 2).to(self.model.device)).float()
            z = noise.subset(b)(tuple(x_b.shape[1:]), x_b.device)  # drawn every round, as the plain sampler does
            if self.shared is not None:  # latents: official
                x_b = self.shared.to(x_b.device).expand_as(x_b)
            if prev is None:
                out.append(x0_3d)
            else:
                out.append(update(self.cfg.sampler, x_b.float(), x0_3d, eps.float(), self.model.abar(t), self.model.abar(prev), z))
        return out

    # -- the 3DGS side --------------------------------------------------------------------------
    def fit_round(self, params, hr: list[torch.Tensor], k: int) -> Trainer:
        views = [train_view(v, "hr", h, lr_target=lr.permute(1, 2, 0)) for v, h, lr in zip(self.views, hr, self.lr)]
        cfg = round_config(self.gs, self.cfg, k)
        trainer = Trainer(params, views, cfg, scene_scale([v.world_to_camera for v in self.views]), self.device)
        t = self.timesteps[k]
        trainer.train(
            cfg.iterations,
            loss_fn=hr_lr_loss(self.cfg.lambda_lr, self.cfg.delta_dssim),
            desc=f"3dsr {self.scene.root.name} step {k + 1}/{len(self.timesteps)} (t={t})",
        )
        return trainer

    def test_metrics(self, params) -> dict[str, float]:
        rgb, _ = render_views(params, self.scene.test_views, RenderSettings.of(self.gs), self.device)
        rows = [image_metrics(r, to_float(self.scene.image(v, "hr")), self.lpips) for r, v in zip(rgb, self.scene.test_views)]
        return {f"test_{k}": _mean(rows, k) for k in ("psnr", "ssim", "lpips")}

    def consistency_of(self, images: list[torch.Tensor], depths: list[torch.Tensor]) -> dict[str, float]:
        rows = consistency(images, depths, [v.world_to_camera for v in self.views], [v.hr.K for v in self.views], self.names)
        return {"l1": _mean(rows, "l1"), "psnr": _mean(rows, "psnr")}

    def train_psnr(self, images: list[torch.Tensor]) -> float:
        return float(np.mean([image_metrics(img, gt, None)["psnr"] for img, gt in zip(images, self.gt)]))

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> pd.DataFrame:
        self.out.mkdir(parents=True, exist_ok=True)
        params, _ = load_params(self.init)
        # consistency is measured with one geometry for every image set: the LR model's depth
        _, ref_depth = render_views(params.to(self.device), self.views, RenderSettings.of(self.gs), self.device)
        conds, x, noise = self.start()
        k0, rows = 0, None
        state_path = self.out / STATE
        state = load_resume_point(state_path, keys=STATE_KEYS)
        if state is not None and (missing := self._missing_step_images(state["round"])):
            log.warning(
                "%s: the images of the rounds it resumes after are gone (%s%s): starting over",
                state_path,
                missing[0],
                f" and {len(missing) - 1} more" if len(missing) > 1 else "",
            )
            state = None
        if state is not None:
            if state["fingerprint"] == self.fingerprint:
                k0, rows = state["round"], json.loads(state["rows"])
                params = gaussians.from_state(state["params"])
                x = [torch.stack([state["latents"][i] for i in b]).to(x_b.device) for b, x_b in zip(self.batches, x)]
                noise.set_state(state["noise"])
                log.info("resuming %s after step %d of %d", self.out, k0, len(self.timesteps))
            else:
                log.warning("%s was written with other settings, model or initial 3DGS; starting over", state_path)
        if rows is None:
            rows = [{"step": 0, "t": math.nan, "seconds": 0.0, **self.test_metrics(params.to(self.device))}]
        trainer = None
        bar = progress(
            range(k0, len(self.timesteps)), desc=f"3dsr {self.scene.root.name}", unit="step", initial=k0, total=len(self.timesteps)
        )
        for k in bar:
            start = time.perf_counter()
            t = self.timesteps[k]
            hr, eps_all = self.predict_hr(conds, x, t)
            trainer = self.fit_round(params, hr, k)
            params = trainer.params
            renders, _ = render_views(params, self.views, RenderSettings.of(self.gs), self.device)
            x = self.step_latents(x, eps_all, renders, noise, k)
            h_cons, r_cons = self.consistency_of(hr, ref_depth), self.consistency_of(renders, ref_depth)
            rows.append(
                {
                    "step": k + 1,
                    "t": t,
                    "seconds": round(time.perf_counter() - start, 2),
                    **self.test_metrics(params),
                    "train_psnr_H": self.train_psnr(hr),
                    "train_psnr_R": self.train_psnr(renders),
                    "consistency_l1_H": h_cons["l1"],
                    "consistency_l1_R": r_cons["l1"],
                    "consistency_psnr_H": h_cons["psnr"],
                    "consistency_psnr_R": r_cons["psnr"],
                    "gaussians": len(params["means"]),
                }
            )
            self._save_step_images(k + 1, hr, renders)
            log.info(
                "step %d/%d (t=%d): %s",
                k + 1,
                len(self.timesteps),
                t,
                {kk: round(v, 4) if isinstance(v, float) else v for kk, v in rows[-1].items()},
            )
            with atomic_path(state_path) as tmp:
                torch.save(
                    {
                        "fingerprint": self.fingerprint,
                        "round": k + 1,
                        "rows": json.dumps(rows),
                        "params": {kk: v.detach().cpu() for kk, v in params.items()},
                        "latents": [lat.cpu() for x_b in x for lat in x_b],
                        "noise": noise.get_state(),  # per view: any batching resumes
                    },
                    tmp,
                )
            fault_point("3dsr:round-saved")
            bar.set_postfix(test_psnr=f"{rows[-1]['test_psnr']:.2f}")
        if trainer is None:  # every round was already done: rebuild the last round's trainer state
            trainer = Trainer(
                params,
                [],
                round_config(self.gs, self.cfg, len(self.timesteps) - 1),
                scene_scale([v.world_to_camera for v in self.views]),
                self.device,
            )
        return self.finish(trainer, rows)

    def _step_folder(self, step: int) -> Path:
        return self.out / "steps" / f"{step:02d}"

    def _kept_at(self, step: int, name: str) -> bool:
        """Whether H and R of view `name` are kept at `step`: the strip views' at every step, every view's at the last
        (finish() makes views/ of them)."""
        return step == len(self.timesteps) or name in self.strip_names

    def _missing_step_images(self, rounds: int) -> list[Path]:
        """The step images of rounds 1..`rounds` that finish() reads (steps/ is not a declared output: a user or a
        cleanup may have removed it), so that a state without them starts over instead of failing at every rerun."""
        need = [
            self._step_folder(k) / f"{name}_{kind}.png"
            for k in range(1, rounds + 1)
            for name in self.names
            if self._kept_at(k, name)
            for kind in ("H", "R")
        ]
        return [p for p in need if not p.exists()]

    def _save_step_images(self, step: int, hr, renders) -> None:
        """H and R of the views kept at this step (_kept_at). Written before the round's state: steps/ is not a declared
        output, so it outlives a failed job."""
        for name, h, r in zip(self.names, hr, renders):
            if self._kept_at(step, name):
                write_png(self._step_folder(step) / f"{name}_H.png", to_uint8(h))
                write_png(self._step_folder(step) / f"{name}_R.png", to_uint8(r))

    def finish(self, trainer: Trainer, rows: list[dict]) -> pd.DataFrame:
        """Every output, from the last round's state and images alone: a rerun after a kill at any point from the
        last round on redoes no round. state.pt goes last."""
        last = self._step_folder(len(self.timesteps))
        for kind in ("H", "R"):  # the last step's images of every view, for the cross-method consistency table
            with atomic_dir(self.out / "views" / kind) as tmp:
                for name in self.names:
                    shutil.copyfile(last / f"{name}_{kind}.png", tmp / f"{name}.png")
        table = pd.DataFrame(rows)
        with atomic_path(self.out / "steps.csv") as tmp:
            table.to_csv(tmp, index=False)
        plot_steps(table, self.out / "steps.png", f"3DSR on {self.scene.root.name}")
        for name in self.strip_names:
            write_png(self.out / "strips" / f"{name}.png", self.strip(name))
        export_ply(trainer.params, self.out / "point_cloud.ply")
        trainer.save(self.out / "ckpt.pt")
        (self.out / STATE).unlink(missing_ok=True)
        return table

    def strip(self, name: str) -> np.ndarray:
        """Top row: LR input, then H at every step; bottom row: ground truth, then R at every step."""
        from PIL import Image

        i = self.names.index(name)
        gt = to_uint8(self.gt[i])
        h, w = gt.shape[:2]
        lr = np.asarray(Image.fromarray(to_uint8(self.lr[i].permute(1, 2, 0))).resize((w, h), Image.NEAREST))
        return step_strip(self.out / "steps", self.timesteps, name, lr, gt)
