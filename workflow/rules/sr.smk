# Super-resolution models and the per-image SR methods: isr (SR each view, then 3DGS) and sr2d (SR alone).
import json

from threedsr.sr.names import MODELS


def sr_model(method):
    """The SR model a method uses: the one after the hyphen (sr2d-realesrgan), else sr.model."""
    return threedsr.config.split_method(method)[1] or config["sr"]["model"]


def sr_weights(wildcards):
    """Files the SR model needs from this workflow: the trained prior or the converted Real-ESRGAN."""
    if wildcards.model == "tiny":
        return "results/models/tiny"
    if wildcards.model == "realesrgan" and not config["sr"]["realesrgan"]["path"]:
        return "results/models/realesrgan-x4plus.safetensors"
    return []


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


rule super_resolve:
    input:
        scene="results/scenes/{dataset}/{scene}",
        weights=sr_weights,
    output:
        directory("results/sr/{dataset}/{scene}/{model}"),
    params:
        sr=json.dumps(config["sr"]),
        model_path=lambda w, input: f"--model-path {input.weights}" if input.weights else "",
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
        directory("results/renders/{dataset}/{scene}/{sr2d}"),
    log:
        "results/logs/collect_sr2d/{dataset}/{scene}/{sr2d}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        gpu=0,
    shell:
        "{THREEDSR} collect-sr --scene {input.scene} --sr-dir {input.sr} --out {output} > {log} 2>&1"
