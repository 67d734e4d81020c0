"""Train candidate `tiny` priors on a folder of photos and score them on held-out photos (issue 29).

    # the shipped prior's recipe (tiny-v2: TinyTrainConfig's defaults) on ../shared/data/photos less every 16th photo
    python benchmarks/prior_eval.py train /tmp/prior_out/v2 --photos ../shared/data/photos
    # the previous default: 400 steps, pyramid zooms, on the bundled PRIOR_PHOTOS
    python benchmarks/prior_eval.py train /tmp/prior_out/previous --bundled --set iterations=400 zoom_mode=pyramid
    # a candidate on ../shared/data/photos less every 16th photo (sorted), TinyTrainConfig fields as key=value
    python benchmarks/prior_eval.py train /tmp/prior_out/c1 --photos ../shared/data/photos --set iterations=600 degrade=0.5
    # PSNR / LPIPS-Alex of bicubic and each prior on the held-out photos (the shipped one: its folder in the package)
    python benchmarks/prior_eval.py eval workflow/threedsr/sr/shipped/tiny /tmp/prior_out/c1 --photos ../shared/data/photos

Held-out set: every `--holdout`-th photo of the folder's sorted relative paths (16: 11 of the 162). Each is cropped to a
multiple of 4 (HR), its LR is the pipeline's clean antialiased bicubic ×1/4 downsampling (threedsr.imaging.resize,
rounded to uint8 like a prepared scene's LR view), and each prior super-resolves it the way the `super_resolve` rule
does: load_sr_model("tiny", params.yaml's tile options) and model.super_resolve with the sampler of params.yaml's
threedsr block (SamplerConfig(): 4 DDIM steps, η=0, noised_lr start, per-image seeds from view_seeds). SR images are
rounded to uint8 as the rule saves them. One thread throughout (OMP_NUM_THREADS=1 as well).
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from threedsr.data.photos import PRIOR_PHOTOS, holdout_split, load_photo, load_photo_folder, photo_folder_ids
from threedsr.data.prior_photos import HOLDOUT_EVERY
from threedsr.imaging import resize_uint8, to_float, to_uint8, upsample
from threedsr.metrics.image import load_lpips, lpips_distance, psnr
from threedsr.sr.load import load_sr_model
from threedsr.sr.sampling import SamplerConfig, view_seeds
from threedsr.sr.tiny_config import TinyTrainConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the checkout, as tests/conftest.py
PHOTOS = SHARED / "data/photos"
LPIPS_ALEX = SHARED / "weights/lpips/alexnet_features.pth"
TILE = {"tile": 128, "tile_overlap": 32}  # params.yaml's sr.tile, sr.tile_overlap


def _value(text: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return tuple(value) if isinstance(value, list) else value


def cmd_train(a) -> None:
    from threedsr.sr.train_tiny import train

    overrides = dict(kv.split("=", 1) for kv in a.set)
    cfg = TinyTrainConfig(**{k: _value(v) for k, v in overrides.items()}, threads=1)
    if a.bundled:
        images = {p: load_photo(p) for p in PRIOR_PHOTOS}
    else:
        train_ids, _ = holdout_split(photo_folder_ids(a.photos), a.holdout)
        images = load_photo_folder(a.photos, train_ids)
    summary = train(images, cfg, Path(a.out))
    print(json.dumps({k: summary[k] for k in ("train_seconds", "parameters")} | {"photos": len(images), "config": overrides}))


def held_out(root: Path, every: int, scale: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{id: (HR uint8 cropped to a multiple of scale, its clean LR uint8)} of the held-out photos."""
    _, ids = holdout_split(photo_folder_ids(root), every)
    out = {}
    for pid, im in load_photo_folder(root, ids).items():
        h, w = (im.shape[0] // scale) * scale, (im.shape[1] // scale) * scale
        hr = np.ascontiguousarray(im[:h, :w])
        out[pid] = (hr, resize_uint8(hr, w // scale, h // scale))
    return out


def cmd_eval(a) -> None:
    data = held_out(Path(a.photos), a.holdout)
    lpips = load_lpips(a.lpips, fetch=False)
    sampler = SamplerConfig()
    rows = []

    def score(name: str, sr_fn, info: str = "") -> None:
        t0 = time.perf_counter()
        p, lp = [], []
        for pid, (hr, lr) in data.items():
            lr_t = to_float(lr).permute(2, 0, 1)[None]
            sr = to_float(to_uint8(sr_fn(pid, lr_t)[0].permute(1, 2, 0)))
            gt = to_float(hr)
            p.append(psnr(sr, gt))
            lp.append(lpips_distance(lpips, sr, gt))
        rows.append((name, float(np.mean(p)), float(np.mean(lp)), time.perf_counter() - t0, info))
        print(f"| {name} | {rows[-1][1]:.3f} | {rows[-1][2]:.4f} | {rows[-1][3]:.0f} | {info} |", flush=True)

    print(f"{len(data)} held-out photos of {a.photos} (every {a.holdout}th): {', '.join(data)}")
    print("| method | PSNR | LPIPS-Alex | eval s | training |\n|---|---|---|---|---|")
    score("bicubic", lambda pid, lr: upsample(lr, 4))
    for path in a.models:
        model = load_sr_model("tiny", {"path": path, **TILE}, torch.device("cpu"))
        t = model.meta.get("training", {})
        info = f"{t.get('train_seconds', '?')} s, {t.get('parameters', '?')} params, {len(t.get('photos', []))} photos"
        score(Path(path).name, lambda pid, lr, m=model: m.super_resolve(lr, sampler, view_seeds(sampler.seed, [pid])), info)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out")
    t.add_argument("--bundled", action="store_true", help="the bundled PRIOR_PHOTOS instead of --photos")
    t.add_argument("--set", nargs="*", default=[], help="TinyTrainConfig fields, key=value (Python literals)")
    e = sub.add_parser("eval")
    e.add_argument("models", nargs="*")
    e.add_argument("--lpips", default=str(LPIPS_ALEX))
    for p in (t, e):
        p.add_argument("--photos", default=str(PHOTOS))
        p.add_argument("--holdout", type=int, default=HOLDOUT_EVERY)
    a = ap.parse_args()
    {"train": cmd_train, "eval": cmd_eval}[a.cmd](a)


if __name__ == "__main__":
    main()
