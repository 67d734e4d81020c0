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


def every_output(wildcards):
    """Every job's outputs from the poses on (not the downloads). Snakemake does not rebuild a missing
    intermediate file when what depends on it exists: a killed job's deleted checkpoint would otherwise
    stay missing under old tables. Asked for here, it reruns, and so does everything downstream of it."""
    out = []
    for d, s in SCENES:
        out += [f"results/poses/{d}/{s}", f"results/scenes/{d}/{s}", f"results/metrics/{d}/{s}/consistency.csv"]
        out += [f"results/gs/{d}/{s}/{m}/{f}" for m in GS_METHODS for f in ("ckpt.pt", "point_cloud.ply")]
        out += [f"results/renders/{d}/{s}/{m}" for m in METHODS] + [f"results/metrics/{d}/{s}/{m}{x}" for m in METHODS for x in (".csv", ".inception.npz")]
        out += [f"results/sr/{d}/{s}/{sr_model(m)}" for m in METHODS if threedsr.config.split_method(m)[0] in ("isr", "sr2d")]
        if "supergaussian" in METHODS:
            out.append(f"results/supergaussian/{d}/{s}/frames")
    return out


rule all:
    input:
        "results/reports/data/summary.csv",
        "results/metrics/summary.csv",
        [f"results/figures/crops_{d}_{s}.png" for d, s in SCENES],
        [f"results/videos/{d}/{s}/side_by_side.mp4" for d, s in SCENES if GS_METHODS],
        every_output,
    default_target: True
