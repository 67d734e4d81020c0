"""3DSR's per-step figures: its scores after each step (steps.png) and, per strip view, H and R at every step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..imaging import labelled
from ..io import atomic_path, read_image


def step_strip(steps_dir: Path, timesteps: list[int], name: str, lr: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Top row: the LR input (HR-sized), then H at every step; bottom row: the ground truth, then R at every step
    (from <steps_dir>/<k>/<name>_H.png and _R.png)."""
    from PIL import Image

    top, bottom = [("LR input", lr)], [("ground truth", gt)]
    for k, t in enumerate(timesteps, start=1):
        folder = Path(steps_dir) / f"{k:02d}"
        top.append((f"H step {k} (t={t})", read_image(folder / f"{name}_H.png")))
        bottom.append((f"R step {k} (t={t})", read_image(folder / f"{name}_R.png")))

    def row(panels):
        return np.concatenate([labelled(Image.fromarray(np.ascontiguousarray(img)), label) for label, img in panels], axis=1)

    return np.concatenate([row(top), row(bottom)], axis=0)


def plot_steps(table: pd.DataFrame, out_png: Path, title: str) -> None:
    """Test-view metrics after each round (step 0: the LR model); PSNR of H and R on the training views; consistency of H and R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    steps, later = table["step"], table[table["step"] > 0]
    for ax, key, label in zip(axes[:3], ("test_psnr", "test_ssim", "test_lpips"), ("PSNR ↑", "SSIM ↑", "LPIPS ↓")):
        if table[key].notna().any():
            ax.plot(steps, table[key], "o-", label="test views, 3DGS")
        else:
            ax.text(0.5, 0.5, "n/a: no AlexNet weights\n(metrics.lpips_backbone)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label)
        ax.set_xlabel("step (0 = LR model)")
        ax.set_xticks(steps)
    axes[0].plot(later["step"], later["train_psnr_H"], "^--", label="training views, H = D(x̂0)")
    axes[0].plot(later["step"], later["train_psnr_R"], "s--", label="training views, R (renders)")
    axes[0].legend(fontsize=7)
    ax = axes[3]
    ax.plot(later["step"], later["consistency_l1_H"], "^--", label="H = D(x̂0)")
    ax.plot(later["step"], later["consistency_l1_R"], "s--", label="R (renders)")
    ax.set_title("warp error to nearest view ↓ (L1 ×255)")
    ax.set_xlabel("step")
    ax.set_xticks(later["step"])
    ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
