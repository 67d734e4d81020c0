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
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr data-report --out-dir results/reports/data {input:q} > {log:q} 2>&1"


rule videos:
    input:
        scene="results/scenes/{dataset}/{scene}",
        ckpts=[f"results/gs/{{dataset}}/{{scene}}/{m}/ckpt.pt" for m in GS_METHODS],
    output:
        mp4=[
            report(
                f"results/videos/{{dataset}}/{{scene}}/{m}.mp4",
                caption="../report/flythrough.rst",
                category="Fly-through videos",
                subcategory="{dataset}/{scene}",
                labels={"scene": "{dataset}/{scene}", "method": m},
            )
            for m in GS_METHODS
        ],
        side_by_side="results/videos/{dataset}/{scene}/side_by_side.mp4",
        html=report(
            "results/reports/videos/{dataset}_{scene}.html",
            caption="../report/side_by_side.rst",
            category="Fly-through videos",
            subcategory="{dataset}/{scene}",
            labels={"scene": "{dataset}/{scene}", "method": "all, side by side"},
        ),
    params:
        ckpts=lambda w, input: [f"{m}={c}" for m, c in zip(GS_METHODS, input.ckpts)],
        out_dir="results/videos/{dataset}/{scene}",
        title="{dataset}/{scene}",
        methods=", ".join(GS_METHODS),  # for the report's captions
        config=params_json("video", "device"),
    log:
        "results/logs/videos/{dataset}/{scene}.log",
    conda:
        GPU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1,
    shell:
        "python -m threedsr videos --scene {input.scene:q} --out-dir {params.out_dir:q} "
        "--ckpts {params.ckpts:q} --html {output.html:q} --title {params.title:q} --params {params.config:q} > {log:q} 2>&1"


rule viewer_page:
    input:
        scene="results/scenes/{dataset}/{scene}",
        ckpts=[f"results/gs/{{dataset}}/{{scene}}/{m}/ckpt.pt" for m in GS_METHODS],
    output:
        report(
            "results/reports/viewer/{dataset}_{scene}.html",
            caption="../report/viewer.rst",
            category="3D viewer",
            subcategory="{dataset}/{scene}",
            labels={"scene": "{dataset}/{scene}", "page": "every 3D model"},
        ),
    params:
        ckpts=lambda w, input: [f"{m}={c}" for m, c in zip(GS_METHODS, input.ckpts)],
        title="{dataset}/{scene}",
        methods=", ".join(GS_METHODS),  # for the report's caption
    log:
        "results/logs/viewer_page/{dataset}/{scene}.log",
    conda:
        CPU_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr view-page --scene {input.scene:q} --ckpts {params.ckpts:q} --out {output:q} "
        "--title {params.title:q} > {log:q} 2>&1"
