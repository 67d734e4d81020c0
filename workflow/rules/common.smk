# Shared helpers: cross-key config checks (before any job starts) and where each scene comes from.
import json
import os
import shlex
from pathlib import Path

import threedsr.config
import threedsr.dvc_stages
from threedsr.methods import registry as method_registry
from threedsr.data.datasets import OFFICIAL_SCENES, local_scene
from threedsr.devices import visible_gpus
from threedsr.errors import ConfigError
from threedsr.sr import registry
from threedsr.sr.sampler_config import SAMPLER_KEYS

try:
    threedsr.config.validate(config)  # the schema, then the cross-key checks: one message naming the key, no schema dump
    if "DVC_STAGE" in os.environ:  # run by `dvc repro` / `dvc exp run`: dvc.yaml must have a stage for every job
        threedsr.dvc_stages.check_generated_for(config, Path(workflow.basedir) / "dvc.yaml")
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}")


onstart:
    # device: cuda where the jobs run on this machine and it has no GPU: refused before any job. Here, not above: the
    # executor is known only once the run starts (on a cluster the nodes have the GPUs, not the host that submits).
    try:
        threedsr.config.check_writable(Path("results"))  # a read-only results/ was Snakemake's traceback
    except ConfigError as e:
        raise WorkflowError(str(e))
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
if config["device"] == "auto" and "conda" in str(workflow.deployment_settings.deployment_method).lower():
    logger.warning("device: auto with conda environments: the GPU jobs get envs/cpu.yaml (CPU torch); set device: cuda for envs/cuda.yaml")

SCENES = threedsr.config.scenes(config)
METHODS = config["methods"]
# methods with a 3DGS model to render (sr2d is 2D super-resolution alone)
GS_METHODS = [m for m in METHODS if method_registry.of(m).dims == 3]
# methods fitted by the generic rule fit_hr_targets (their entry names a module with hr_target(scene, view))
TARGET_METHODS = [m for m in METHODS if method_registry.of(m).targets]

# Every job runs this checkout's package (`python -m threedsr`) in the active virtualenv, or in its conda environment
# (--software-deployment-method conda), which holds the dependencies only: the checkout goes first on PYTHONPATH, set
# in the prefix of every shell command (with Snakemake's own prefix for bash, `set -euo pipefail;`). Snakemake formats
# the prefix as it formats commands: its braces are doubled. Every value that reaches a shell command is quoted
# (`{...:q}`, shlex.quote): params.yaml is shared like code and real paths have spaces; a value must never run as code.
_CHECKOUT = shlex.quote(str(Path(workflow.basedir) / "workflow")).replace("{", "{{").replace("}", "}}")
shell.prefix(f"set -euo pipefail; export PYTHONPATH={_CHECKOUT}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")
CPU_ENV = "../../envs/cpu.yaml"
# The jobs that use a GPU when there is one (`resources: gpu=1`) get the CUDA build of torch (envs/cuda.yaml) under
# --software-deployment-method conda when params.yaml says `device: cuda`. With `device: auto` they get envs/cpu.yaml:
# where the jobs will run, and so whether there will be a GPU, is not known while this file is parsed (a cluster's
# login node has none), and a job must find the environment the submitting Snakemake created.
GPU_ENV = "../../envs/cuda.yaml" if config["device"] == "cuda" else CPU_ENV

# Threads: a 3DGS job (fits, renders, videos, SuperGaussian's frames) keeps a second core only 60-70 % busy at these
# image sizes (the Python and small torch ops between its kernels run on one), so on a small machine two one-thread
# jobs side by side finish sooner than two two-thread jobs in turn; their 3DGS results do not depend on the count.
# train_prior (only when sr.tiny.path asks to retrain the shipped prior) keeps 2: its weights' rounding follows the
# thread count (the prior cache's key holds it; the shipped prior was trained at 1). The prior's own outputs round with
# the count too (super_resolve's images, fit_3dsr's decodes: scores move in the fourth decimal).
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


# What the jobs running an SR model read of the sr block: all of it but the prior's training settings (those are
# train_prior's; a changed sr.tiny.iterations reruns no SR job while the shipped prior is used).
SR_KEYS = [f"sr.{k}" for k in config["sr"] if k != "tiny"] + ["sr.tiny.path"]


def budget_keys(method):
    """The params keys a method's 3DGS steps at HR are read from (its registry entry's Budget): its fit job declares them."""
    return method_registry.of(method).hr_budget.keys(config)


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


# -- methods and SR models: which model a method uses, what its jobs read (workflow/rules/sr.smk) --------------------


def sr_model(method):
    """The SR model a method runs (method_registry: after the hyphen, else sr.model; SuperGaussian's upsampler)."""
    return threedsr.config.method_sr_model(config, method)


def model_weights(model):
    """The weights a model's jobs depend on (sr/registry.py): the user's, the package's (the prior), or what a rule writes."""
    return registry.spec(model).weights(config["sr"]) or []


def model_path_args(input):
    return ["--model-path", input.weights] if input.weights else []


def sr_views(model):
    """All views when an isr method fits 3DGS to this model's output, else only the test views (sr2d)."""
    return "all" if any(method_registry.of(m).sr_images and method_registry.of(m).dims == 3 and sr_model(m) == model for m in METHODS) else "test"


def sampler_keys(model):
    """The sampler's keys (threedsr.steps, ...) for a diffusion model: a sampler sweep never reruns Real-ESRGAN."""
    return [f"threedsr.{k}" for k in SAMPLER_KEYS] if registry.spec(model).diffusion else []


def consistency_sets(wildcards):
    """Image sets of the training views whose consistency is compared: label -> folder."""
    sets = {"ground truth": "hr", "bicubic": "bicubic"}
    for m in METHODS:
        base = method_registry.split(m)[0]
        if base == "isr":
            sets[f"{m}: SR images"] = f"results/sr/{wildcards.dataset}/{wildcards.scene}/{sr_model(m)}"
        elif base == "3dsr":
            sets[f"{m}: H, decoded x0"] = f"results/gs/{wildcards.dataset}/{wildcards.scene}/{m}/views/H"
            sets[f"{m}: R, renders"] = f"results/gs/{wildcards.dataset}/{wildcards.scene}/{m}/views/R"
    return sets


def every_output(wildcards):
    """Every job's outputs from the poses on (not the downloads). Snakemake does not rebuild a missing
    intermediate file when what depends on it exists: a killed job's deleted checkpoint would otherwise
    stay missing under old tables. Asked for here, it reruns, and so does everything downstream of it."""
    out = []
    for d, s in SCENES:
        out += [f"results/poses/{d}/{s}", f"results/scenes/{d}/{s}", f"results/metrics/{d}/{s}/consistency.csv"]
        out += [f"results/gs/{d}/{s}/{m}/{f}" for m in GS_METHODS for f in ("ckpt.pt", "point_cloud.ply")]
        out += [f"results/renders/{d}/{s}/{m}" for m in METHODS] + [f"results/metrics/{d}/{s}/{m}{x}" for m in METHODS for x in (".csv", ".inception.npz")]
        out += [f"results/sr/{d}/{s}/{sr_model(m)}" for m in METHODS if method_registry.of(m).sr_images]
        if "supergaussian" in METHODS:
            out.append(f"results/supergaussian/{d}/{s}/frames")
    return out
