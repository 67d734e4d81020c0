# The summary tables of every method's test-view scores (written by render_test / collect_sr2d) and the crops figure.

MET3R_SCORES = "results/met3r/scores.csv"  # written by `threedsr met3r` (docs/metrics.md), when a user runs it


rule aggregate_metrics:
    input:
        per_view=[f"results/metrics/{d}/{s}/{m}.csv" for d, s in SCENES for m in METHODS],
        features=[f"results/metrics/{d}/{s}/{m}.inception.npz" for d, s in SCENES for m in METHODS],
        consistency=[f"results/metrics/{d}/{s}/consistency.csv" for d, s in SCENES],
        renders=[f"results/renders/{d}/{s}/{m}" for d, s in SCENES for m in METHODS],  # MEt3R's scores count if they scored these
        # optional: once `threedsr met3r` has written it, the input set changes and the tables are made again
        met3r=lambda w: [MET3R_SCORES] if os.path.exists(MET3R_SCORES) else [],
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
    params:
        config=params_json(*method_registry.hr_budget_keys(config)),  # the tables' row order, and a note when HR budgets differ
        met3r=lambda w, input: ["--met3r", *input.met3r] if input.met3r else [],
    log:
        "results/logs/aggregate_metrics.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr aggregate --out-dir results/metrics --params {params.config:q} {params.met3r:q} --features {input.features:q} "
        "--consistency {input.consistency:q} --renders {input.renders:q} -- {input.per_view:q} > {log:q} 2>&1"


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
        methods=METHODS,  # for the report's caption
        config=params_json("methods"),
    log:
        "results/logs/crops_figure/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=1000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr crops --scene {input.scene:q} --out {output:q} --params {params.config:q} --renders {input.renders:q} > {log:q} 2>&1"
