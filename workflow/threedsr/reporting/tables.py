"""The tables: per_view.csv, summary.csv / .json and each dataset's Markdown and HTML page (the paper's table), from
the scoring jobs' CSVs and features; FID, pooled FID and KID per dataset, MEt3R where it was run, bold best values."""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import atomic_path, write_json
from ..methods import registry as method_registry
from ..metrics.fid import fid, kid
from ..metrics.registry import KEYS, of_scope, per_view_columns, summary_columns
from ..metrics.scoring import read_features


def is_2d(method: str) -> bool:
    """A 2D method (sr2d) scores 2D SR of the test views themselves, without a 3D model."""
    return method_registry.of(method).dims == 2


def method_order(present, methods: list[str] | None) -> list[str]:
    """params' `methods` order (the paper's rows), then any other method in the order first seen."""
    seen = list(dict.fromkeys(present))
    ordered = [m for m in (methods or []) if m in seen]
    return ordered + [m for m in seen if m not in ordered]


def read_met3r(path: Path) -> pd.DataFrame:
    """MEt3R scores per image pair (`threedsr met3r`): dataset, scene, method, view_a, view_b, met3r."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the MEt3R scores ({e})") from None
    need = {"dataset", "scene", "method", "met3r"}
    if not need <= set(table.columns):
        raise DataError(f"{path}: MEt3R scores need the columns {', '.join(sorted(need))}; it has {', '.join(table.columns)}")
    return table


def aggregate(
    per_view_csvs: list[Path],
    out_dir: Path,
    consistency_csvs: list[Path] = (),
    methods: list[str] | None = None,
    features: list[Path] = (),
    met3r: Path | None = None,
    budgets: dict[str, int] | None = None,
    renders: list[Path] = (),
) -> pd.DataFrame:
    """per_view.csv; summary.csv (per scene and method, and a `mean` row per dataset and method: the mean over
    its scenes, plus the pooled FID and KID over all its test views); summary.json (the mean rows, DVC's
    metrics); <dataset>.md / .html (the paper's table: one mean row per method, then a table per scene);
    with the consistency rule's tables also consistency.csv (mean per scene and image set). `budgets` (each method's 3DGS
    steps at HR) puts a note under the tables when they differ. `renders` (the folders results/renders/<dataset>/<scene>/
    <method> the scores come from) lets MEt3R scores count only where they were computed on those renders."""
    per_view = pd.concat([pd.read_csv(p) for p in per_view_csvs], ignore_index=True)
    per_view = per_view.reindex(columns=per_view_columns())  # a metric added since a table was scored: n/a there
    order = method_order(per_view["method"], methods)
    scores = [m.column for m in of_scope("view")]
    per_scene = per_view.groupby(KEYS, as_index=False)[scores].mean()
    n_views = per_view.groupby(KEYS).size()
    # FID per scene (the official protocol) from the scoring jobs' features; pooled FID and KID per dataset
    feats = {}
    for p in features:
        f = read_features(Path(p))
        feats[(f["dataset"], f["scene"], f["method"])] = f
    per_scene["fid"] = [
        fid(f["render"], f["gt"]) if (f := feats.get((r.dataset, r.scene, r.method))) and f["available"] else np.nan
        for r in per_scene.itertuples()
    ]
    per_scene["met3r"] = np.nan
    if met3r is not None and Path(met3r).exists():
        from ..metrics.met3r import fresh_scores

        views = per_view.groupby(["dataset", "scene", "method"])["view"].agg(list)
        folders = {(f.parent.parent.name, f.parent.name, f.name): Path(f) for f in map(Path, renders)}
        now = {key: (folder, views[key]) for key, folder in folders.items() if key in views.index}
        m3 = fresh_scores(read_met3r(Path(met3r)), now).groupby(["dataset", "scene", "method"])["met3r"].mean()
        per_scene["met3r"] = [m3.get((r.dataset, r.scene, r.method), np.nan) for r in per_scene.itertuples()]
    means = per_scene.groupby(["dataset", "method"], as_index=False)[scores].mean().assign(scene="mean")
    # MEt3R and FID of a dataset only from every one of its scenes (a mean of the scenes that have one would mislead)
    for col in [m.column for m in of_scope("scene")]:
        means[col] = per_scene.groupby(["dataset", "method"])[col].agg(lambda v: v.mean() if v.notna().all() else np.nan).to_numpy()
    pooled = []
    for r in means.itertuples():
        scenes = per_scene[(per_scene.dataset == r.dataset) & (per_scene.method == r.method)].scene
        fs = [feats.get((r.dataset, s, r.method)) for s in scenes]
        if fs and all(f is not None and f["available"] for f in fs):
            a, b = np.concatenate([f["render"] for f in fs]), np.concatenate([f["gt"] for f in fs])
            pooled.append((fid(a, b), *kid(a, b)))
        else:
            pooled.append((np.nan, np.nan, np.nan))
    means[["fid_pooled", "kid", "kid_se"]] = pooled if pooled else np.empty((0, 3))
    rank = {m: i for i, m in enumerate(order)}
    per_scene = per_scene.sort_values(["dataset", "scene", "method"], key=lambda c: c.map(rank) if c.name == "method" else c)
    means = means.sort_values(["dataset", "method"], key=lambda c: c.map(rank) if c.name == "method" else c)
    summary = pd.concat([per_scene, means], ignore_index=True).reindex(columns=summary_columns())
    summary["kind"] = ["2D" if is_2d(m) else "3D" for m in summary["method"]]
    per_view = per_view.assign(_m=per_view["method"].map(rank)).sort_values(["dataset", "scene", "_m", "view"]).drop(columns="_m")
    out_dir = Path(out_dir)
    for name, df in (("per_view.csv", per_view), ("summary.csv", summary)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)

    # DVC's metrics (`dvc metrics show`, `dvc exp show`): the mean over scenes per dataset and method; 4 decimals, more for
    # a metric shown scaled up (KID x 10^3) and its error
    json_digits = {c: 6 for m in of_scope("view", "scene", "dataset") if m.scale != 1 for c in (m.column, m.error) if c}

    def num(x, digits):
        return None if x is None or math.isnan(x) else round(float(x), digits)

    write_json(
        out_dir / "summary.json",
        {
            dataset: {
                r.method: {k: num(getattr(r, k), json_digits.get(k, 4)) for k in summary_columns()[len(KEYS) : -1]} for r in df.itertuples()
            }
            for dataset, df in means.groupby("dataset", sort=True)
        },
    )
    cons = None
    if consistency_csvs:
        cons = pd.concat([pd.read_csv(p) for p in consistency_csvs], ignore_index=True)
        cons = cons.groupby(["dataset", "scene", "images"], as_index=False, sort=False)[["l1", "psnr", "valid"]].mean()
        with atomic_path(out_dir / "consistency.csv") as tmp:
            cons.to_csv(tmp, index=False)
    for dataset in sorted(summary["dataset"].unique()):
        df = summary[summary["dataset"] == dataset]
        views = n_views[dataset]
        dcons = None if cons is None else cons[cons["dataset"] == dataset]
        with atomic_path(out_dir / f"{dataset}.md") as tmp:
            tmp.write_text(tables_markdown(dataset, df, views, dcons, budgets))
        with atomic_path(out_dir / f"{dataset}.html") as tmp:
            tmp.write_text(tables_html(dataset, df, views, dcons, budgets))
    return summary


def _name(method: str) -> str:
    return f"{method} (2D)" if is_2d(method) else method


def _cells(df: pd.DataFrame, columns) -> list[list[tuple[str, bool]]]:
    """Per row, per column: the formatted value and whether it is the column's best as shown (ties all bold; none
    when every value shown is the same)."""
    out = [[] for _ in range(len(df))]
    for m in columns:
        digits = m.digits
        shown = np.round(df[m.column].to_numpy(dtype=float) * m.scale, digits)
        finite = shown[~np.isnan(shown)]
        best = (finite.max() if m.higher_is_better else finite.min()) if len(finite) > 1 and np.ptp(finite) > 0 else None
        for i, v in enumerate(shown):
            if math.isnan(v):
                text = "n/a"
            elif m.error:
                text = f"{v:.{digits}f} ± {m.scale * df[m.error].iloc[i]:.{digits}f}"
            else:
                text = f"{v:.{digits}f}"
            out[i].append((text, best is not None and v == best))
    return out


def _budget_note(budgets: dict[str, int] | None) -> list[str]:
    """A line when the methods fitting a 3DGS at HR had different budgets: their scores then also differ by that."""
    if not budgets or len(set(budgets.values())) < 2:
        return []
    return [
        "The methods' 3DGS steps at HR differ: "
        + ", ".join(f"{m} {n}" for m, n in budgets.items())
        + " (isr and supergaussian get 3dsr's budget unless their iterations are set; see docs/params.md)."
    ]


def _notes(df: pd.DataFrame, views: pd.Series, budgets: dict[str, int] | None = None) -> list[str]:
    n = sorted(set(views.to_numpy().tolist()))
    per = " or ".join(map(str, n))
    total = int(views.groupby(level="method").sum().max()) if len(views) else 0
    return [
        f"† FID as the official evaluation computes it: per scene, the Inception features of its {per} test renders against their "
        f"ground truth, then the mean over the scenes. From {per} images per side (against 2048 feature dimensions) an FID is "
        "dominated by its small-sample bias: it is not a reliable estimate; read it beside the pooled FID (all "
        f"{total} test views of the dataset against their ground truth) and KID (unbiased; ± its jackknife standard error over the views).",
        _missing_note(df)
        + "(2D) rows are 2D super-resolution of each test view's own LR image (no 3D model): a reference, not a 3D method. "
        "Best value of each column in bold.",
    ] + _budget_note(budgets)


# why a column is n/a: weights the metric loads were not found (or not fetched), or its own step was not run
_WHY_MISSING = {"met3r": "needs `threedsr met3r` to have been run"}


def _label(m) -> str:
    """A column's header without its direction, mark or scale: 'KID ×10³ ↓' -> 'KID'."""
    return re.sub(r"\s*(×\S+|[↑↓†])", "", m.header).strip()


