"""NIQE, the no-reference Natural Image Quality Evaluator (Mittal, Soundararajan and Bovik, IEEE SPL 2013).

Written from the definition, following the choices of the MATLAB release (`niqe_release.zip`,
`computequality.m` / `computefeature.m`) as pyiqa 0.1.10 ports them (the official 3DSR evaluation
calls pyiqa's `niqe`):

- the image: luma Y = 0.299 R + 0.587 G + 0.114 B of the [0, 1] RGB image in float32, times 255,
  rounded (pyiqa's `to_y_channel(img, 255, 'yiq')`), then float64;
- cropped to whole 96x96 blocks (top-left); no patch selection at test time (the MATLAB code selects
  sharp patches only when it trains the pristine model);
- two scales: the image, then the image halved by MATLAB's `imresize(., 0.5)` (bicubic, a = -0.5,
  antialiased, symmetric borders), with 48x48 blocks on it, so each block has 18 + 18 features;
- per scale: MSCN coefficients (x - mu) / (sigma + 1), mu and sigma from a 7x7 Gaussian window,
  sigma 7/6, replicate padding; per block the AGGD fit (moment matching on the grid 0.2:0.001:10) of
  the MSCN coefficients [alpha, (beta_l + beta_r) / 2] and of the products with the neighbour in 4
  directions (circular within the block) [alpha, mean, beta_l, beta_r];
- a multivariate Gaussian fitted to the blocks' features (NaN-free rows; the unbiased covariance),
  and the distance sqrt((mu_p - mu)' pinv((C_p + C) / 2) (mu_p - mu)) to the pristine model (mu_p, C_p).

pyiqa rounds two steps to float32 where MATLAB stays in float64: the Gaussian window (`fspecial`
returns float32) and the whole `imresize` (its `cast_input` converts any input to float32). `niqe()`
does the same by default; `precision="float64"` keeps MATLAB's float64 throughout (docs/metrics.md
measures the difference).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

log = logging.getLogger(__name__)

BLOCK = 96
FEATURES = 36
# MATLAB's gam = 0.2:0.001:10 (9801 values)
GAMMA_GRID = torch.from_numpy(0.2 + 0.001 * np.arange(9801))
_LUMA = (0.299, 0.587, 0.114)


def luma255(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """HxWx3 uint8 RGB -> HxW float64 luma in [0, 255], rounded, as pyiqa's NIQE sees an image file."""
    x = torch.from_numpy(np.array(rgb, dtype=np.float32)) / 255
    y = x @ torch.tensor(_LUMA, dtype=torch.float32)
    return (y * 255).round().to(torch.float64)


def gaussian_window(size: int = 7, sigma: float = 7 / 6, float32: bool = True) -> torch.Tensor:
    """MATLAB's fspecial('gaussian', size, sigma), normalised; rounded to float32 as pyiqa's fspecial."""
    r = (size - 1) / 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    h /= h.sum()
    w = torch.from_numpy(h)
    return w.float().double() if float32 else w


def mscn(img: torch.Tensor, window: torch.Tensor, c: float = 1.0, return_sigma: bool = False):
    """Mean-subtracted contrast-normalised coefficients of (H, W) float64, replicate borders (and the local
    standard deviation sigma)."""
    from scipy.ndimage import correlate

    x, w = img.numpy(), window.numpy()
    mu = torch.from_numpy(correlate(x, w, mode="nearest"))  # nearest = MATLAB's 'replicate'
    sq = torch.from_numpy(correlate(x * x, w, mode="nearest"))
    sigma = (sq - mu * mu).abs().sqrt()
    out = (img - mu) / (sigma + c)
    return (out, sigma) if return_sigma else out


def _gamma_ratio(g: torch.Tensor) -> torch.Tensor:
    """Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)): the AGGD's moment ratio for shape g."""
    return torch.exp(2 * torch.lgamma(2 / g) - torch.lgamma(1 / g) - torch.lgamma(3 / g))


