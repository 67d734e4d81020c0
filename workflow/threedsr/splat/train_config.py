"""How one 3DGS fit trains (no torch here: settings.py takes params.yaml's gs.* defaults from it).

TrainConfig is the engine's one definition of a fit: its field names are gsplat's simple_trainer's, its defaults the
ones params.yaml ships (settings.GS and settings.Densify read them from here, so each key has one default);
fit.train_config maps params.yaml's `gs` block onto it (gs.densify.start -> refine_start, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """One 3DGS fit: the step budget, the loss, 3DGS' learning rates, densification, Mip-Splatting's filters."""

    iterations: int = 1200  # steps (3DGS: 30000; params.yaml's offline default)
    sh_degree: int = 3
    sh_degree_interval: int = 1000  # raise the SH degree every this many steps
    sh_degree_start: int = 0  # a fit from a trained model starts at its full degree
    delta_dssim: float = 0.2  # loss (1 - delta) L1 + delta D-SSIM
    means_lr: float = 1.6e-4  # times the scene scale
    means_lr_final: float = 1.6e-6
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    refine_start: int = 300  # first step that densifies (3DGS: 500)
    refine_stop: int = 1000  # last step that densifies (3DGS: 15000)
    refine_every: int = 100  # densify every this many steps
    reset_every: int = 3000  # opacity reset interval
    grow_grad2d: float = 0.0005  # image-plane gradient above which a Gaussian grows (3DGS: 0.0002)
    rasterize_mode: str = "antialiased"  # gsplat's classic (3DGS), or antialiased: Mip-Splatting's 2D Mip filter
    eps2d: float = 0.1  # the screen-space dilation, px^2: 0.3 in 3DGS, 0.1 as Mip-Splatting's 2D filter
    filter_3d: bool = True  # Mip-Splatting's 3D smoothing filter, from the cameras being fitted (filter3d.py)
    filter_3d_variance: float = 0.2  # its variance at the sampling rate (Mip-Splatting: 0.2)
    filter_3d_every: int = 100  # recomputed this often after densification stops (and after every densification)
    seed: int = 0
