"""The metrics' weight files (LPIPS' backbone, FID's Inception, NIQE's pristine model): fetched and cached by
threedsr.weights, each checked against its hash."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..weights import Sdist, WeightFile, download_weights, locate  # noqa: F401  (re-exported: the metrics' fetch)

ALEXNET = WeightFile(
    key="metrics.lpips_backbone",
    what="LPIPS-Alex's backbone (torchvision's ImageNet AlexNet)",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be79",
)

INCEPTION = WeightFile(
    key="metrics.fid_inception",
    what="FID's Inception-v3 (pytorch-fid's port of the 2015-12-05 TensorFlow graph)",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
)


def _published_niqe_values(path: Path) -> bool:
    from .niqe import PUBLISHED_MODEL_FINGERPRINT, model_fingerprint

    try:
        return model_fingerprint(path) == PUBLISHED_MODEL_FINGERPRINT
    except DataError:
        return False


NIQE_MODEL = WeightFile(
    key="metrics.niqe_model",
    what="NIQE's pristine model (the MATLAB release's, as basicsr 1.4.2 ships it)",
    url="https://files.pythonhosted.org/packages/86/41/00a6b000f222f0fa4c6d9e1d6dcc9811a374cabb8abb9d408b77de39648c/basicsr-1.4.2.tar.gz",
    sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
    size=172_524,
    sdist=Sdist(
        "basicsr",
        "1.4.2",
        "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87",
        "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz",
    ),
    # the same values as pyiqa caches them (its niqe_modelparameters.mat, older releases and >= 0.1.11)
    also_cached_at=("checkpoints/niqe_modelparameters.mat", "pyiqa/niqe_modelparameters.mat"),
    content_check=_published_niqe_values,
)