_GAMMA_TABLE = _gamma_ratio(GAMMA_GRID)


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGGD parameters (alpha, beta_l, beta_r) of each row of (N, n) samples by moment matching (MATLAB's
    estimateaggdparam): NaN where a row has no negative or no positive sample."""
    left, right = x < 0, x > 0
    x2 = x * x
    left_std = ((x2 * left).sum(-1) / left.sum(-1)).sqrt()
    right_std = ((x2 * right).sum(-1) / right.sum(-1)).sqrt()
    gammahat = left_std / right_std
    rhat = x.abs().mean(-1) ** 2 / x2.mean(-1)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    pos = (_GAMMA_TABLE.to(x.dtype)[None] - rhatnorm[:, None]).abs().argmin(-1)
    alpha = GAMMA_GRID.to(x.dtype)[pos]
    alpha = torch.where(torch.isnan(rhatnorm), torch.nan, alpha)
    scale = torch.exp(torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)).sqrt()
    return alpha, left_std * scale, right_std * scale


# neighbour directions of the pairwise products (MATLAB: [0 1; 1 0; 1 1; -1 1]; a circular shift by
# (-1, 1) or (1, -1) pairs the same coefficients)
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def block_features(blocks: torch.Tensor) -> torch.Tensor:
    """(N, b, b) MSCN blocks -> (N, 18) NIQE features of one scale."""
    n = blocks.shape[0]
    alpha, bl, br = aggd_fit(blocks.reshape(n, -1))
    feats = [alpha, (bl + br) / 2]
    for s in SHIFTS:
        prod = blocks * torch.roll(blocks, s, dims=(1, 2))
        alpha, bl, br = aggd_fit(prod.reshape(n, -1))
        mean = (br - bl) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1)


def _blocks(x: torch.Tensor, b: int) -> torch.Tensor:
    """(H, W) with H, W multiples of b -> (H/b * W/b, b, b), row-major over the block grid."""
    h, w = x.shape
    return x.reshape(h // b, b, w // b, b).permute(0, 2, 1, 3).reshape(-1, b, b)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)) + ((-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def imresize_matrix(n_in: int, scale: float) -> np.ndarray:
    """(n_out, n_in) weights of MATLAB's imresize along one axis: bicubic, antialiased when shrinking,
    borders mirrored (symmetric), output length ceil(n_in * scale)."""
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    u = (np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale))[:, None]  # 1-based input coordinate
    left = np.floor(u - width / 2)
    taps = left + np.arange(math.ceil(width) + 2)[None]
    k = scale if scale < 1 else 1.0
    weights = k * _cubic(k * (u - taps))
    weights /= weights.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    idx = mirror[((taps - 1) % (2 * n_in)).astype(int)]
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), taps.shape[1]), idx.ravel()), weights.ravel())
    return m


def imresize_half(img: torch.Tensor, float32: bool = True) -> torch.Tensor:
    """MATLAB imresize(img, 0.5) of (H, W) float64 in [0, 1]; in float32 as pyiqa's imresize computes it."""
    dtype = torch.float32 if float32 else torch.float64
    mh = torch.from_numpy(imresize_matrix(img.shape[0], 0.5)).to(dtype)
    mw = torch.from_numpy(imresize_matrix(img.shape[1], 0.5)).to(dtype)
    return (mh @ img.to(dtype) @ mw.T).to(torch.float64)


