# threedsr: 3D-consistent super-resolution (3DSR) and baselines.
#   snakemake --cores all                                   # offline default (synthetic scenes)
#   snakemake --cores all --configfile params.yaml workflow/presets/cpu-llff.yaml
from snakemake.utils import min_version, validate

min_version("8.20")

configfile: "params.yaml"

validate(config, "workflow/schemas/params.schema.yaml")

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/gs.smk"
include: "workflow/rules/sr.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/reports/data/summary.csv",
        "results/metrics/summary.csv",
        [f"results/figures/crops_{d}_{s}.png" for d, s in SCENES],
    default_target: True
