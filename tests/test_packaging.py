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


def _constraints() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_within_its_range():
    """Each of pyproject's requirements (the extras too) has a version in constraints.txt, inside its range, so the
    README's install (`-c constraints.txt`) can be satisfied and gives the versions CI ran with."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    pins = _constraints()
    for text in requirements:
        req = Requirement(text)
        if canonicalize_name(req.name) == "threedsr":  # an extra naming another extra
            continue
        assert canonicalize_name(req.name) in pins, f"constraints.txt has no version of {req.name}"
        assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), (text, pins[canonicalize_name(req.name)])


def test_readme_installs_with_the_constraints():
    readme = (REPO / "README.md").read_text()
    commands = dict(re.findall(r"<!-- ci:(\w+) -->\n```bash\n(.*?)\n```", readme, re.S))
    for name, command in commands.items():
        installs = re.findall(r"pip install [^&]*", command)
        assert installs and all("-c constraints.txt" in i for i in installs), (name, command)
