"""Data commands: synthetic scenes, official downloads, poses, LR/HR preparation, the data report."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import command, params_argument, path_arguments

log = logging.getLogger("threedsr")


def _generate_synthetic_arguments(c):
    c.add_argument("--scene", required=True)
    path_arguments(c, "--out")
    params_argument(c)


@command("generate-synthetic", "render a synthetic scene in the official layout", _generate_synthetic_arguments)
def _generate_synthetic(a):
    from ..data.synthetic import generate_scene

    s = a.params.datasets["synthetic"]
    meta = generate_scene(a.scene, a.out, s.width, s.height, s.supersample, s.num_points, s.seed)
    log.info("generated %s: %d views, %d points, textures %s", a.scene, meta["num_views"], meta["num_points"], meta["textures"])


def _download_arguments(c):
    c.add_argument("--out", type=Path, required=True, help="destination; its file name selects the archive")


@command("download", "download an official dataset archive (resumable, checksummed)", _download_arguments)
def _download(a):
    from ..data.download import archive_for, download

    download(archive_for(Path(a.out).name), a.out)


def _extract_arguments(c):
    path_arguments(c, "--archive", "--out")
    c.add_argument("--dataset", required=True)
    c.add_argument("--scene", required=True)


@command("extract", "extract one scene of an official archive", _extract_arguments)
def _extract(a):
    from ..data.datasets import OFFICIAL_SCENES
    from ..data.download import extract_scene

    _, prefix = OFFICIAL_SCENES[a.dataset][a.scene]
    extract_scene(a.archive, prefix, a.out)


def _poses_arguments(c):
    path_arguments(c, "--scene-dir", "--out")
    c.add_argument("--work-dir", type=Path, required=True, help="scratch folder for SfM / triangulation")
    params_argument(c)


@command("poses", "read or compute the poses and initial points of a scene", _poses_arguments)
def _poses(a):
    from ..data.poses import load_scene_poses

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
    from ..data.poses import ScenePoses
    from ..data.prepare import prepare_scene

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
    from ..reporting.data_report import write_data_report

    print(write_data_report([Path(p) for p in a.scenes], a.out_dir).to_string(index=False))
