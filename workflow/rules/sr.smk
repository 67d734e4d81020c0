# Super-resolution models, the per-image SR methods isr (SR each view, then 3DGS) and sr2d (SR alone),
# and 3dsr (diffusion sampling and 3DGS fitting, interleaved).
import json
import shlex

from threedsr.sr.names import DIFFUSION_MODELS, MODELS, STABLESR_FILES


def sr_model(method):
    """The SR model a method uses (after the hyphen, else sr.model)."""
    return threedsr.config.method_sr_model(config, method)


def model_weights(model):
    """Files an SR model needs: the trained prior, the converted Real-ESRGAN or StableSR-Turbo, RealBasicVSR's checkpoint."""
    if model == "tiny":
        return "results/models/tiny"
    if model == "stablesr-turbo":
        return "results/models/stablesr-turbo"
    if model == "realesrgan" and not config["sr"]["realesrgan"]["path"]:
        return "results/models/realesrgan-x4plus.safetensors"
    if model == "realbasicvsr":  # the user's file: a changed checkpoint reruns what it upsampled
        return config["sr"]["realbasicvsr"]["path"] or []
    return []


def model_path_arg(input):
    return f"--model-path {input.weights}" if input.weights else ""


def sr_views(model):
    """All views when an isr method fits 3DGS to this model's output, else only the test views (sr2d)."""
    return "all" if any(threedsr.config.split_method(m)[0] == "isr" and sr_model(m) == model for m in METHODS) else "test"


SAMPLER_ARGS = (
    f"--steps {config['threedsr']['steps']} --update {config['threedsr']['update']} --eta {config['threedsr']['eta']} "
    f"--init {config['threedsr']['init']} --seed {config['threedsr']['seed']}"
)


wildcard_constraints:
    model="|".join(MODELS),
    sr2d=r"sr2d(-[a-z0-9-]+)?",
    isr=r"isr(-[a-z0-9-]+)?",
    tdsr=r"3dsr(-[a-z0-9-]+)?",


rule train_prior:
    output:
        directory("results/models/tiny"),
    params:
        options=json.dumps(config["sr"]["tiny"]),
        steps=config["threedsr"]["steps"],
    log:
        "results/logs/train_prior.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=0,
    shell:
        "{THREEDSR} train-prior --out {output} --options {params.options:q} --steps {params.steps} --threads {threads} > {log} 2>&1"


rule convert_realesrgan:
    output:
        "results/models/realesrgan-x4plus.safetensors",
    log:
        "results/logs/convert_realesrgan.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=2000,
        gpu=0,
    shell:
        "{THREEDSR} convert-realesrgan --out {output} > {log} 2>&1"


rule convert_stablesr:
    input:
        turbo=lambda wc: os.path.join(config["sr"]["stablesr_turbo"]["weights_dir"], STABLESR_FILES[0]),
        cfw=lambda wc: os.path.join(config["sr"]["stablesr_turbo"]["weights_dir"], STABLESR_FILES[1]),
    output:
        directory("results/models/stablesr-turbo"),
    log:
        "results/logs/convert_stablesr.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=24000,  # both checkpoints are memory-mapped; the converted networks are built in fp32
        gpu=0,
    shell:
        "{THREEDSR} convert-stablesr --turbo {input.turbo} --cfw {input.cfw} --out {output} > {log} 2>&1"


rule super_resolve:
    input:
        scene="results/scenes/{dataset}/{scene}",
        weights=lambda w: model_weights(w.model),
    output:
        directory("results/sr/{dataset}/{scene}/{model}"),
    params:
        sr=json.dumps(config["sr"]),
        model_path=lambda w, input: model_path_arg(input),
        views=lambda w: sr_views(w.model),
        sampler=SAMPLER_ARGS,
        device=config["device"],
    log:
        "results/logs/super_resolve/{dataset}/{scene}/{model}.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    shell:
        "{THREEDSR} super-resolve --scene {input.scene} --out {output} --model {wildcards.model} {params.model_path} "
        "--views {params.views} --sr {params.sr:q} {params.sampler} --device {params.device} > {log} 2>&1"


rule fit_isr:
    input:
        scene="results/scenes/{dataset}/{scene}",
        init="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        sr=lambda w: f"results/sr/{w.dataset}/{w.scene}/{sr_model(w.isr)}",
    output:
        ckpt="results/gs/{dataset}/{scene}/{isr}/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/{isr}/point_cloud.ply",
    params:
        gs=json.dumps(config["gs"]),
        iterations=config["isr"]["iterations"],
        lambda_lr=config["threedsr"]["lambda_lr"],
        device=config["device"],
        out="results/gs/{dataset}/{scene}/{isr}",
    log:
        "results/logs/fit_isr/{dataset}/{scene}/{isr}.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    shell:
        "NUMBA_NUM_THREADS={threads} {THREEDSR} fit --scene {input.scene} --out {params.out} --targets sr --sr-dir {input.sr} "
        "--lambda-lr {params.lambda_lr} --init {input.init} --iterations {params.iterations} --gs {params.gs:q} "
        "--device {params.device} > {log} 2>&1"


