# threedsr: 3D-consistent super-resolution (3DSR) and baselines.
#   snakemake --cores all                                   # offline default (synthetic scenes)
#   snakemake --cores all --configfile params.yaml workflow/presets/cpu-llff.yaml
from snakemake.utils import min_version, validate

min_version("8.20")

configfile: "params.yaml"

validate(config, "workflow/schemas/params.schema.yaml")

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/reports/data/summary.csv",
    default_target: True
