"""The SR models and sampler options params.yaml may name (no torch import: the CLI parser reads them)."""

MODELS = ("tiny", "sd-x4-upscaler", "stablesr-turbo", "realesrgan")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
UPDATES = ("ddim", "ddpm_posterior")
INITS = ("noised_lr", "noise")
COLORFIXES = ("wavelet", "adain", "none")
DIFFUSION_MODELS = ("tiny", "sd-x4-upscaler", "stablesr-turbo")  # the ones 3dsr can drive step by step
VIDEO_MODELS = ("realbasicvsr",)  # upsample a whole frame sequence: SuperGaussian's upsampler only
STABLESR_FILES = ("stablesr_turbo.ckpt", "vqgan_cfw_00011.ckpt")  # in sr.stablesr_turbo.weights_dir
STABLESR_WEIGHTS_HINT = (
    "download stablesr_turbo.ckpt and vqgan_cfw_00011.ckpt from https://huggingface.co/Iceclear/StableSR "
    "(e.g. `hf download Iceclear/StableSR stablesr_turbo.ckpt vqgan_cfw_00011.ckpt --local-dir <dir>`) "
    "and set sr.stablesr_turbo.weights_dir: <dir> in params.yaml"
)
REALBASICVSR_WEIGHTS_HINT = (
    "download RealBasicVSR_x4.pth (the RealBasicVSR authors' release, ckkelvinchan/RealBasicVSR on GitHub) "
    "and set sr.realbasicvsr.path in params.yaml to it"
)
