# Scores of every method on the test views, the summary tables and the crops figure.


rule evaluate:
    input:
        renders="results/renders/{dataset}/{scene}/{method}",
        scene="results/scenes/{dataset}/{scene}",
    output:
        "results/metrics/{dataset}/{scene}/{method}.csv",
    params:
        lpips_backbone=LPIPS_ARG,
    log:
        "results/logs/evaluate/{dataset}/{scene}/{method}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=2000,
        gpu=0,
    shell:
        "{THREEDSR} evaluate --renders {input.renders} --scene {input.scene} --out {output} --dataset {wildcards.dataset} "
        "--scene-name {wildcards.scene} --method {wildcards.method} {params.lpips_backbone} > {log} 2>&1"


rule aggregate_metrics:
    input:
        per_view=[f"results/metrics/{d}/{s}/{m}.csv" for d, s in SCENES for m in METHODS],
        consistency=[f"results/metrics/{d}/{s}/consistency.csv" for d, s in SCENES],
    output:
        per_view="results/metrics/per_view.csv",
        summary="results/metrics/summary.csv",
        json="results/metrics/summary.json",
        consistency="results/metrics/consistency.csv",
        tables=[f"results/metrics/{d}.md" for d in sorted({d for d, _ in SCENES})],
        html=[
            report(f"results/metrics/{d}.html", caption="../report/scores.rst", category="Scores", labels={"dataset": d})
            for d in sorted({d for d, _ in SCENES})
        ],
    log:
        "results/logs/aggregate_metrics.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        gpu=0,
    shell:
        "{THREEDSR} aggregate --out-dir results/metrics --consistency {input.consistency} -- {input.per_view} > {log} 2>&1"


rule crops_figure:
    input:
        scene="results/scenes/{dataset}/{scene}",
        renders=[f"results/renders/{{dataset}}/{{scene}}/{m}" for m in METHODS],
    output:
        report(
            "results/figures/crops_{dataset}_{scene}.png",
            caption="../report/crops.rst",
            category="Test-view crops",
            labels={"scene": "{dataset}/{scene}"},
        ),
    params:
        methods=" ".join(METHODS),
    log:
        "results/logs/crops_figure/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        gpu=0,
    shell:
        "{THREEDSR} crops --scene {input.scene} --out {output} --methods {params.methods} --renders {input.renders} > {log} 2>&1"