def _missing_note(df: pd.DataFrame) -> str:
    """A sentence naming the columns that are n/a in these rows, and why; nothing when every column has its values."""
    means = df[df["scene"] == "mean"]  # a dataset's column (pooled FID, KID) has values in its mean rows only
    missing = [m for m in of_scope("view", "scene", "dataset") if (means if m.scope == "dataset" else df)[m.column].isna().any()]
    if not missing:
        return ""
    weights = [_label(m) for m in missing if m.column not in _WHY_MISSING]
    reasons = (
        [
            f"{', '.join(weights)} need{'s' if len(weights) == 1 else ''} weights that were not on this machine (docs/metrics.md "
            "says which file goes where)"
        ]
        if weights
        else []
    )
    reasons += [f"{_label(m)} {_WHY_MISSING[m.column]}" for m in missing if m.column in _WHY_MISSING]
    return f"n/a: not computed — {'; '.join(reasons)}. "


def tables_markdown(
    dataset: str, summary: pd.DataFrame, views: pd.Series, consistency: pd.DataFrame | None, budgets: dict[str, int] | None = None
) -> str:
    """The paper's table for one dataset (mean over scenes, one row per method), then one table per scene."""

    def table(df, columns):
        head = "| method | " + " | ".join(m.header for m in columns) + " |"
        rows = [head, "|---|" + "---|" * len(columns)]
        for name, cells in zip(df["method"], _cells(df, columns)):
            rows.append(f"| {_name(name)} | " + " | ".join(f"**{t}**" if b else t for t, b in cells) + " |")
        return rows

    means = summary[summary["scene"] == "mean"]
    lines = [
        f"# {dataset}: test views at HR",
        "",
        f"Mean over the {summary['scene'].nunique() - 1} scene(s); each scene: the mean over its test views.",
        "",
    ]
    lines += (
        table(means, of_scope("view", "scene", "dataset"))
        + [""]
        + [f"{n}  " if i == 0 else n for i, n in enumerate(_notes(summary, views, budgets))]
        + [""]
    )
    for scene in [s for s in summary["scene"].unique() if s != "mean"]:
        df = summary[summary["scene"] == scene]
        lines += [f"## {scene}", ""] + table(df, of_scope("view", "scene")) + [""]
    if consistency is not None and len(consistency):
        lines += [
            "## Multi-view consistency of the training views' images",
            "",
            "Each view warped into its nearest training view with the LR model's HR depth; masked error against that view's image",
            "(lower L1 / higher PSNR = more consistent; the ground truth row is the floor set by depth errors and lighting;",
            "blurry images also agree more, so read it beside the test-view scores).",
            "",
            "| images | scene | warp L1 ×255 ↓ | warp PSNR ↑ | valid |",
            "|---|---|---|---|---|",
        ]
        for r in consistency.itertuples():
            lines.append(f"| {r.images} | {r.scene} | {r.l1:.2f} | {r.psnr:.2f} | {r.valid:.2f} |")
    return "\n".join(lines) + "\n"


