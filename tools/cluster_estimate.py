"""On paper: what the paper protocol costs on a GPU cluster (docs/cluster.md).

    python tools/cluster_estimate.py                  # both paper presets, 1..64 GPUs
    python tools/cluster_estimate.py --gpus 8 16

From the workflow itself (exact): the jobs of `snakemake -n` for workflow/presets/paper-llff.yaml,
paper-mipnerf360.yaml and both together, their dependencies and their `gpu` resource; the step counts,
resolution factors, sampler steps and tiles of the presets (tiles counted with threedsr.sr.tiling).
From the datasets (published): views per scene and image sizes.
Assumed, not measured (this project's machine has no GPU): the throughput constants below, for one
A100-class GPU; read the GPU-hours as ±2x. Wall time is a list schedule over the DAG (longest path
first) on N GPUs with CPU jobs never waiting; queue waits and failures are not modelled.
"""

from __future__ import annotations

import argparse
import heapq
import math
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from threedsr.methods.registry import hr_iterations, of  # noqa: E402
from threedsr.sr.tiling import _starts  # noqa: E402

# --- assumptions (one A100-class GPU, fp16 where the pipeline uses it) ------------------------------
GS_STEP_S = (0.02, 0.045)  # a 3DGS training step: 0.02 s + 0.045 s per Mpx rendered (the 3DGS paper: 30k steps
# in ~41 min on an A6000 for MipNeRF360 at 1.0-1.6 Mpx, ~80 ms/step)
TILE_S = 0.06  # StableSR-Turbo, one 64x64 latent tile, one sampling step: the 0.9 B-parameter SFT UNet + time-aware encoder
DECODE_S_PER_MPX = 0.5  # D: the CFW VAE decoder, per HR Mpx
ENCODE_S_PER_MPX = 0.25  # E: the VAE encoder, per HR Mpx (3DSR re-encodes its renders every step)
ESRGAN_S_PER_MPX = 0.1  # Real-ESRGAN x4plus, per output Mpx
RENDER_S_PER_MPX = 0.01  # rendering a trained 3DGS, per Mpx
GPU_JOB_S = 60  # per GPU job: process start, imports, loading checkpoints and models, CUDA init
CPU_JOB_S = 30  # per CPU job

# --- the datasets: views per scene, original image size ------------------------------------------
LLFF = dict(fern=20, flower=34, fortress=42, horns=62, leaves=26, orchids=25, room=41, trex=55)
MIP360 = dict(bicycle=194, bonsai=292, counter=240, garden=185, kitchen=279, room=311, stump=125, flowers=173, treehill=141)
SIZE = {"llff": (4032, 3024), "mipnerf360": (4946, 3286), "mipnerf360-indoor": (3115, 2077)}
INDOOR = {"bonsai", "counter", "kitchen", "room"}


