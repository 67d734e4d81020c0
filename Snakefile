# threedsr: 3D-consistent super-resolution (3DSR) and baselines.
#   snakemake --cores all                                   # offline default (synthetic scenes)
#   snakemake --cores all --configfile params.yaml workflow/presets/cpu-llff.yaml
#   snakemake --report results/report.html                 # afterwards: one self-contained page
from snakemake.utils import min_version

min_version("8.20")

configfile: "params.yaml"
# checked against workflow/schemas/params.schema.yaml (and across keys) in workflow/rules/common.smk

report: "workflow/report/workflow.rst"

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/gs.smk"
include: "workflow/rules/sr.smk"
include: "workflow/rules/supergaussian.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/reports/data/summary.csv",
        "results/metrics/summary.csv",
        [f"results/figures/crops_{d}_{s}.png" for d, s in SCENES],
        [f"results/videos/{d}/{s}/side_by_side.mp4" for d, s in SCENES if GS_METHODS],
        [f"results/reports/viewer/{d}_{s}.html" for d, s in SCENES if GS_METHODS],
        every_output,
    default_target: True
