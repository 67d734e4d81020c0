# Shared helpers: cross-key config checks (before any job starts) and where each scene comes from.
import os
from pathlib import Path

import threedsr.config
import threedsr.dvc_stages
from threedsr.datasets import OFFICIAL_SCENES, local_scene
from threedsr.devices import visible_gpus
from threedsr.errors import ConfigError

try:
    threedsr.config.check(config)
    if "DVC_STAGE" in os.environ:  # run by `dvc repro` / `dvc exp run`: dvc.yaml must have a stage for every job
        threedsr.dvc_stages.check_generated_for(config, Path(workflow.basedir) / "dvc.yaml")
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}")

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
THREEDSR = f'PYTHONPATH="{workflow.basedir}/workflow${{PYTHONPATH:+:$PYTHONPATH}}" python -m threedsr'
CPU_ENV = "../../envs/cpu.yaml"
LPIPS_ARG = f"--lpips-backbone {config['metrics']['lpips_backbone']}" if config["metrics"]["lpips_backbone"] else ""


wildcard_constraints:
    method="|".join(METHODS),
    dataset=r"[A-Za-z0-9_-]+",
    scene=r"[A-Za-z0-9_.-]+",
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