def scene(dataset: str, name: str, cfg: dict) -> dict:
    views = (LLFF if dataset == "llff" else MIP360)[name]
    w, h = SIZE["mipnerf360-indoor" if dataset == "mipnerf360" and name in INDOOR else dataset]
    test = math.ceil(views / cfg["test_every"])
    hr = (w // cfg["resolution"]["hr_factor"], h // cfg["resolution"]["hr_factor"])
    lr = (w // cfg["resolution"]["lr_factor"], h // cfg["resolution"]["lr_factor"])
    st = cfg["sr"]["stablesr_turbo"]
    tiles = len(_starts(hr[1] // 8, st["tile"], st["tile_overlap"])) * len(_starts(hr[0] // 8, st["tile"], st["tile_overlap"]))
    return dict(views=views, test=test, train=views - test, hr_mpx=hr[0] * hr[1] / 1e6, lr_mpx=lr[0] * lr[1] / 1e6, tiles=tiles)


def gs_steps(n: int, mpx: float) -> float:
    return n * (GS_STEP_S[0] + GS_STEP_S[1] * mpx)


def sr_views(n: int, s: dict, model: str, steps: int) -> float:
    if model == "realesrgan":
        return n * ESRGAN_S_PER_MPX * s["hr_mpx"]
    return n * (steps * s["tiles"] * TILE_S + DECODE_S_PER_MPX * s["hr_mpx"])


def seconds(rule: str, wc: dict, cfg: dict, uses_isr: set) -> float:
    """One job's time on its device (GPU for gpu=1 rules)."""
    if rule in ("download_archive",):
        return 0.0  # the data is staged before the campaign
    if "scene" not in wc or rule in ("crops_figure", "collect_sr2d", "extract_scene", "poses", "prepare_scene"):
        return CPU_JOB_S + (60 if rule in ("prepare_scene", "extract_scene") else 0)
    s = scene(wc["dataset"], wc["scene"], cfg)
    t = cfg["threedsr"]
    frames_sg = (s["train"] - 1) * (cfg["supergaussian"]["n_interp"] + 1) + 1
    frames_video = (s["train"] - 1) * (cfg["video"]["n_interp"] + 1) + 1
    cost = {
        "pretrain_lr": lambda: gs_steps(cfg["gs"]["iterations"], s["lr_mpx"]),
        "fit_hr_targets": lambda: gs_steps(of(wc["method"]).hr_budget.steps(cfg), s["hr_mpx"]),
        "fit_isr": lambda: gs_steps(hr_iterations(cfg, "isr"), s["hr_mpx"]),
        "fit_supergaussian": lambda: gs_steps(hr_iterations(cfg, "supergaussian"), s["hr_mpx"]),
        "fit_3dsr": lambda: (
            gs_steps(t["steps"] * t["iters_per_step"], s["hr_mpx"])
            + s["train"] * t["steps"] * (s["tiles"] * TILE_S + (DECODE_S_PER_MPX + ENCODE_S_PER_MPX) * s["hr_mpx"])
        ),
        "super_resolve": lambda: sr_views(s["views"] if wc["model"] in uses_isr else s["test"], s, wc["model"], t["steps"]),
        "supergaussian_frames": lambda: frames_sg * (ESRGAN_S_PER_MPX + RENDER_S_PER_MPX) * s["hr_mpx"],
        "render_test": lambda: s["test"] * 2 * RENDER_S_PER_MPX * s["hr_mpx"],
        "consistency": lambda: s["train"] * 4 * RENDER_S_PER_MPX * s["hr_mpx"],
        "videos": lambda: frames_video * 5 * RENDER_S_PER_MPX * s["hr_mpx"],
    }[rule]()
    return GPU_JOB_S + cost


def dag(workdir: Path, configfiles: list[Path]):
    """Snakemake's jobs for these config files: (rule, wildcards, gpu, dependencies), and the merged config."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            ResourceSettings(nodes=1000), ConfigSettings(configfiles=configfiles), snakefile=workdir / "Snakefile", workdir=workdir
        )
        wf.dag(DAGSettings(forceall=True))
        w = wf._workflow  # Snakemake has no public API listing a DAG's jobs
        w._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        w._build_dag()
        index = {j: i for i, j in enumerate(w.dag.jobs)}
        jobs = [
            (j.rule.name, dict(j.wildcards.items()), bool(j.resources.get("gpu")), [index[d] for d in w.dag.dependencies[j]])
            for j in w.dag.jobs
        ]
        return jobs, dict(w.config)


def schedule(jobs: list, cost: list[float], gpus: int) -> float:
    """Wall seconds: list scheduling, longest remaining path first; GPU jobs share `gpus` slots, CPU jobs never wait."""
    n = len(jobs)
    children = defaultdict(list)
    waiting = [len(deps) for _, _, _, deps in jobs]
    for i, (_, _, _, deps) in enumerate(jobs):
        for d in deps:
            children[d].append(i)
    tail = [0.0] * n  # longest path from a job's start to the end

    def longest(i):
        if not tail[i]:
            tail[i] = cost[i] + max((longest(c) for c in children[i]), default=0.0)
        return tail[i]

    sys.setrecursionlimit(10000)
    ready = [(-longest(i), i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    running, now, free = [], 0.0, gpus
    while ready or running:
        deferred = []
        while ready:
            prio, i = heapq.heappop(ready)
            if jobs[i][2]:
                if free == 0:
                    deferred.append((prio, i))
                    continue
                free -= 1
            heapq.heappush(running, (now + cost[i], i))
        for item in deferred:
            heapq.heappush(ready, item)
        now, i = heapq.heappop(running)
        free += jobs[i][2]
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (-longest(c), c))
    return now


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "params.yaml"):
            shutil.copy(REPO / name, work / name)
        for sub in ("rules", "schemas", "presets", "report"):
            shutil.copytree(REPO / "workflow" / sub, work / "workflow" / sub)
        shutil.copytree(REPO / "envs", work / "envs")
        weights = work / "weights"  # the presets check that the StableSR checkpoints exist; the DAG needs no more
        weights.mkdir()
        for f in ("stablesr_turbo.ckpt", "vqgan_cfw_00011.ckpt"):
            (weights / f).touch()
        presets = work / "workflow" / "presets"
        both = yaml.safe_load((presets / "paper-llff.yaml").read_text())
        both["datasets"]["mipnerf360"] = yaml.safe_load((presets / "paper-mipnerf360.yaml").read_text())["datasets"]["mipnerf360"]
        (work / "both.yaml").write_text(yaml.safe_dump(both))
        (work / "here.yaml").write_text(yaml.safe_dump({"sr": {"stablesr_turbo": {"weights_dir": str(weights)}}}))
        runs = {
            "LLFF (8 scenes)": [presets / "paper-llff.yaml"],
            "MipNeRF360 (9 scenes)": [presets / "paper-mipnerf360.yaml"],
            "both (17 scenes)": [work / "both.yaml"],
        }
        table, walls, counts = defaultdict(dict), {}, {}
        for label, files in runs.items():
            jobs, cfg = dag(work, [work / "params.yaml", *files, work / "here.yaml"])
            uses_isr = {cfg["sr"]["model"] if m == "isr" else m.split("-", 1)[1] for m in cfg["methods"] if m.split("-")[0] == "isr"}
            cost = [seconds(r, wc, cfg, uses_isr) if r != "all" else 0.0 for r, wc, _, _ in jobs]
            per_rule = defaultdict(lambda: [0, 0.0])
            for (r, _, gpu, _), c in zip(jobs, cost):
                if r != "all":
                    per_rule[r][0] += 1
                    per_rule[r][1] += c / 3600 if gpu else 0.0
            for r, (k, h) in per_rule.items():
                table[r][label] = (k, h)
            counts[label] = (sum(k for k, _ in per_rule.values()), sum(h for _, h in per_rule.values()))
            walls[label] = [schedule(jobs, cost, g) / 3600 for g in args.gpus]

    labels = list(runs)
    print("| rule | " + " | ".join(f"{lab}: jobs, GPU-h" for lab in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for r in sorted(table, key=lambda r: -table[r][labels[-1]][1]):
        print(f"| `{r}` | " + " | ".join(f"{table[r][lab][0]}, {table[r][lab][1]:.1f}" if lab in table[r] else "" for lab in labels) + " |")
    print("| total | " + " | ".join(f"**{counts[lab][0]}, {counts[lab][1]:.0f}**" for lab in labels) + " |")
    print()
    print("| wall time (h) on | " + " | ".join(f"{g} GPU{'s' * (g > 1)}" for g in args.gpus) + " |")
    print("|---|" + "---|" * len(args.gpus))
    for lab in labels:
        print(f"| {lab} | " + " | ".join(f"{w:.1f}" for w in walls[lab]) + " |")


if __name__ == "__main__":
    main()
