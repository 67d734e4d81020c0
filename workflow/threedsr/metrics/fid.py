"""FID and KID: the Inception-v3 of the FID reference, in plain torch, and the two distances.

The network is TensorFlow's 2015-12-05 Inception-v3 as pytorch-fid ported it (`FIDInceptionA/C/E`:
average pools that leave the padding out of the mean, max pooling in the last block) with its weights
`pt_inception-2015-12-05-6726825d.pth`; module and state-dict key names are torchvision's `Inception3`
(aux classifier absent, 1008 classes), so the official file loads as it is. Features are the 2048-d
output of the final average pool ("pool3").

Images reach the network as pyiqa 0.1.10's FID ("clean" mode, clean-fid's resizing) prepares an
image file: each channel of the uint8 image resized to 299x299 as a float32 PIL image with bicubic
resampling, clipped to [0, 255], then (x - 128) / 128.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError

INPUT_SIZE = 299
DIMS = 2048
NUM_CLASSES = 1008  # the TF graph's 1001 ImageNet classes padded to 1008


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
    # TensorFlow's average pool: padded zeros are not counted in the mean
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """pool='avg' (Mixed_7b; TF's pool without the padding) or 'max' (Mixed_7c: the FID graph max-pools here)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = _avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Input (N, 3, 299, 299) scaled to [-1, 1]; output the (N, 2048) pool3 features."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(DIMS, NUM_CLASSES)  # in the official file; not used for the features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in (
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception(path) -> FIDInceptionV3:
    """The FID Inception from `pt_inception-2015-12-05-6726825d.pth` (or a state dict with its keys). A truncated
    file, a missing or unexpected key or a wrong shape is a DataError naming the file."""
    from ..io import load_checkpoint

    state = load_checkpoint(
        path, fix="metrics.fid_inception names it (null: the torch hub cache): replace it with pt_inception-2015-12-05-6726825d.pth"
    )
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a state dict (a {type(state).__name__})")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # optional in old files
    model = FIDInceptionV3()
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(s)})"
        for k, s in expected.items()
        if k in state and tuple(state[k].shape) != tuple(s)
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})" if missing else "",
            f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
            f"wrong shapes: {', '.join(wrong[:3])}" if wrong else "",
        ]
        raise DataError(f"{path}: not the FID Inception-v3 weights ({'; '.join(p for p in parts if p)})")
    model.load_state_dict(state, strict=False)
    return model.eval().requires_grad_(False)


def preprocess(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (3, 299, 299) float32: clean-fid's per-channel float32 PIL bicubic resize, (x - 128) / 128."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c]).astype(np.float32)).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))
        for c in range(3)
    ]
    x = np.stack(channels).clip(0, 255)
    return torch.from_numpy((x - 128) / 128).float()


@torch.no_grad()
def inception_features(model: FIDInceptionV3, images: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """(N, 2048) float32 pool3 features of uint8 HxWx3 images."""
    if not images:
        return np.zeros((0, DIMS), dtype=np.float32)
    out = [model(torch.stack([preprocess(im) for im in images[i : i + batch_size]])) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) for full covariance matrices (scipy's sqrtm)."""
    from scipy import linalg

    covmean = linalg.sqrtm(np.asarray(cov1, dtype=np.float64) @ np.asarray(cov2, dtype=np.float64))
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean).real)


def fid(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two sets of features (rows), Gaussians with the sample mean and the unbiased covariance
    (np.cov, as pytorch-fid and pyiqa). tr (C1 C2)^(1/2) is computed exactly: with C_i = A_i' A_i / (n_i - 1)
    (A_i the centred features), the square roots of the eigenvalues of C1 C2 are the singular values of
    A1 A2' / sqrt((n1 - 1)(n2 - 1)), so a few views cost an n1 x n2 SVD instead of a 2048x2048 sqrtm (which is
    also ill-conditioned when the covariances have rank n - 1 < 2048); with more rows than dimensions, the
    eigenvalues of C1^1/2 C2 C1^1/2 (symmetric). NaN with fewer than 2 per set."""
    a, b = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    ca, cb = a - a.mean(0), b - b.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    diff = a.mean(0) - b.mean(0)
    tr_a, tr_b = (ca * ca).sum() / na, (cb * cb).sum() / nb
    if min(len(a), len(b)) <= a.shape[1]:
        tr_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    else:
        w, v = np.linalg.eigh(ca.T @ ca / na)
        s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ (cb.T @ cb / nb) @ s1), 0, None)).sum()
    return float(diff @ diff + tr_a + tr_b - 2 * tr_sqrt)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid(feats1: np.ndarray, feats2: np.ndarray) -> tuple[float, float]:
    """KID: the unbiased estimate of the squared MMD with the kernel (x.y / d + 1)^3 (Binkowski et al. 2018)
    over all features at once (no subsets: at these sizes every subset would be the whole set), and its
    jackknife standard error over the pairs (row i of both sets: the render and the ground truth of one
    view; NaN when the sets differ in size). (NaN, NaN) below 3 rows per set."""
    a, b = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    m, n = len(a), len(b)
    if min(m, n) < 3:
        return float("nan"), float("nan")
    kaa, kbb, kab = _poly_kernel(a, a), _poly_kernel(b, b), _poly_kernel(a, b)
    np.fill_diagonal(kaa, 0)
    np.fill_diagonal(kbb, 0)

    def mmd(ia, ib):
        p, q = len(ia), len(ib)
        return (
            kaa[np.ix_(ia, ia)].sum() / (p * (p - 1)) + kbb[np.ix_(ib, ib)].sum() / (q * (q - 1)) - 2 * kab[np.ix_(ia, ib)].sum() / (p * q)
        )

    full = mmd(np.arange(m), np.arange(n))
    if m != n:
        return float(full), float("nan")
    loo = np.asarray([mmd(np.delete(np.arange(m), i), np.delete(np.arange(n), i)) for i in range(m)])
    se = np.sqrt((m - 1) / m * ((loo - loo.mean()) ** 2).sum())
    return float(full), float(se)
