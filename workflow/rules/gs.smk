# 3D Gaussian splatting: LR pretraining (method lr3dgs), the methods fitted to their own HR targets (bicubic), then test
# renders of every 3D method
# (scored in the same job: results/metrics/<dataset>/<scene>/<method>.csv).


rule pretrain_lr:
    input:
        "results/scenes/{dataset}/{scene}",
    output:
        ckpt="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/lr3dgs/point_cloud.ply",
    params:
        config=params_json("gs", "device"),
        out="results/gs/{dataset}/{scene}/lr3dgs",
    log:
        "results/logs/pretrain_lr/{dataset}/{scene}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=180,
        gpu=1,
    shell:
        "python -m threedsr fit --scene {input:q} --out {params.out:q} --targets lr "
        "--params {params.config:q} > {log:q} 2>&1"


rule fit_hr_targets:
    # the methods whose model is the LR model fitted further at HR to their own image of each training view
    # (bicubic, and any method whose registry entry names `targets`: workflow/threedsr/methods/registry.py)
    input:
        scene="results/scenes/{dataset}/{scene}",
        init="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
    output:
        ckpt="results/gs/{dataset}/{scene}/{method}/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/{method}/point_cloud.ply",
    wildcard_constraints:
        method="|".join(TARGET_METHODS) or "(?!)",
    params:
        config=lambda w: params_json("gs", *budget_keys(w.method), "device"),
        out="results/gs/{dataset}/{scene}/{method}",
    log:
        "results/logs/fit_hr_targets/{dataset}/{scene}/{method}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=360,
        gpu=1,
    shell:
        "python -m threedsr fit --scene {input.scene:q} --out {params.out:q} --targets method --method {wildcards.method:q} "
        "--init {input.init:q} --params {params.config:q} > {log:q} 2>&1"


rule render_test:
    input:
        ckpt="results/gs/{dataset}/{scene}/{method}/ckpt.pt",
        scene="results/scenes/{dataset}/{scene}",
    output:
        renders=directory("results/renders/{dataset}/{scene}/{method}"),
        scores="results/metrics/{dataset}/{scene}/{method}.csv",
        features="results/metrics/{dataset}/{scene}/{method}.inception.npz",
    wildcard_constraints:
        method="|".join(GS_METHODS) or "(?!)",
    params:
        config=params_json("metrics", "device"),
    log:
        "results/logs/render_test/{dataset}/{scene}/{method}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    shell:
        "python -m threedsr render --ckpt {input.ckpt:q} --scene {input.scene:q} --out {output.renders:q} "
        "--scores {output.scores:q} --dataset {wildcards.dataset:q} --scene-name {wildcards.scene:q} "
        "--method {wildcards.method:q} --features {output.features:q} --params {params.config:q} > {log:q} 2>&1"
