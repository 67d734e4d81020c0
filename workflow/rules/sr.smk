# Super-resolution models, the per-image SR methods isr (SR each view, then 3DGS) and sr2d (SR alone),
# and 3dsr (diffusion sampling and 3DGS fitting, interleaved).
from threedsr.sr import registry
from threedsr.sr.names import STABLESR_FILES


wildcard_constraints:
    model="|".join(registry.IMAGE_MODELS),
    sr2d=r"sr2d(-[a-z0-9-]+)?",
    isr=r"isr(-[a-z0-9-]+)?",
    tdsr=r"3dsr(-[a-z0-9-]+)?",


# The offline prior ships trained (sr.tiny.path: null); these two retrain it when sr.tiny.path names results/models/tiny.
rule download_prior_photos:
    output:
        directory("results/downloads/prior_photos"),
    log:
        "results/logs/download_prior_photos.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr download-prior-photos --out {output:q} > {log:q} 2>&1"


rule train_prior:
    input:
        photos=config["sr"]["tiny"]["photos"] or "results/downloads/prior_photos",
    output:
        directory("results/models/tiny"),
    params:
        config=params_json("sr.tiny", "threedsr.steps"),
    log:
        "results/logs/train_prior.log",
    conda:
        CPU_ENV
    priority: 2
    threads: 2
    resources:
        mem_mb=6000,
        runtime=180,
        gpu=0,
    shell:
        "python -m threedsr train-prior --out {output:q} --photos {input.photos:q} --params {params.config:q} --threads {threads:q} > {log:q} 2>&1"


rule convert_realesrgan:
    output:
        "results/models/realesrgan-x4plus.safetensors",
    log:
        "results/logs/convert_realesrgan.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr convert-realesrgan --out {output:q} > {log:q} 2>&1"


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
        runtime=60,
        gpu=0,
    shell:
        "python -m threedsr convert-stablesr --turbo {input.turbo:q} --cfw {input.cfw:q} --out {output:q} > {log:q} 2>&1"


rule super_resolve:
    input:
        scene="results/scenes/{dataset}/{scene}",
        weights=lambda w: model_weights(w.model),
    output:
        directory("results/sr/{dataset}/{scene}/{model}"),
    params:
        config=lambda w: params_json(*SR_KEYS, "device", *sampler_keys(w.model)),
        model_path=lambda w, input: model_path_args(input),
        views=lambda w: sr_views(w.model),
    log:
        "results/logs/super_resolve/{dataset}/{scene}/{model}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=360,
        gpu=1,
    shell:
        "python -m threedsr super-resolve --scene {input.scene:q} --out {output:q} --model {wildcards.model:q} {params.model_path:q} "
        "--views {params.views:q} --params {params.config:q} > {log:q} 2>&1"


rule fit_isr:
    input:
        scene="results/scenes/{dataset}/{scene}",
        init="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        sr=lambda w: f"results/sr/{w.dataset}/{w.scene}/{sr_model(w.isr)}",
    output:
        ckpt="results/gs/{dataset}/{scene}/{isr}/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/{isr}/point_cloud.ply",
    params:
        config=params_json("gs", *budget_keys("isr"), "threedsr.lambda_lr", "device"),
        out="results/gs/{dataset}/{scene}/{isr}",
    log:
        "results/logs/fit_isr/{dataset}/{scene}/{isr}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=360,
        gpu=1,
    shell:
        "python -m threedsr fit --scene {input.scene:q} --out {params.out:q} --targets sr --sr-dir {input.sr:q} "
        "--init {input.init:q} --params {params.config:q} > {log:q} 2>&1"


rule collect_sr2d:
    input:
        scene="results/scenes/{dataset}/{scene}",
        sr=lambda w: f"results/sr/{w.dataset}/{w.scene}/{sr_model(w.sr2d)}",
    output:
        renders=directory("results/renders/{dataset}/{scene}/{sr2d}"),
        scores="results/metrics/{dataset}/{scene}/{sr2d}.csv",
        features="results/metrics/{dataset}/{scene}/{sr2d}.inception.npz",
    params:
        config=params_json("metrics"),
    log:
        "results/logs/collect_sr2d/{dataset}/{scene}/{sr2d}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr collect-sr --scene {input.scene:q} --sr-dir {input.sr:q} --out {output.renders:q} --scores {output.scores:q} "
        "--dataset {wildcards.dataset:q} --scene-name {wildcards.scene:q} --method {wildcards.sr2d:q} --features {output.features:q} "
        "--params {params.config:q} > {log:q} 2>&1"


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
        model_path=lambda w, input: model_path_args(input),
        config=params_json(*SR_KEYS, "threedsr", "gs", "metrics.lpips_backbone", "metrics.fetch", "device"),  # per-step LPIPS
        out="results/gs/{dataset}/{scene}/{tdsr}",
    log:
        "results/logs/fit_3dsr/{dataset}/{scene}/{tdsr}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=12000,
        runtime=1440,
        gpu=1,
    shell:
        "python -m threedsr run-3dsr --scene {input.scene:q} --init {input.init:q} --out {params.out:q} "
        "--model {params.model:q} {params.model_path:q} --params {params.config:q} > {log:q} 2>&1"


rule consistency:
    input:
        scene="results/scenes/{dataset}/{scene}",
        depth="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        sr=lambda w: [f for f in consistency_sets(w).values() if f.startswith("results/sr/")],
        views=lambda w: [f"results/gs/{w.dataset}/{w.scene}/{m}/views" for m in METHODS if method_registry.split(m)[0] == "3dsr"],
    output:
        "results/metrics/{dataset}/{scene}/consistency.csv",
    params:
        images=lambda w: [f"{k}={v}" for k, v in consistency_sets(w).items()],
        config=params_json("device"),
    log:
        "results/logs/consistency/{dataset}/{scene}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    shell:
        "python -m threedsr consistency --scene {input.scene:q} --depth-ckpt {input.depth:q} --out {output:q} "
        "--images {params.images:q} --params {params.config:q} > {log:q} 2>&1"
