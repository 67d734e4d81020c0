"""The install paths agree: pyproject.toml, the conda environments and the README."""

import re
from pathlib import Path

import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pyproject_deps() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.parametrize("env", ["cpu.yaml", "cuda.yaml"])
def test_conda_envs_match_pyproject(env):
    spec = yaml.safe_load((REPO / "envs" / env).read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    deps = {p for p in pip if not p.startswith("-")}
    assert deps == _pyproject_deps()


def test_readme_install_pins_the_cpu_torch_and_ci_runs_the_readme():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- ci:(\w+) -->\n```bash\n(.*?)\n```", readme, re.S)
    commands = dict(blocks)
    assert set(commands) == {"install", "test"}
    assert "torch==2.13.0" in commands["install"] and "snakemake --cores all" in commands["install"]
    assert "pytest" in commands["test"]
    assert "ci:install" in (REPO / ".ci" / "run").read_text()
