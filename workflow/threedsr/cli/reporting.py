"""Scores, tables, figures and videos."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import command, params_argument, params_device, path_arguments, score_renders

log = logging.getLogger("threedsr")


def _evaluate_arguments(c):
    path_arguments(c, "--renders", "--scene", "--out")
    c.add_argument("--features", type=Path, help="also the Inception features of the views and their ground truth (.npz, for FID)")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene-name", required=True)
    c.add_argument("--method", required=True)
    params_argument(c)


@command(
    "evaluate", "PSNR / SSIM / LPIPS / NIQE of rendered test views against the HR ground truth (and FID's features)", _evaluate_arguments
)
def _evaluate(a):
    print(score_renders(a, a.renders, a.out).to_string(index=False))


def _aggregate_arguments(c):
    path_arguments(c, "--out-dir")
    c.add_argument("--features", nargs="*", default=[], help="the scoring jobs' Inception features (.npz): FID, pooled FID and KID")
    c.add_argument("--met3r", type=Path, help="MEt3R scores of `threedsr met3r` (scores.csv), if it was run")
    c.add_argument(
        "--renders", nargs="*", default=[], help="the test renders' folders (<dataset>/<scene>/<method>): MEt3R counts if it scored them"
    )
    c.add_argument("--consistency", nargs="*", default=[], help="the consistency rule's tables")
    params_argument(c)
    c.add_argument("per_view", nargs="+")


@command("aggregate", "per-view and summary tables of all methods (the paper's table per dataset)", _aggregate_arguments)
def _aggregate(a):
    from ..methods.registry import hr_budgets
    from ..reporting.tables import aggregate

    table = aggregate(
        [Path(p) for p in a.per_view],
        a.out_dir,
        [Path(p) for p in a.consistency],
        list(a.params.methods),
        [Path(p) for p in a.features],
        a.met3r,
        hr_budgets(a.params.raw),
        [Path(p) for p in a.renders],
    )
    print(table.to_string(index=False))


def _met3r_arguments(c):
    c.add_argument(
        "--renders", type=Path, default=Path("results/renders"), help="the render jobs' folder (<dataset>/<scene>/<method>/<view>.png)"
    )
    c.add_argument("--scenes", type=Path, default=Path("results/scenes"), help="the prepared scenes (cameras and the test split)")
    c.add_argument("--out", type=Path, default=Path("results/met3r"), help="pairs.csv, the square images, cameras.json; scores.csv")
    c.add_argument("--size", type=int, default=256, help="MEt3R's input size: renders are centre-cropped to a square and resized to it")
    c.add_argument("--export-only", action="store_true", help="write the pairs and images only (to score them elsewhere)")
    c.add_argument("--device", default="cuda")
    c.add_argument("--batch-size", type=int, default=4)


@command("met3r", "MEt3R of the test renders (needs the met3r package): export the image pairs, score them", _met3r_arguments)
def _met3r(a):
    from ..metrics import met3r

    pairs = met3r.export(a.renders, a.scenes, a.out, a.size)
    log.info("%s: %d image pairs of %d methods exported (pairs.csv)", a.out, len(pairs), pairs["method"].nunique())
    if a.export_only:
        return
    table = met3r.score(pairs, a.out, met3r.load_met3r(a.size, a.device), a.device, a.batch_size)
    print(table.groupby(["dataset", "scene", "method"], sort=False)["met3r"].mean().to_string())
    log.info("wrote %s; `snakemake --cores all` (aggregate_metrics) puts MEt3R in the tables", Path(a.out) / "scores.csv")


def _crops_arguments(c):
    path_arguments(c, "--scene", "--out")
    c.add_argument("--renders", nargs="+", required=True, help="one folder per method, in the order of params.yaml's methods")
    params_argument(c)


@command("crops", "side-by-side crops of the test views: LR input / methods / ground truth", _crops_arguments)
def _crops(a):
    from ..reporting.figures import crops_figure

    crops_figure(a.scene, dict(zip(a.params.methods, (Path(p) for p in a.renders))), a.out)


def _videos_arguments(c):
    path_arguments(c, "--scene")
    c.add_argument("--out-dir", type=Path, required=True, help="writes <method>.mp4 and side_by_side.mp4")
    c.add_argument("--ckpts", nargs="+", required=True, help="METHOD=CHECKPOINT, in the order of the grid")
    c.add_argument("--html", type=Path, help="also a self-contained page playing the side-by-side video")
    c.add_argument("--title", default="fly-through")
    params_argument(c)


@command(
    "videos", "fly-through MP4s of checkpoints along the smooth path through the training cameras, and side by side", _videos_arguments
)
def _videos(a):
    from ..reporting.video import scene_videos, video_page

    ckpts = dict(item.split("=", 1) for item in a.ckpts)
    v = a.params.video
    n = scene_videos(a.scene, {m: Path(p) for m, p in ckpts.items()}, a.out_dir, v.n_interp, v.fps, params_device(a.params))
    if a.html:
        video_page(a.out_dir / "side_by_side.mp4", a.html, a.title, f"{a.title}: {', '.join(ckpts)} along one path, {n} frames")


# -- the viewer ----------------------------------------------------------------------------------


def _view_arguments(c):
    c.add_argument("scene", metavar="DATASET/SCENE", help="a scene the pipeline has run, e.g. synthetic/forward")
    c.add_argument("--results", type=Path, default=Path("results"), help="the pipeline's results folder (default: results)")
    c.add_argument(
        "--configfile",
        nargs="*",
        default=None,
        help="params.yaml and overrides, to name the configured methods without a model (default: ./params.yaml if present)",
    )
    c.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0 shares it on the network)")
    c.add_argument("--port", type=int, default=0, help="the viewer's port (default: a free one, printed)")
    c.add_argument("--max-splats", type=int, default=300_000, help="per model: above it the splats covering most are kept")
    c.add_argument("--left", default="isr", help="the side-by-side page's first method (default isr)")
    c.add_argument("--right", default="3dsr", help="its second (default 3dsr)")


@command("view", "a browser viewer (viser) of every method's 3D model of a scene, side by side, with its cameras", _view_arguments)
def _view(a):
    from .. import config
    from ..errors import DataError
    from ..viewer import app, catalog

    dataset, _, scene = a.scene.partition("/")
    files = a.configfile if a.configfile is not None else ([Path("params.yaml")] if Path("params.yaml").is_file() else [])
    cfg = None
    if files:
        cfg = config.load(*files)
        config.validate(cfg)
    if not 0 <= a.port <= 65535:
        raise DataError(f"--port {a.port}: not a port (0-65535; 0 for a free one)")
    if a.max_splats < 1:
        raise DataError(f"--max-splats {a.max_splats}: must be at least 1")
    results = catalog.find(a.results, dataset, scene, cfg)
    app.run(results, app.ViewerConfig(a.host, a.port, a.max_splats, a.left, a.right))


def _view_page_arguments(c):
    path_arguments(c, "--scene", "--out")
    c.add_argument("--ckpts", nargs="+", required=True, help="METHOD=CHECKPOINT, in the order shown")
    c.add_argument("--title", default="models")
    c.add_argument("--max-splats", type=int, default=60_000, help="per model: above it the splats covering most are kept")
    c.add_argument("--seconds", type=float, default=4.0, help="seconds each model is shown in the page's timeline")


@command(
    "view-page", "the viewer's scene as one static, offline HTML page (every model in turn, cameras as frustums)", _view_page_arguments
)
def _view_page(a):
    from ..data.scene import PreparedScene
    from ..viewer.export import export_page
    from ..viewer.layers import load_layer

    layers = {m: load_layer(p, a.max_splats) for m, p in (item.split("=", 1) for item in a.ckpts)}
    size = export_page(PreparedScene(a.scene), layers, a.out, a.title, a.seconds)
    log.info("%s: %s, %.1f MB", a.out, ", ".join(f"{m} {layer.count:,} splats" for m, layer in layers.items()), size / 1e6)
