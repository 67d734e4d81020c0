"""The install paths agree: pyproject.toml, the conda environments and the README."""

import re
from pathlib import Path

import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pyproject_deps() -> set[str]:
    """The dependencies and the offline copy of Real-ESRGAN's weights (the conda environments have it: Python 3.11)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["ncnn-weights"])


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


# pure-Python dependencies published as source distributions only: built into py3-none-any wheels for the check below
SDIST_ONLY = ("antlr4-python3-runtime", "connection-pool")


def _resolves(python: str, wheels: Path, target: Path) -> tuple[bool, str]:
    """Whether pip finds wheels of every dependency (at constraints.txt's versions) for `python`, without installing."""
    import os
    import subprocess
    import sys

    deps = [*tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"], "torch==2.13.0"]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--python-version", python]
    cmd += ["--only-binary", ":all:", "--target", str(target), "--index-url", "https://pypi.org/simple", "--find-links", str(wheels)]
    cmd += ["-c", str(REPO / "constraints.txt"), *deps]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": ""}, timeout=900)
    return r.returncode == 0, "\n".join(line for line in (r.stdout + r.stderr).splitlines() if "WARNING: Location" not in line)[-1500:]


@pytest.mark.slow
def test_requires_python_is_where_every_dependency_has_wheels(tmp_path):
    """pyproject's requires-python holds exactly the Python versions (3.10 to 3.14) for which every dependency, at the
    versions of constraints.txt, has a wheel on PyPI: pip's --python-version / --only-binary dry run, one per version."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from packaging.specifiers import SpecifierSet

    pins = _constraints()
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"), "--index-url", "https://pypi.org/simple"]
        + [f"{name}=={pins[name]}" for name in SDIST_ONLY],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_CONSTRAINT": ""},
    )
    if r.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI reaches PyPI, but pip wheel failed: {r.stderr[-1000:]}")
        pytest.skip(f"PyPI is not reachable here: {r.stderr[-300:]}")
    versions = ["3.10", "3.11", "3.12", "3.13", "3.14"]
    with ThreadPoolExecutor(len(versions)) as pool:
        results = dict(zip(versions, pool.map(lambda v: _resolves(v, tmp_path / "wheels", tmp_path / v), versions)))
    stated = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    for version, (ok, log) in results.items():
        assert ok == (version in stated), f"Python {version}: {'resolves' if ok else 'does not resolve'}, requires-python {stated}\n{log}"


def test_the_wheel_ships_the_trained_prior_and_its_photo_manifest(tmp_path):
    """A non-editable install gets the shipped prior (every file its tiny_sr.json hashes) and the photo manifest."""
    import json
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # a copy: setuptools leaves a build/ folder beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "workflow" / "threedsr", src / "workflow" / "threedsr", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("threedsr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = "threedsr/sr/shipped/tiny/"
    listed = json.loads((REPO / "workflow" / shipped / "tiny_sr.json").read_text())["files"]
    assert {shipped + f for f in listed} | {shipped + "tiny_sr.json", "threedsr/data/prior_photos.tsv"} <= names
