"""`threedsr <command>`: the steps the Snakemake rules (and DVC stages) run.

Each command is a handler with its arguments declared right above it (`@command`, base.py), in the module of its area:
project.py (config check, generated files, DVC), data.py, gs.py (3DGS fits and renders), sr.py, methods.py (3DSR,
SuperGaussian, consistency), reporting.py (scores, tables, figures, videos). Settings from params.yaml reach a command
one way only: `--params JSON`, the keys it reads (whole blocks or dotted keys, nested as in params.yaml), which the
rule builds with `params_json(...)` (workflow/rules/common.smk), parsed once into settings.Given's typed blocks.
Paths (inputs, outputs, weights) are arguments of their own.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ThreeDSRError
from . import data, gs, methods, project, reporting, sr  # each registers its commands
from .base import COMMANDS

AREAS = (project, data, gs, sr, methods, reporting)  # the order `threedsr --help` lists them: the pipeline's


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="threedsr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    areas = [area.__name__ for area in AREAS]
    for name, (help, arguments, handler) in sorted(COMMANDS.items(), key=lambda c: areas.index(c[1][2].__module__)):
        c = sub.add_parser(name, help=help)
        if arguments:
            arguments(c)
        c.set_defaults(func=handler)
    return p


def _exit_on_sigterm(signum, frame):
    # Snakemake (and SLURM) stop a job with SIGTERM, which by default ends Python without running `finally`
    # blocks: raising instead lets every atomic write remove its temporary file on the way out.
    raise SystemExit(128 + signum)


def _exit_with_parent() -> None:
    """Snakemake stops a running job (Ctrl-C, a failed job without --keep-going) by killing the shell it started: the
    Python under it ran on, orphaned, until its own PID was killed. On Linux the kernel now sends it SIGTERM when that
    parent goes, which _exit_on_sigterm turns into an ordinary exit (temporary files removed, resume points kept)."""
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: the job is stopped the way Snakemake stops it
        return


def main(argv: list[str] | None = None) -> int:
    import signal

    from ..devices import threads_as_given

    threads_as_given()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # a warning (a missing weight file, say) is one line of the job's log
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _exit_with_parent()
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ThreeDSRError as e:
        print(f"threedsr {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0