def niqe_features(gray: torch.Tensor, precision: str = "pyiqa", return_sharpness: bool = False):
    """(H, W) float64 luma in [0, 255] -> (blocks, 36) features; (0, 36) if smaller than one 96x96 block.
    With `return_sharpness` also each block's mean local sigma at scale 1 (what the model fit selects on)."""
    f32 = precision == "pyiqa"
    h, w = (gray.shape[0] // BLOCK) * BLOCK, (gray.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        empty = torch.empty(0, FEATURES, dtype=torch.float64)
        return (empty, torch.empty(0, dtype=torch.float64)) if return_sharpness else empty
    img = gray[:h, :w].to(torch.float64)
    window = gaussian_window(float32=f32)
    coeffs, sigma = mscn(img, window, return_sigma=True)
    scale1 = block_features(_blocks(coeffs, BLOCK))
    half = imresize_half(img / 255, float32=f32) * 255
    scale2 = block_features(_blocks(mscn(half, window), BLOCK // 2))
    feats = torch.cat([scale1, scale2], dim=1)
    return (feats, _blocks(sigma, BLOCK).mean(dim=(1, 2))) if return_sharpness else feats


def fit_model(images: list[np.ndarray], sharpness_threshold: float = 0.75, source: str = "fitted") -> "NIQEModel":
    """A pristine model fitted the way the MATLAB release fits its own (estimatemodelparam.m): per image the
    96x96 blocks whose mean local sigma exceeds `sharpness_threshold` x the image's sharpest block, then
    the mean and covariance (NaN-free rows) of their features. Not the published model: NIQE values
    against it are comparable with each other only."""
    rows = []
    for rgb in images:
        feats, sharp = niqe_features(luma255(rgb), precision="float64", return_sharpness=True)
        if len(feats):
            rows.append(feats[sharp > sharpness_threshold * sharp.max()])
    feats = torch.cat(rows) if rows else torch.empty(0, FEATURES, dtype=torch.float64)
    feats = feats[~torch.isnan(feats).any(dim=1)]
    if len(feats) < 2:
        raise DataError(f"fitting a NIQE model needs at least 2 sharp {BLOCK}x{BLOCK} blocks; the images gave {len(feats)}")
    return NIQEModel(feats.mean(0).numpy(), torch.cov(feats.T).numpy(), source)


def save_model(model: "NIQEModel", path: str | Path) -> None:
    """The model as a .mat in the MATLAB release's layout (mu_prisparam, cov_prisparam), or as a .npz in basicsr's
    (mu_pris_param, cov_pris_param) when `path` ends in .npz."""
    import scipy.io

    from ..io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if str(path).endswith(".npz"):
            np.savez(f, mu_pris_param=model.mu.numpy()[None], cov_pris_param=model.cov.numpy())
        else:
            scipy.io.savemat(f, {"mu_prisparam": model.mu.numpy()[None], "cov_prisparam": model.cov.numpy()})


def mvg_distance(feats: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> float:
    """NIQE's distance between the Gaussian fit of the blocks' features and the pristine model."""
    mu = torch.nanmean(feats, dim=0)
    rows = feats[~torch.isnan(feats).any(dim=1)]
    cov = torch.cov(rows.T, correction=1 if len(rows) > 1 else 0) if len(rows) else torch.full_like(cov_p, torch.nan)
    d = (mu_p - mu)[None]
    q = d @ torch.linalg.pinv((cov_p + cov) / 2) @ d.T
    return float(q.squeeze().sqrt())


# sha256 of the published pristine model's 36 + 36x36 values rounded to 1e-6 (float64, little-endian),
# first 16 hex digits: identifies the MATLAB release's model (pyiqa's niqe_modelparameters.mat)
# whatever file format carries it
PUBLISHED_MODEL_FINGERPRINT = "27eb8d80c7875665"


def _model_digest(mu: np.ndarray, cov: np.ndarray) -> str:
    import hashlib

    values = np.round(np.concatenate([np.ravel(mu), np.ravel(cov)]).astype(np.float64), 6) + 0.0  # no -0.0
    return hashlib.sha256(values.astype("<f8").tobytes()).hexdigest()[:16]


class NIQEModel:
    """A pristine model: the mean (36) and covariance (36x36) of the features of pristine images' patches."""

    def __init__(self, mu: np.ndarray, cov: np.ndarray, source: str):
        self.mu = torch.as_tensor(np.asarray(mu, dtype=np.float64).ravel().copy())
        self.cov = torch.as_tensor(np.asarray(cov, dtype=np.float64).copy())
        self.source = source
        self.published = _model_digest(self.mu.numpy(), self.cov.numpy()) == PUBLISHED_MODEL_FINGERPRINT

    def __call__(self, rgb: np.ndarray, precision: str = "pyiqa") -> float:
        """NIQE of one HxWx3 uint8 RGB image (lower is more natural); NaN with a warning below 96x96."""
        feats = niqe_features(luma255(rgb), precision)
        if len(feats) == 0:
            warnings.warn(f"NIQE undefined for a {rgb.shape[1]}x{rgb.shape[0]} image: it needs at least one {BLOCK}x{BLOCK} block")
            return float("nan")
        return mvg_distance(feats, self.mu, self.cov)


def _read_model(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mu and cov from the MATLAB release's .mat (mu_prisparam, cov_prisparam) or basicsr's .npz (mu_pris_param,
    cov_pris_param), told apart by their content, not their names."""
    import scipy.io

    try:
        with open(path, "rb") as f:
            is_npz = f.read(4) == b"PK\x03\x04"  # a zip archive: numpy's .npz
        if is_npz:
            with np.load(path, allow_pickle=False) as m:
                mu, cov = np.asarray(m["mu_pris_param"], dtype=np.float64).ravel(), np.asarray(m["cov_pris_param"], dtype=np.float64)
        else:
            m = scipy.io.loadmat(path)
            mu, cov = np.asarray(m["mu_prisparam"], dtype=np.float64).ravel(), np.asarray(m["cov_prisparam"], dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except KeyError as e:
        expected = "mu_pris_param and cov_pris_param" if is_npz else "mu_prisparam and cov_prisparam"
        raise DataError(f"{path}: not a NIQE pristine model (no {e} in it; expected {expected})") from None
    except Exception as e:  # scipy and numpy raise ValueError, TypeError, OSError, BadZipFile... on truncated or foreign files
        raise DataError(f"{path}: truncated or not a NIQE model file, .mat or .npz ({type(e).__name__}: {e})") from None
    if mu.shape != (FEATURES,) or cov.shape != (FEATURES, FEATURES):
        raise DataError(f"{path}: mu_prisparam {mu.shape} / cov_prisparam {cov.shape}, expected ({FEATURES},) / ({FEATURES}, {FEATURES})")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all() and np.allclose(cov, cov.T, atol=1e-10)):
        raise DataError(f"{path}: the pristine covariance is not finite and symmetric")
    return mu, cov


def model_fingerprint(path: str | Path) -> str:
    return _model_digest(*_read_model(Path(path)))


def load_niqe_model(path: str | Path) -> NIQEModel:
    """A pristine model from a .mat file with mu_prisparam (1x36) and cov_prisparam (36x36), the MATLAB
    release's layout (its modelparameters.mat, pyiqa's niqe_modelparameters.mat, or a model fitted with the
    same code), or basicsr's .npz of the same values (niqe_pris_params.npz). A truncated or foreign file is a DataError naming it; a model other than the published one
    is used with a warning (its scores are not comparable with published NIQE values)."""
    mu, cov = _read_model(Path(path))
    model = NIQEModel(mu, cov, str(path))
    if not model.published:
        msg = f"{path}: a NIQE pristine model other than the published one (MATLAB release / pyiqa); its NIQE values are not comparable with published ones"
        warnings.warn(msg)
    return model