rule collect_sr2d:
    input:
        scene="results/scenes/{dataset}/{scene}",
        sr=lambda w: f"results/sr/{w.dataset}/{w.scene}/{sr_model(w.sr2d)}",
    output:
        renders=directory("results/renders/{dataset}/{scene}/{sr2d}"),
        scores="results/metrics/{dataset}/{scene}/{sr2d}.csv",
    params:
        lpips_backbone=LPIPS_ARG,
    log:
        "results/logs/collect_sr2d/{dataset}/{scene}/{sr2d}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=2000,
        gpu=0,
    shell:
        "{THREEDSR} collect-sr --scene {input.scene} --sr-dir {input.sr} --out {output.renders} --scores {output.scores} "
        "--dataset {wildcards.dataset} --scene-name {wildcards.scene} --method {wildcards.sr2d} {params.lpips_backbone} > {log} 2>&1"


rule fit_3dsr:
    input:
        scene="results/scenes/{dataset}/{scene}",
        init="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        weights=lambda w: model_weights(sr_model(w.tdsr)),
    output:
        ckpt="results/gs/{dataset}/{scene}/{tdsr}/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/{tdsr}/point_cloud.ply",
        steps="results/gs/{dataset}/{scene}/{tdsr}/steps.csv",
        plot=report(
            "results/gs/{dataset}/{scene}/{tdsr}/steps.png",
            caption="../report/steps.rst",
            category="3DSR per step",
            labels={"scene": "{dataset}/{scene}", "method": "{tdsr}"},
        ),
        strips=directory("results/gs/{dataset}/{scene}/{tdsr}/strips"),
        views=directory("results/gs/{dataset}/{scene}/{tdsr}/views"),
    params:
        model=lambda w: sr_model(w.tdsr),
        model_path=lambda w, input: model_path_arg(input),
        sr=json.dumps(config["sr"]),
        threedsr=json.dumps(config["threedsr"]),
        gs=json.dumps(config["gs"]),
        lpips_backbone=LPIPS_ARG,
        device=config["device"],
        out="results/gs/{dataset}/{scene}/{tdsr}",
    log:
        "results/logs/fit_3dsr/{dataset}/{scene}/{tdsr}.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=12000,
        gpu=1,
    shell:
        "NUMBA_NUM_THREADS={threads} {THREEDSR} run-3dsr --scene {input.scene} --init {input.init} --out {params.out} "
        "--model {params.model} {params.model_path} --sr {params.sr:q} --threedsr {params.threedsr:q} --gs {params.gs:q} "
        "{params.lpips_backbone} --device {params.device} > {log} 2>&1"


def consistency_sets(wildcards):
    """Image sets of the training views whose consistency is compared: label -> folder."""
    sets = {"ground truth": "hr", "bicubic": "bicubic"}
    for m in METHODS:
        base = threedsr.config.split_method(m)[0]
        if base == "isr":
            sets[f"{m}: SR images"] = f"results/sr/{wildcards.dataset}/{wildcards.scene}/{sr_model(m)}"
        elif base == "3dsr":
            sets[f"{m}: H, decoded x0"] = f"results/gs/{wildcards.dataset}/{wildcards.scene}/{m}/views/H"
            sets[f"{m}: R, renders"] = f"results/gs/{wildcards.dataset}/{wildcards.scene}/{m}/views/R"
    return sets


rule consistency:
    input:
        scene="results/scenes/{dataset}/{scene}",
        depth="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        sr=lambda w: [f for f in consistency_sets(w).values() if f.startswith("results/sr/")],
        views=lambda w: [f"results/gs/{w.dataset}/{w.scene}/{m}/views" for m in METHODS if threedsr.config.split_method(m)[0] == "3dsr"],
    output:
        "results/metrics/{dataset}/{scene}/consistency.csv",
    params:
        images=lambda w: " ".join(shlex.quote(f"{k}={v}") for k, v in consistency_sets(w).items()),
        device=config["device"],
    log:
        "results/logs/consistency/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    shell:
        "NUMBA_NUM_THREADS={threads} {THREEDSR} consistency --scene {input.scene} --depth-ckpt {input.depth} --out {output} "
        "--images {params.images} --device {params.device} > {log} 2>&1"
