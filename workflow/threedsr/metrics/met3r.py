"""MEt3R (Asim et al., CVPR 2025) on the pipeline's test renders: the image pairs, and their scores when the
`met3r` package is installed.

MEt3R scores the multi-view consistency of an image *pair*: MASt3R/DUSt3R reconstructs both images'
point maps, DINO features (upsampled by FeatUp) are projected into one frame with pytorch3d, and the
score is their feature dissimilarity (1 - cosine) averaged over the overlap: lower is more consistent.
It needs no cameras. Its package (github.com/mohammadasim98/met3r) installs from GitHub with FeatUp,
pytorch3d and the MASt3R/DUSt3R weights, so it is no dependency of this project; `threedsr met3r`
prepares everything else:

- pairs: every test view with its nearest other test view (camera centres), each pair once, for every
  method that has renders of the scene;
- images: each render centre-cropped to a square and resized (PIL bicubic) to MEt3R's input size (256 by
  default), written to <out>/<dataset>/<scene>/<method>/<view>.png, with the test views' cameras for
  those square images in <out>/<dataset>/<scene>/cameras.json, and the list in <out>/pairs.csv;
- scores (when `import met3r` works, else it stops after the export and says so): one MEt3R value per
  pair in <out>/scores.csv (dataset, scene, method, view_a, view_b, renders_sha256, met3r). `threedsr aggregate` (the
  aggregate_metrics rule) fills the MEt3R column from that file: the mean over a scene's pairs, then over
  the scenes. `renders_sha256` is the digest of the renders a method's pairs were cut from (`renders_digest`): a method
  whose renders have changed since (a refit, a new setting) gets no MEt3R in the tables, and a warning, until
  `threedsr met3r` is run again.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data.scene import PreparedScene
from ..errors import DataError, ThreeDSRError
from ..io import atomic_path, read_image, write_json, write_png

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["dataset", "scene", "method", "view_a", "view_b", "renders_sha256", "met3r"]
INSTALL_HINT = (
    "MEt3R is not installed: pip install git+https://github.com/mohammadasim98/met3r (it also needs FeatUp, pytorch3d and a "
    "CUDA GPU; see its README), then rerun this command"
)


def centre(view) -> np.ndarray:
    w2c = np.asarray(view.world_to_camera)
    return -w2c[:3, :3].T @ w2c[:3, 3]


def test_pairs(scene: PreparedScene) -> list[tuple[str, str]]:
    """Each test view with its nearest other test view (by camera centre); each pair once, in name order."""
    views = scene.test_views
    if len(views) < 2:
        return []
    c = np.stack([centre(v) for v in views])
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    pairs = {tuple(sorted((views[i].name, views[int(np.argmin(d[i]))].name))) for i in range(len(views))}
    return sorted(pairs)


def square(rgb: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The centred square crop of HxWx3 uint8, resized to size x size; and the crop (x0, y0, side)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    x0, y0 = (w - s) // 2, (h - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(rgb[y0 : y0 + s, x0 : x0 + s]))
    return np.asarray(crop.resize((size, size), Image.BICUBIC)), (x0, y0, s)


def renders_digest(folder: Path, views) -> str:
    """sha256 over the named views' renders in `folder` (`<view>.png`; names sorted, each name and file's bytes): which
    renders a method's MEt3R scores belong to."""
    h = hashlib.sha256()
    for name in sorted(views):
        h.update(name.encode() + b"\0")
        h.update((Path(folder) / f"{name}.png").read_bytes())
    return h.hexdigest()


def fresh_scores(scores: pd.DataFrame, renders: dict[tuple[str, str, str], tuple[Path, list[str]]]) -> pd.DataFrame:
    """The MEt3R rows of the methods whose renders are those they were scored on; the others dropped, each with a
    warning. renders: (dataset, scene, method) -> (its render folder, its test views), as the tables have them now."""
    if "renders_sha256" not in scores:
        log.warning(
            "MEt3R scores without the digest of the renders they scored (written before it was kept): not shown; rerun `threedsr met3r`"
        )
        return scores.iloc[:0]
    keep = pd.Series(False, index=scores.index)
    for (d, s, m), rows in scores.groupby(["dataset", "scene", "method"]).groups.items():
        if (d, s, m) not in renders:
            continue
        folder, views = renders[(d, s, m)]
        try:
            now = renders_digest(folder, views)
        except OSError:
            now = None
        if set(scores.loc[rows, "renders_sha256"]) == {now}:
            keep[rows] = True
        else:
            log.warning("MEt3R of %s/%s/%s was scored on other renders than %s has now: not shown; rerun `threedsr met3r`", d, s, m, folder)
    return scores[keep]


