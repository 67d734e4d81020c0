# Reports a person reads: what was prepared (later: metrics, crops, videos).


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
