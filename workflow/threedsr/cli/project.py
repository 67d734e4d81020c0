"""Project commands: the config check, the generated files (docs/params.md, dvc.yaml), DVC's restore."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import command, write_generated

log = logging.getLogger("threedsr")


# -- configuration -------------------------------------------------------------------------------


def _check_config_arguments(c):
    c.add_argument("files", nargs="+")


@command("check-config", "validate params.yaml (and override files, merged in order)", _check_config_arguments)
def _check_config(a):
    from .. import config

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
    from ..reporting.params_reference import params_reference

    write_generated(Path("docs/params.md"), params_reference(Path(".")), a.check, "threedsr params-reference", "the schema and params.yaml")


# -- DVC -----------------------------------------------------------------------------------------


def _dvc_yaml_arguments(c):
    c.add_argument("--check", action="store_true", help="fail if dvc.yaml is not current instead of writing it")


@command("dvc-yaml", "write dvc.yaml from the Snakemake workflow and params.yaml (run in the project folder)", _dvc_yaml_arguments)
def _dvc_yaml(a):
    from ..dvc_stages import dvc_yaml

    write_generated(Path("dvc.yaml"), dvc_yaml(Path(".")), a.check, "threedsr dvc-yaml", "the workflow and params.yaml")


def _mark_current_arguments(c):
    c.add_argument("--configfile", nargs="+", help="Snakemake's config files, if not params.yaml alone")


@command(
    "mark-current", "after dvc pull / checkout / run-cache restore: make Snakemake trust the restored outputs", _mark_current_arguments
)
def _mark_current(a):
    from ..dvc_stages import mark_current

    mark_current(Path("."), ["--configfile", *a.configfile] if a.configfile else [])