def tables_html(
    dataset: str, summary: pd.DataFrame, views: pd.Series, consistency: pd.DataFrame | None, budgets: dict[str, int] | None = None
) -> str:
    """One self-contained page per dataset with the same tables (what the Snakemake report shows)."""

    def table(df, columns):
        head = "<tr><th>method</th>" + "".join(f"<th>{escape(m.header)}</th>" for m in columns) + "</tr>"
        body = [
            f"<tr><td>{escape(_name(name))}</td>"
            + "".join(f"<td><b>{escape(t)}</b></td>" if b else f"<td>{escape(t)}</td>" for t, b in cells)
            + "</tr>"
            for name, cells in zip(df["method"], _cells(df, columns))
        ]
        return f"<table>{head}{''.join(body)}</table>"

    means = summary[summary["scene"] == "mean"]
    parts = [
        f"<h2>{escape(dataset)}: test views at HR</h2>",
        f"<p>Mean over the {summary['scene'].nunique() - 1} scene(s); each scene: the mean over its test views.</p>",
        table(means, of_scope("view", "scene", "dataset")),
    ] + [f"<p><small>{escape(n)}</small></p>" for n in _notes(summary, views, budgets)]
    for scene in [s for s in summary["scene"].unique() if s != "mean"]:
        parts += [f"<h3>{escape(scene)}</h3>", table(summary[summary["scene"] == scene], of_scope("view", "scene"))]
    if consistency is not None and len(consistency):
        parts += [
            "<h2>Multi-view consistency of the training views' images</h2>",
            "<p>Each view warped into its nearest training view with the LR model's HR depth; masked error against that view's "
            "image (lower L1, higher PSNR = more consistent). The ground truth row is the floor set by depth errors and lighting; "
            "blurry images also agree more, so read it beside the test-view scores.</p>",
            consistency[["scene", "images", "l1", "psnr", "valid"]]
            .rename(columns={"l1": "warp L1 ×255 ↓", "psnr": "warp PSNR ↑"})
            .to_html(index=False, float_format=lambda x: f"{x:.2f}", border=0),
        ]
    style = (
        "body{font-family:sans-serif;margin:12px} table{border-collapse:collapse;margin-bottom:8px} "
        "td,th{padding:3px 10px;border-bottom:1px solid #ccc;text-align:right} td:first-child,th:first-child{text-align:left}"
    )
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(dataset)}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
