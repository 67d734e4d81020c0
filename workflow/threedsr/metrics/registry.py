"""Every score the tables show, in one list: its column, how it is shown, what it needs and, for a score of each test
view, how it is computed (as sr/registry.py is for the SR models).

From METRICS derive: the per-view scoring of `threedsr render --scores` / `collect-sr` (metrics/scoring.evaluate_renders),
the columns of per_view.csv, summary.csv and summary.json (reporting/tables.aggregate), and every table's headers, decimals
and bold (reporting/tables.tables_markdown / tables_html). Adding a score of each test view is one function and one entry
here (docs/metrics.md, "Adding a metric"); a score of a scene or a dataset also needs the code that computes it in
reporting/tables.aggregate (FID from the features, MEt3R from its scores file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..settings import Metrics

SCOPES = ("view", "scene", "dataset")


@dataclass(frozen=True)
class ViewImages:
    """One test view's images, as each per-view score reads them."""

    render: torch.Tensor  # HxWx3 float in [0, 1], clamped
    gt: torch.Tensor  # HxWx3 float in [0, 1]: the HR ground truth
    render_uint8: np.ndarray  # HxWx3 uint8, the render as its PNG holds it (no-reference scores read this)


@dataclass(frozen=True)
class Metric:
    column: str  # its column in per_view.csv / summary.csv and its key in summary.json
    header: str  # the tables' header, with its direction (↑ higher is better, ↓ lower)
    higher_is_better: bool  # which value the tables bold
    digits: int  # decimals the tables show
    # "view": scored per test view (per_view.csv), then the mean per scene and over the scenes; "scene": per scene, the
    # dataset's value only when every scene has one; "dataset": over all of a dataset's test views at once (mean rows only)
    scope: str
    # scope "view": (params' metrics block) -> the model it scores with; None when its weights are missing (the column
    # is then n/a, with one warning from weights.locate). Left out: the score needs no model.
    load: Callable[[Metrics], object] | None = None
    score: Callable[[object, ViewImages], float] | None = None  # scope "view": (its model or None, the view) -> the value
    scale: float = 1.0  # shown times this (KID x 10^3)
    error: str | None = None  # the summary column holding its standard error, shown as ± in the tables

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"metric {self.column}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")
        if (self.scope == "view") != (self.score is not None):
            raise ValueError(f"metric {self.column}: a score function exactly when its scope is 'view'")


def _psnr(_, v: ViewImages) -> float:
    from .image import psnr

    return psnr(v.render, v.gt)


def _ssim(_, v: ViewImages) -> float:
    from .image import ssim

    return ssim(v.render, v.gt)


def _load_lpips(options: Metrics):
    from .image import load_lpips

    return load_lpips(options.lpips_backbone, options.fetch)


def _lpips(model, v: ViewImages) -> float:
    from .image import lpips_distance

    return lpips_distance(model, v.render, v.gt)


def _load_niqe(options: Metrics):
    from .image import load_niqe

    return load_niqe(options.niqe_model, options.fetch)


def _niqe(model, v: ViewImages) -> float:
    return model(v.render_uint8)


# the paper's columns in its order, then the dataset-wide ones the tables add
METRICS: tuple[Metric, ...] = (
    Metric("psnr", "PSNR ↑", True, 2, "view", score=_psnr),
    Metric("ssim", "SSIM ↑", True, 3, "view", score=_ssim),
    Metric("lpips", "LPIPS ↓", False, 3, "view", load=_load_lpips, score=_lpips),
    Metric("niqe", "NIQE ↓", False, 2, "view", load=_load_niqe, score=_niqe),
    Metric("met3r", "MEt3R ↓", False, 3, "scene"),  # from `threedsr met3r`'s scores.csv (met3r.py)
    Metric("fid", "FID ↓ †", False, 1, "scene"),  # from the scoring jobs' Inception features (fid.py)
    Metric("fid_pooled", "pooled FID ↓", False, 1, "dataset"),
    Metric("kid", "KID ×10³ ↓", False, 2, "dataset", scale=1e3, error="kid_se"),
)
KEYS = ["dataset", "scene", "method"]


def of_scope(*scopes: str) -> list[Metric]:
    return [m for m in METRICS if m.scope in scopes]


def per_view_columns() -> list[str]:
    return KEYS + ["view"] + [m.column for m in of_scope("view")]


def summary_columns() -> list[str]:
    """summary.csv's columns: the keys, every metric (its standard error after it), whether the row is a 2D or 3D method."""
    return KEYS + [c for m in METRICS for c in (m.column, m.error) if c] + ["kind"]


def score_view(models: dict[str, object], view: ViewImages) -> dict[str, float]:
    """Every per-view metric of one view; NaN where a metric's model is missing (models from `load_models`)."""
    out = {}
    for m in of_scope("view"):
        model = models.get(m.column)
        out[m.column] = float("nan") if m.load is not None and model is None else float(m.score(model, view))
    return out


def load_models(options: Metrics) -> dict[str, object]:
    """The models the per-view metrics score with (None where weights are missing)."""
    return {m.column: m.load(options) for m in of_scope("view") if m.load is not None}
