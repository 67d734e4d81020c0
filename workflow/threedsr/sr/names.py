"""The SR models and sampler options params.yaml may name (no torch import: the CLI parser reads them)."""

MODELS = ("tiny", "sd-x4-upscaler", "realesrgan")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
UPDATES = ("ddim", "ddpm_posterior")
INITS = ("noised_lr", "noise")
COLORFIXES = ("wavelet", "adain", "none")
DIFFUSION_MODELS = ("tiny", "sd-x4-upscaler")  # the ones 3dsr can drive step by step
VIDEO_MODELS = ("realbasicvsr",)  # upsample a whole frame sequence: SuperGaussian's upsampler only
REALBASICVSR_WEIGHTS_HINT = (
    "download RealBasicVSR_x4.pth (the RealBasicVSR authors' release, ckkelvinchan/RealBasicVSR on GitHub) "
    "and set sr.realbasicvsr.path in params.yaml to it"
)