def export(renders: Path, scenes: Path, out: Path, size: int = 256) -> pd.DataFrame:
    """Write the pairs' square images, cameras.json per scene and pairs.csv under `out`; return the pairs."""
    renders, scenes, out = Path(renders), Path(scenes), Path(out)
    rows = []
    for scene_json in sorted(scenes.glob("*/*/scene.json")):
        dataset, name = scene_json.parent.parent.name, scene_json.parent.name
        scene = PreparedScene(scene_json.parent)
        pairs = test_pairs(scene)
        methods = sorted(p.name for p in (renders / dataset / name).glob("*") if p.is_dir()) if (renders / dataset / name).is_dir() else []
        if not pairs or not methods:
            continue
        cams = {}
        for method in methods:
            for v in scene.test_views:
                src = renders / dataset / name / method / f"{v.name}.png"
                if not src.exists():
                    raise DataError(f"{src}: missing; the renders of {dataset}/{name}/{method} are incomplete (rerun its render job)")
                img, (x0, y0, s) = square(read_image(src), size)
                write_png(out / dataset / name / method / f"{v.name}.png", img)
                k = v.hr.cropped(x0, y0, s, s).resized(size, size)
                cams[v.name] = {"world_to_camera": np.asarray(v.world_to_camera).tolist(), "intrinsics": k.to_dict()}
            digest = renders_digest(renders / dataset / name / method, [v.name for v in scene.test_views])
            for a, b in pairs:
                rows.append(
                    {
                        "dataset": dataset,
                        "scene": name,
                        "method": method,
                        "view_a": a,
                        "view_b": b,
                        "image_a": f"{dataset}/{name}/{method}/{a}.png",
                        "image_b": f"{dataset}/{name}/{method}/{b}.png",
                        "baseline": float(np.linalg.norm(centre(_view(scene, a)) - centre(_view(scene, b)))),
                        "renders_sha256": digest,
                    }
                )
        write_json(
            out / dataset / name / "cameras.json",
            {
                "about": "test views' cameras for the square images beside (OpenCV axes: x right, y down, z forward; world_to_camera 4x4; "
                "pixel centres at +0.5); MEt3R itself estimates the geometry from the images",
                "size": size,
                "views": cams,
            },
        )
    table = pd.DataFrame(
        rows, columns=["dataset", "scene", "method", "view_a", "view_b", "image_a", "image_b", "baseline", "renders_sha256"]
    )
    if table.empty:
        raise DataError(f"no scene under {scenes} has two test views with renders under {renders}: nothing to compare")
    with atomic_path(out / "pairs.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def _view(scene: PreparedScene, name: str):
    return next(v for v in scene.test_views if v.name == name)


def load_met3r(size: int, device: str, backbone: str = "mast3r"):
    """MEt3R with its default settings (MASt3R warping, DINO features upsampled by FeatUp, cosine distance)."""
    try:
        from met3r import MEt3R
    except ImportError:
        raise ThreeDSRError(INSTALL_HINT) from None
    return MEt3R(
        img_size=size,
        use_norm=True,
        backbone=backbone,
        feature_backbone="dino16",
        feature_backbone_weights="mhamilton723/FeatUp",
        upsampler="featup",
        distance="cosine",
        freeze=True,
    ).to(device)


def score(pairs: pd.DataFrame, out: Path, metric, device: str = "cuda", batch_size: int = 4) -> pd.DataFrame:
    """MEt3R of every exported pair (images in [-1, 1], shape (B, 2, 3, S, S) as MEt3R takes them) to <out>/scores.csv."""
    import torch

    out = Path(out)
    values = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs.iloc[i : i + batch_size]
        x = np.stack([np.stack([read_image(out / r.image_a), read_image(out / r.image_b)]) for r in chunk.itertuples()])
        x = torch.from_numpy(x).permute(0, 1, 4, 2, 3).float().div(127.5).sub(1).to(device)
        with torch.no_grad():
            s, *_ = metric(images=x, return_overlap_mask=False, return_score_map=False, return_projections=False)
        values += [float(v) for v in torch.as_tensor(s).reshape(-1).cpu()]
        log.info("MEt3R: %d / %d pairs", min(i + batch_size, len(pairs)), len(pairs))
    table = pairs[SCORE_COLUMNS[:-1]].assign(met3r=values)
    with atomic_path(out / "scores.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table
