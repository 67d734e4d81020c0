"""Sampler options and the weights' hints params.yaml and the messages name (no torch import: the CLI parser reads them)."""

# the SR models themselves are listed once, in registry.py
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
UPDATES = ("ddim", "ddpm_posterior")
INITS = ("noised_lr", "noise")
COLORFIXES = ("wavelet", "adain", "none")
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
