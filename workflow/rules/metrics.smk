# The summary tables of every method's test-view scores (written by render_test / collect_sr2d) and the crops figure.


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
        runtime=30,
        gpu=0,
    shell:
        "{THREEDSR} aggregate --out-dir results/metrics --consistency {input.consistency:q} -- {input.per_view:q} > {log:q} 2>&1"


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
        methods=METHODS,
    log:
        "results/logs/crops_figure/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        runtime=30,
        gpu=0,
    shell:
        "{THREEDSR} crops --scene {input.scene:q} --out {output:q} --methods {params.methods:q} --renders {input.renders:q} > {log:q} 2>&1"
