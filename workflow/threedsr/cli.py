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
        a.scene_dir, ScenePoses.load(a.poses), a.out, a.lr_factor, a.hr_factor, a.test_every, {"dataset": a.dataset, "scene": a.scene}
    )
    log.info("%s/%s: %d train + %d test views, LR %s, HR %s", a.dataset, a.scene, meta["num_train"], meta["num_test"], meta["lr_size"], meta["hr_size"])


def _data_report(a):
    from .report import write_data_report

    table = write_data_report([Path(p) for p in a.scenes], a.out_dir)
    print(table.to_string(index=False))


def parser() -> argparse.ArgumentParser:
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
    c.set_defaults(func=_prepare)

    c = sub.add_parser("data-report", help="summary table and contact sheets of prepared scenes")
    c.add_argument("--out-dir", type=Path, required=True)
    c.add_argument("scenes", nargs="+")
    c.set_defaults(func=_data_report)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ThreeDSRError as e:
        print(f"threedsr {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
