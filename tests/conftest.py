import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _shared(path: str) -> Path:
    p = SHARED / path
    if not p.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{p} is missing; CI must provide ../shared beside the checkout")
        pytest.skip(f"{p} not present (the shared fixtures live in ../shared beside the checkout)")
    return p


@pytest.fixture(autouse=True, scope="session")
def _prior_cache(tmp_path_factory):
    """The tests' trained priors are cached for this session only (sr/prior_cache.py), never in the user's cache."""
    os.environ["THREEDSR_PRIOR_CACHE"] = str(tmp_path_factory.mktemp("threedsr-cache"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped, with one reason, where torch sees no GPU (`pytest -m cuda` selects them)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: marked `cuda`, run `pytest -m cuda` on a GPU machine (tools/gpu_check.sh)")
    for item in marked:
        item.add_marker(skip)


# The tiny configuration the end-to-end tests run (seconds per job on 2 cores), over params.yaml: its budgets ...
TINY_BUDGETS = {
    "gs": {
        "iterations": 60,
        "sh_degree": 1,
        "sh_degree_interval": 30,
        "densify": {"start": 20, "stop": 50, "every": 10, "reset_every": 1000, "grow_grad2d": 0.0002},
    },
    "bicubic": {"iterations": 20},
    "isr": {"iterations": 20},
    "threedsr": {"iters_per_step": 5},
    "supergaussian": {"n_interp": 1, "upsampler": "tiny", "iterations": 20},
    "video": {"n_interp": 0, "fps": 8},
}
# ... and its one scene: the synthetic forward scene at LR 16x12 -> HR 64x48
TINY_SCENE = {
    "datasets": {"synthetic": {"scenes": ["forward"], "width": 512, "height": 384, "supersample": 1, "num_points": 2000}},
    "resolution": {"lr_factor": 32, "hr_factor": 8},
}


@pytest.fixture(scope="session")
def tiny_config():
    """Factory: the tiny budgets with `blocks` over them (a block given replaces the tiny one), as a config dict;
    `scene=True` adds the tiny scene. Written beside params.yaml, it is what a test runs Snakemake with."""

    def make(scene: bool = False, **blocks) -> dict:
        return {**TINY_BUDGETS, **(TINY_SCENE if scene else {}), **blocks}

    return make


@pytest.fixture
def config_file(workflow_dir, tiny_config):
    """Factory: tiny_config(**blocks) written into the workflow copy; returns its name for `--configfile params.yaml NAME`."""

    def make(name: str = "test.yaml", scene: bool = False, **blocks) -> str:
        (workflow_dir / name).write_text(yaml.safe_dump(tiny_config(scene, **blocks)))
        return name

    return make


@pytest.fixture(scope="session")
def fern_dir() -> Path:
    """The real LLFF fern scene (read-only)."""
    return _shared("data/llff/fern")


@pytest.fixture(scope="session")
def llff_root(fern_dir) -> Path:
    return fern_dir.parent


@pytest.fixture
def workflow_dir(tmp_path) -> Path:
    """A scratch copy of the workflow (Snakefile, params, rules, schemas, report captions, envs) to run snakemake in."""
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    # the package itself is the installed one (its numba caches stay warm)
    for sub in ("rules", "schemas", "presets", "report"):
        shutil.copytree(REPO / "workflow" / sub, tmp_path / "workflow" / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "envs", tmp_path / "envs")
    return tmp_path


@pytest.fixture(scope="session")
def small_scene_and_lr_model(tiny_scene, tmp_path_factory):
    """The synthetic forward scene at LR 16x12 / HR 64x48 and a plain 3DGS (no Mip-Splatting filters) briefly
    pretrained on its LR views."""
    import torch

    from threedsr.methods.fit import fit
    from threedsr.methods.training_views import lr_views
    from threedsr.splat.trainer import TrainConfig

    tmp = tmp_path_factory.mktemp("small")
    cfg = TrainConfig(
        iterations=40,
        sh_degree=1,
        sh_degree_interval=20,
        refine_start=10,
        refine_stop=30,
        refine_every=10,
        reset_every=10_000,
        filter_3d=False,
        rasterize_mode="classic",
        eps2d=0.3,
    )
    fit(tiny_scene.root, tmp / "lr3dgs", cfg, lr_views(tiny_scene), torch.device("cpu"))
    return tiny_scene.root, tmp / "lr3dgs" / "ckpt.pt"


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """The synthetic forward scene at LR 16x12 / HR 64x48 (the trainer's and the 3D filter's tests)."""
    from threedsr.data import synthetic
    from threedsr.data.poses import load_scene_poses
    from threedsr.data.prepare import prepare_scene
    from threedsr.data.scene import PreparedScene

    tmp = tmp_path_factory.mktemp("tiny")
    synthetic.generate_scene("forward", tmp / "raw", 128, 96, 1, 800, 0)
    prepare_scene(tmp / "raw", load_scene_poses(tmp / "raw", tmp / "work"), tmp / "scene", 8, 2, 8)
    return PreparedScene(tmp / "scene")
