# Shared helpers: cross-key config checks (before any job starts) and where each scene comes from.
import json
import os
import shlex
from pathlib import Path

import threedsr.config
import threedsr.dvc_stages
from threedsr.datasets import OFFICIAL_SCENES, local_scene
from threedsr.devices import visible_gpus
from threedsr.errors import ConfigError

try:
    threedsr.config.validate(config)  # the schema, then the cross-key checks: one message naming the key, no schema dump
    if "DVC_STAGE" in os.environ:  # run by `dvc repro` / `dvc exp run`: dvc.yaml must have a stage for every job
        threedsr.dvc_stages.check_generated_for(config, Path(workflow.basedir) / "dvc.yaml")
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}")


onstart:
    # device: cuda where the jobs run on this machine and it has no GPU: refused before any job. Here, not above: the
    # executor is known only once the run starts (on a cluster the nodes have the GPUs, not the host that submits).
    if workflow.local_exec:
        try:
            threedsr.config.check_device(config, visible_gpus())
        except ConfigError as e:
            raise WorkflowError(f"invalid configuration: {e}")


# A scene not found under its dataset's root is downloaded: say so, and why, before any job runs
for archive, reasons in threedsr.config.downloads(config).items():
    for reason in reasons:
        logger.warning(f"{reason} ({archive})")

# One GPU job per GPU: unless `--resources gpu=N` was given, cap the `gpu` resource that training
# rules request at the GPUs present. Without GPUs there is no cap: CPU jobs are bounded by threads.
if "gpu" not in workflow.global_resources and (n_gpus := visible_gpus()) > 0:
    workflow.register_resource("gpu", n_gpus)

SCENES = threedsr.config.scenes(config)
METHODS = config["methods"]
# methods with a 3DGS model to render (sr2d is 2D super-resolution alone)
GS_METHODS = [m for m in METHODS if threedsr.config.split_method(m)[0] != "sr2d"]

# Every rule runs this checkout's package: in the active virtualenv, or in the rule's conda
# environment (--software-deployment-method conda), which holds the dependencies only.
# Every value that reaches a shell command is quoted (`{...:q}`, shlex.quote): params.yaml is shared
# like code and real paths have spaces; a value must never run as shell code.
THREEDSR = f"PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'workflow'))}${{PYTHONPATH:+:$PYTHONPATH}} python -m threedsr"
CPU_ENV = "../../envs/cpu.yaml"

# Threads: a 3DGS job (fits, renders, videos, SuperGaussian's frames) keeps a second core only 60-70 % busy at these
# image sizes (the Python and small torch ops between its kernels run on one), so on a small machine two one-thread
# jobs side by side finish sooner than two two-thread jobs in turn; their 3DGS results do not depend on the count.
# train_prior keeps 2: its weights' rounding follows the thread count (the prior cache's key holds it). The prior's
# own outputs round with the count too (super_resolve's images, fit_3dsr's decodes: scores move in the fourth decimal).
# Where cores would idle, give a job more: `snakemake --cores all --set-threads fit_3dsr=8`.
# Priorities: train_prior, the one two-thread job, goes first, while both cores are free (a two-thread job that became
# ready later would wait until no one-thread job is left to start); then the jobs that start the longest chain
# (SuperGaussian's frames and fit), so the last minutes are not one job on one core.


def params_json(*keys):
    """The params.yaml keys a command reads (whole blocks or dotted keys), nested as in params.yaml, as the one JSON
    argument every command takes (`--params {params.config:q}`). A job reruns when, and only when, one of them changes."""
    out = {}
    for key in keys:
        *path, last = key.split(".")
        src, dst = config, out
        for k in path:
            src, dst = src[k], dst.setdefault(k, {})
        dst[last] = src[last]
    return json.dumps(out, sort_keys=True)


def hr_budget_keys(block):
    """What decides isr's or supergaussian's 3DGS steps at HR: its own iterations, and 3DSR's budget while that is null."""
    return [f"{block}.iterations"] + (["threedsr.steps", "threedsr.iters_per_step"] if config[block]["iterations"] is None else [])


# dataset and scene names are plain path components (the schema says the same): never '.', '..', a
# leading '-' or a separator, so no job's output can resolve outside its own folder
wildcard_constraints:
    method="|".join(METHODS),
    dataset=threedsr.config.DATASET_NAME,
    scene=threedsr.config.SCENE_NAME,
    archive=r"[A-Za-z0-9_.-]+\.zip",


def scene_source(wildcards):
    """The folder holding a scene in the official layout: the user's copy, a generated or an extracted one."""
    if wildcards.dataset == "synthetic":
        return f"results/raw/synthetic/{wildcards.scene}"
    local = local_scene(config["datasets"][wildcards.dataset]["root"], wildcards.scene)
    if local is not None:
        return str(local)
    return f"results/raw/{wildcards.dataset}/{wildcards.scene}"


def scene_archive(wildcards):
    archive, _ = OFFICIAL_SCENES[wildcards.dataset][wildcards.scene]
    return f"results/downloads/{archive}"


def prepared_scenes():
    return [f"results/scenes/{d}/{s}" for d, s in SCENES]
