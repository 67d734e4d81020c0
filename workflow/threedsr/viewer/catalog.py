"""What a run left for one scene, for the viewer: each 3D method's model, the test views' images and scores, and 3DSR's
images after every diffusion step; and for what is missing, the Snakemake target that makes it.

    results/scenes/<dataset>/<scene>/               the prepared scene (cameras, LR and HR images)
    results/gs/<dataset>/<scene>/<method>/ckpt.pt   each 3D method's final model
    results/renders/<dataset>/<scene>/<method>/     its test renders (2D methods: their SR images)
    results/metrics/per_view.csv                    every test view's scores
    results/gs/<dataset>/<scene>/3dsr*/steps/NN/    H and R of a few training views after step NN (steps.csv: scores)
"""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DATASET_NAME, NAME_RULE, SCENE_NAME
from ..data.scene import PreparedScene, SceneView
from ..errors import DataError
from ..methods import registry


def target_command(path: Path) -> str:
    return f"snakemake --cores all {shlex.quote(str(path))}"


@dataclass
class StepImages:
    step: int  # 1..K: after diffusion step `step`
    views: dict[str, tuple[Path, Path]]  # training view -> (H, R) images of that step
    scores: dict[str, str] = field(default_factory=dict)  # its row of steps.csv


@dataclass
class SceneResults:
    dataset: str
    scene: str
    prepared: PreparedScene
    models: dict[str, Path]  # 3D method -> ckpt.pt, in params' order
    missing: dict[str, str]  # configured 3D method without a model -> the command that makes it
    renders: dict[str, dict[str, Path]]  # method (3D or 2D) -> test view -> render
    scores: dict[str, dict[str, dict[str, float]]]  # method -> test view -> {psnr, ssim, lpips}
    steps: dict[str, list[StepImages]]  # 3dsr method -> its steps

    @property
    def test_views(self) -> list[SceneView]:
        return self.prepared.test_views

    @property
    def train_views(self) -> list[SceneView]:
        return self.prepared.train_views

    def image(self, view: SceneView, resolution: str) -> Path:
        return self.prepared.root / resolution / f"{view.name}.png"


def configured_methods(config: dict | None) -> list[str]:
    return list(config["methods"]) if config else []


def find(results: Path, dataset: str, scene: str, config: dict | None = None) -> SceneResults:
    """The results of `dataset`/`scene` under `results`; DataError with the command to run when the scene has none."""
    if not (re.fullmatch(DATASET_NAME, dataset) and re.fullmatch(SCENE_NAME, scene)):  # the names params.yaml accepts
        raise DataError(f"{dataset}/{scene}: expected <dataset>/<scene>, each {NAME_RULE}")
    prepared_dir = results / "scenes" / dataset / scene
    if not (prepared_dir / "scene.json").is_file():
        raise DataError(
            f"{dataset}/{scene} has not been run: no {prepared_dir / 'scene.json'}; run `snakemake --cores all` "
            f"(with the scene in params.yaml's datasets.{dataset}.scenes)"
        )
    prepared = PreparedScene(prepared_dir)
    gs = results / "gs" / dataset / scene
    wanted = [m for m in configured_methods(config) if registry.of(m).dims == 3]
    present = sorted(p.parent.name for p in gs.glob("*/ckpt.pt")) if gs.is_dir() else []
    order = wanted + [m for m in present if m not in wanted]
    models = {m: gs / m / "ckpt.pt" for m in order if (gs / m / "ckpt.pt").is_file()}
    missing = {m: target_command(gs / m / "ckpt.pt") for m in wanted if m not in models}
    if not models:
        raise DataError(
            f"{dataset}/{scene}: no 3D model under {gs} yet; run `snakemake --cores all` (or one method: "
            f"{target_command(gs / 'lr3dgs' / 'ckpt.pt')})"
        )
    renders_dir = results / "renders" / dataset / scene
    renders = {
        d.name: {v.name: d / f"{v.name}.png" for v in prepared.test_views if (d / f"{v.name}.png").is_file()}
        for d in sorted(renders_dir.iterdir())
        if d.is_dir()
    } if renders_dir.is_dir() else {}  # fmt: skip
    return SceneResults(
        dataset,
        scene,
        prepared,
        models,
        missing,
        {m: r for m, r in renders.items() if r},
        read_scores(results / "metrics" / "per_view.csv", dataset, scene),
        {m: read_steps(gs / m) for m in models if registry.split(m)[0] == "3dsr"},
    )


def read_scores(path: Path, dataset: str, scene: str) -> dict[str, dict[str, dict[str, float]]]:
    """per_view.csv's rows of the scene: method -> view -> {psnr, ssim, lpips} (those present)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if not path.is_file():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("dataset") != dataset or row.get("scene") != scene:
                continue
            values = {}
            for k in ("psnr", "ssim", "lpips"):
                try:
                    values[k] = float(row[k])
                except (KeyError, TypeError, ValueError):
                    pass
            out.setdefault(row["method"], {})[row["view"]] = values
    return out


def read_steps(fit_dir: Path) -> list[StepImages]:
    """3DSR's kept images after each step (steps/NN/<view>_H.png, _R.png) and steps.csv's row of that step."""
    rows: dict[int, dict[str, str]] = {}
    if (fit_dir / "steps.csv").is_file():
        with open(fit_dir / "steps.csv", newline="") as f:
            for row in csv.DictReader(f):
                try:
                    rows[int(row["step"])] = row
                except (KeyError, ValueError):
                    pass
    out = []
    for folder in sorted((fit_dir / "steps").glob("[0-9][0-9]")) if (fit_dir / "steps").is_dir() else []:
        views = {
            h.name[: -len("_H.png")]: (h, h.with_name(h.name[: -len("_H.png")] + "_R.png"))
            for h in sorted(folder.glob("*_H.png"))
            if h.with_name(h.name[: -len("_H.png")] + "_R.png").is_file()
        }
        if views:
            out.append(StepImages(int(folder.name), views, rows.get(int(folder.name), {})))
    return out
