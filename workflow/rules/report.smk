# What a person looks at: the data report, fly-through videos, and the pieces `snakemake --report` collects
# (captions in workflow/report/).


rule data_report:
    input:
        prepared_scenes(),
    output:
        csv="results/reports/data/summary.csv",
        md="results/reports/data/summary.md",
    conda:
        CPU_ENV,
    log:
        "results/logs/data_report.log",
    resources:
        mem_mb=1000,
        gpu=0,
    shell:
        "{THREEDSR} data-report --out-dir results/reports/data {input} > {log} 2>&1"


rule flythrough:
    input:
        ckpt="results/gs/{dataset}/{scene}/{method}/ckpt.pt",
        scene="results/scenes/{dataset}/{scene}",
    output:
        report(
            "results/videos/{dataset}/{scene}/{method}.mp4",
            caption="../report/flythrough.rst",
            category="Fly-through videos",
            subcategory="{dataset}/{scene}",
            labels={"scene": "{dataset}/{scene}", "method": "{method}"},
        ),
    wildcard_constraints:
        method="|".join(GS_METHODS) or "(?!)",
    params:
        n_interp=config["video"]["n_interp"],
        fps=config["video"]["fps"],
        device=config["device"],
    log:
        "results/logs/flythrough/{dataset}/{scene}/{method}.log",
    conda:
        CPU_ENV
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    shell:
        "NUMBA_NUM_THREADS={threads} {THREEDSR} flythrough --ckpt {input.ckpt} --scene {input.scene} --out {output} "
        "--n-interp {params.n_interp} --fps {params.fps} --device {params.device} > {log} 2>&1"


rule side_by_side:
    input:
        [f"results/videos/{{dataset}}/{{scene}}/{m}.mp4" for m in GS_METHODS],
    output:
        mp4="results/videos/{dataset}/{scene}/side_by_side.mp4",
        html=report(
            "results/reports/videos/{dataset}_{scene}.html",
            caption="../report/side_by_side.rst",
            category="Fly-through videos",
            subcategory="{dataset}/{scene}",
            labels={"scene": "{dataset}/{scene}", "method": "all, side by side"},
        ),
    params:
        labels=" ".join(GS_METHODS),
    log:
        "results/logs/side_by_side/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=4000,
        gpu=0,
    shell:
        "{THREEDSR} side-by-side --out {output.mp4} --html {output.html} --title '{wildcards.dataset}/{wildcards.scene}' "
        "--labels {params.labels} --videos {input} > {log} 2>&1"
