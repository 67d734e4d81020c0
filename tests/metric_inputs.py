"""The inputs of the metric reference tests (tests/test_metric_references.py), made from the photos that ship inside
scikit-image with integer numpy operations only, so that the project and the reference implementations
(tools/metric_references.py, run in an environment of its own) see the same bytes."""

import numpy as np


def photos() -> dict[str, np.ndarray]:
    """Three colour photos that ship with scikit-image, as HxWx3 uint8."""
    import skimage.data

    return {"astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}


def box_blur(img: np.ndarray, k: int = 5) -> np.ndarray:
    """k×k mean (edges replicated), rounded half up in integers."""
    pad = np.pad(img.astype(np.int64), ((k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="edge")
    acc = sum(pad[i : i + img.shape[0], j : j + img.shape[1]] for i in range(k) for j in range(k))
    return ((2 * acc + k * k) // (2 * k * k)).astype(np.uint8)


def half(img: np.ndarray) -> np.ndarray:
    """2×2 means, rounded half up: a downsampled copy."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    acc = img[:h:2, :w:2].astype(np.int64) + img[1:h:2, :w:2] + img[:h:2, 1:w:2] + img[1:h:2, 1:w:2]
    return ((acc + 2) // 4).astype(np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian noise of `sigma` (8-bit levels) from numpy's PCG64, rounded and clipped."""
    noise = np.random.default_rng(seed).standard_normal(img.shape) * sigma
    return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def niqe_images() -> dict[str, np.ndarray]:
    """Sharp photos, blurred ones and downsampled ones (NIQE needs at least 96x96)."""
    out = {}
    for name, img in photos().items():
        out[name] = img
        out[f"{name}-blur5"] = box_blur(img)
        out[f"{name}-half"] = half(img)
    return out


def lpips_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(distorted, reference) 128x128 crops: blurred, noisy, shifted by a pixel, and a different photo."""
    p = {n: img[100:228, 100:228] for n, img in photos().items()}
    return {
        "astronaut-blur5": (box_blur(p["astronaut"]), p["astronaut"]),
        "chelsea-noise10": (noisy(p["chelsea"], 10.0, 0), p["chelsea"]),
        "coffee-shift1": (photos()["coffee"][101:229, 101:229], p["coffee"]),
        "astronaut-vs-coffee": (p["astronaut"], p["coffee"]),
    }


def fid_features() -> tuple[np.ndarray, np.ndarray]:
    """Two sets of 64-D 'features' (200 and 150 samples) with different means and covariances."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((200, 64))
    b = rng.standard_normal((150, 64)) @ (np.eye(64) + 0.1 * rng.standard_normal((64, 64))) + 0.3
    return a, b
