import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _shared(path: str) -> Path:
    p = SHARED / path
    if not p.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{p} is missing; CI must provide ../shared beside the checkout")
        pytest.skip(f"{p} not present (the shared fixtures live in ../shared beside the checkout)")
    return p


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
