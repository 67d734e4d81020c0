# Dataset download / generation -> poses -> downsampling and split.


rule generate_synthetic:
    output:
        directory("results/raw/synthetic/{scene}"),
    params:
        config=params_json(*(f"datasets.synthetic.{k}" for k in ("width", "height", "supersample", "num_points", "seed"))),
    conda:
        CPU_ENV,
    log:
        "results/logs/generate_synthetic/{scene}.log",
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr generate-synthetic --scene {wildcards.scene:q} --out {output:q} --params {params.config:q} > {log:q} 2>&1"


rule download_archive:
    output:
        "results/downloads/{archive}",
    conda:
        CPU_ENV,
    log:
        "results/logs/download_archive/{archive}.log",
    resources:
        mem_mb=500,
        runtime=240,
        gpu=0,
    shell:
        "python -m threedsr download --out {output:q} > {log:q} 2>&1"


rule extract_scene:
    input:
        scene_archive,
    output:
        directory("results/raw/{dataset}/{scene}"),
    wildcard_constraints:
        dataset="|".join(OFFICIAL_SCENES),
    conda:
        CPU_ENV,
    log:
        "results/logs/extract_scene/{dataset}/{scene}.log",
    resources:
        mem_mb=1000,
        runtime=60,
        gpu=0,
    shell:
        "python -m threedsr extract --archive {input:q} --dataset {wildcards.dataset:q} --scene {wildcards.scene:q} "
        "--out {output:q} > {log:q} 2>&1"


rule poses:
    input:
        scene_source,
    output:
        directory("results/poses/{dataset}/{scene}"),
    params:
        config=params_json("poses.sfm_max_image_size"),
        work_dir="results/work/poses/{dataset}/{scene}",
    conda:
        CPU_ENV,
    log:
        "results/logs/poses/{dataset}/{scene}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=0,
    shell:
        "python -m threedsr poses --scene-dir {input:q} --out {output:q} --work-dir {params.work_dir:q} --params {params.config:q} > {log:q} 2>&1"


rule prepare_scene:
    input:
        scene=scene_source,
        poses="results/poses/{dataset}/{scene}",
    output:
        directory("results/scenes/{dataset}/{scene}"),
    params:
        config=params_json("resolution", "test_every", "poses.undistort", "poses.undistort_above_px"),
    conda:
        CPU_ENV,
    log:
        "results/logs/prepare_scene/{dataset}/{scene}.log",
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    shell:
        "python -m threedsr prepare --scene-dir {input.scene:q} --poses {input.poses:q} --out {output:q} "
        "--dataset {wildcards.dataset:q} --scene {wildcards.scene:q} --params {params.config:q} > {log:q} 2>&1"
