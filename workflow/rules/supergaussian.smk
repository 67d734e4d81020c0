# The SuperGaussian baseline: a video of the LR model along a smooth path, upsampled (frame by frame, or
# by the video model RealBasicVSR), then a new 3DGS fit at HR to the frames (threedsr/methods/supergaussian.py).


rule supergaussian_frames:
    input:
        scene="results/scenes/{dataset}/{scene}",
        ckpt="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        weights=model_weights(config["supergaussian"]["upsampler"]),
    output:
        directory("results/supergaussian/{dataset}/{scene}/frames"),
    params:
        upsampler=config["supergaussian"]["upsampler"],
        model_path=lambda w, input: model_path_args(input),
        # only a diffusion upsampler reads the sampler's keys: a sweep over them must not rerun Real-ESRGAN
        config=params_json("supergaussian.n_interp", *SR_KEYS, "device", *sampler_keys(config["supergaussian"]["upsampler"])),
    log:
        "results/logs/supergaussian_frames/{dataset}/{scene}.log",
    conda:
        GPU_ENV
    priority: 1
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    shell:
        "python -m threedsr supergaussian-frames --scene {input.scene:q} --ckpt {input.ckpt:q} --out {output:q} "
        "--model {params.upsampler:q} {params.model_path:q} --params {params.config:q} > {log:q} 2>&1"


rule fit_supergaussian:
    input:
        scene="results/scenes/{dataset}/{scene}",
        init="results/gs/{dataset}/{scene}/lr3dgs/ckpt.pt",
        frames="results/supergaussian/{dataset}/{scene}/frames",
    output:
        ckpt="results/gs/{dataset}/{scene}/supergaussian/ckpt.pt",
        ply="results/gs/{dataset}/{scene}/supergaussian/point_cloud.ply",
    params:
        config=params_json("gs", *budget_keys("supergaussian"), "supergaussian.lambda_lr", "device"),
        out="results/gs/{dataset}/{scene}/supergaussian",
    log:
        "results/logs/fit_supergaussian/{dataset}/{scene}.log",
    conda:
        GPU_ENV
    priority: 1
    threads: 1
    resources:
        mem_mb=8000,
        runtime=360,
        gpu=1,
    shell:
        "python -m threedsr fit --scene {input.scene:q} --out {params.out:q} --targets frames "
        "--frames-dir {input.frames:q} --init {input.init:q} --params {params.config:q} > {log:q} 2>&1"
