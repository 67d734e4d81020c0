# Dataset download / generation -> poses -> downsampling and split.


rule generate_synthetic:
    output:
        directory("results/raw/synthetic/{scene}"),
    params:
        width=config["datasets"]["synthetic"]["width"],
        height=config["datasets"]["synthetic"]["height"],
        supersample=config["datasets"]["synthetic"]["supersample"],
        num_points=config["datasets"]["synthetic"]["num_points"],
        seed=config["datasets"]["synthetic"]["seed"],
    conda:
        CPU_ENV,
    log:
        "results/logs/generate_synthetic/{scene}.log",
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    shell:
        "{THREEDSR} generate-synthetic --scene {wildcards.scene:q} --out {output:q} --width {params.width:q} "
        "--height {params.height:q} --supersample {params.supersample:q} --num-points {params.num_points:q} "
        "--seed {params.seed:q} > {log:q} 2>&1"


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
        "{THREEDSR} download --out {output:q} > {log:q} 2>&1"


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
        "{THREEDSR} extract --archive {input:q} --dataset {wildcards.dataset:q} --scene {wildcards.scene:q} "
        "--out {output:q} > {log:q} 2>&1"


rule poses:
    input:
        scene_source,
    output:
        directory("results/poses/{dataset}/{scene}"),
    params:
        sfm_max_image_size=config["poses"]["sfm_max_image_size"],
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
        "{THREEDSR} poses --scene-dir {input:q} --out {output:q} --work-dir {params.work_dir:q} "
        "--sfm-max-image-size {params.sfm_max_image_size:q} > {log:q} 2>&1"


rule prepare_scene:
    input:
        scene=scene_source,
        poses="results/poses/{dataset}/{scene}",
    output:
        directory("results/scenes/{dataset}/{scene}"),
    params:
        lr_factor=config["resolution"]["lr_factor"],
        hr_factor=config["resolution"]["hr_factor"],
        test_every=config["test_every"],
        undistort=config["poses"]["undistort"],
        undistort_above_px=config["poses"]["undistort_above_px"],
    conda:
        CPU_ENV,
    log:
        "results/logs/prepare_scene/{dataset}/{scene}.log",
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    shell:
        "{THREEDSR} prepare --scene-dir {input.scene:q} --poses {input.poses:q} --out {output:q} "
        "--dataset {wildcards.dataset:q} --scene {wildcards.scene:q} --lr-factor {params.lr_factor:q} "
        "--hr-factor {params.hr_factor:q} --test-every {params.test_every:q} --undistort {params.undistort:q} "
        "--undistort-above-px {params.undistort_above_px:q} > {log:q} 2>&1"
