"""The wheels the GPU check carries to a machine without internet, and the checks that they suffice.

    python3 tools/gpu_wheels.py download [--dest .whl]   # fill .whl/ from gpu_wheels.txt (Python 3.12, manylinux x86_64)
    python3 tools/gpu_wheels.py check [--dest .whl]      # each wheel there once, each requirement met

`gpu_wheels.txt` pins what the device image lacks (`gpu_device_packages.txt` lists what it has). `check`
reads every wheel's METADATA and evaluates its requirements for CPython 3.12 on Linux x86_64: each one
must be pinned in the list (at a version its specifier allows), on the image (at its version where the
image's list gives one) or left out on purpose (`!NAME` in the list). `gpu_check.py` also checks that
every module the check imports resolves the same way (`check_imports`), with or without a .whl/ here.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WHEELS_FILE = HERE / "gpu_wheels.txt"
DEVICE_FILE = HERE / "gpu_device_packages.txt"
PYTHON = "3.12"
# pip matches a manylinux tag exactly: name every glibc level the device's Python accepts that wheels use
PLATFORMS = [
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
MARKERS = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def canonical(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class WheelList:
    pins: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    build: set[str] = field(default_factory=set)  # pins with no wheel on PyPI, built here from their pure-Python sdist
    omitted: dict[str, str] = field(default_factory=dict)  # canonical name -> why


def read_list(path: Path = WHEELS_FILE) -> WheelList:
    wl = WheelList()
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            name, _, why = line[1:].partition("#")
            wl.omitted[canonical(name.strip())] = why.strip()
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)(\s+@sdist)?\s*(#.*)?", line)
        if not m:
            raise ValueError(f"{path}:{n}: expected NAME==VERSION [@sdist] or !NAME, got {raw!r}")
        name = canonical(m.group(1))
        if name in wl.pins:
            raise ValueError(f"{path}:{n}: {name} is pinned twice")
        wl.pins[name] = m.group(2)
        if m.group(3):
            wl.build.add(name)
    clash = set(wl.pins) & set(wl.omitted)
    if clash:
        raise ValueError(f"{path}: both pinned and left out: {', '.join(sorted(clash))}")
    return wl


def read_device(path: Path = DEVICE_FILE) -> dict[str, str | None]:
    """canonical name -> version (None where the device notes give none)."""
    out: dict[str, str | None] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version or None
    return out


# ------------------------------------------------------------------------------------------------
# the wheels


def wheel_files(dest: Path) -> list[Path]:
    return sorted(dest.glob("*.whl")) if dest.is_dir() else []


def wheel_id(path: Path) -> tuple[str, str]:
    """(canonical name, version) from a wheel's file name (name-version[-build]-python-abi-platform.whl)."""
    parts = path.name[: -len(".whl")].split("-")
    return canonical(parts[0]), parts[1]


def requirements(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = z.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("Requires-Dist:")]


def download(dest: Path, wl: WheelList, pip: list[str] | None = None) -> None:
    """pip download every pinned wheel for the device (no dependencies: the list names them all)."""
    dest.mkdir(parents=True, exist_ok=True)
    for stale in wheel_files(dest):  # two versions of one package stop the whole install there
        name, version = wheel_id(stale)
        if wl.pins.get(name) != version:
            print(f"removing {stale.name} (not in {WHEELS_FILE.name})")
            stale.unlink()
    pip = pip or [sys.executable, "-m", "pip"]
    have = {wheel_id(p)[0] for p in wheel_files(dest)}
    todo = [f"{n}=={v}" for n, v in wl.pins.items() if n not in have and n not in wl.build]
    if todo:
        subprocess.run(
            [
                *pip,
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                PYTHON,
                "--implementation",
                "cp",
                *[a for p in PLATFORMS for a in ("--platform", p)],
                "-d",
                str(dest),
                *todo,
            ],
            check=True,
        )
    for name in sorted(wl.build - have):
        subprocess.run([*pip, "wheel", "--no-deps", "--no-binary", name, "-w", str(dest), f"{name}=={wl.pins[name]}"], check=True)
        built = [p for p in wheel_files(dest) if wheel_id(p)[0] == name]
        impure = [p.name for p in built if not p.name.endswith("-none-any.whl")]
        if impure:  # built for this machine's Python, not the device's
            raise SystemExit(f"{', '.join(impure)}: not a pure-Python wheel; find a binary wheel for Python {PYTHON} instead")


def check_wheels(dest: Path, wl: WheelList, device: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(problems, notes): each pinned wheel present once at its version, and each requirement met."""
    from packaging.requirements import Requirement

    problems, notes = [], []
    found: dict[str, list[Path]] = {}
    for p in wheel_files(dest):
        found.setdefault(wheel_id(p)[0], []).append(p)
    for name, version in wl.pins.items():
        files = found.get(name, [])
        if not files:
            problems.append(f"{name}=={version}: no wheel in {dest}")
        elif len(files) > 1:
            problems.append(f"{name}: {len(files)} wheels in {dest} ({', '.join(f.name for f in files)}); keep one")
        elif wheel_id(files[0])[1] != version:
            problems.append(f"{files[0].name}: version {wheel_id(files[0])[1]}, the list pins {version}")
    for name in sorted(set(found) - set(wl.pins)):
        problems.append(f"{found[name][0].name}: not in {WHEELS_FILE.name}")
    for name, files in sorted(found.items()):
        for req_text in requirements(files[0]):
            req = Requirement(req_text)
            if req.marker is not None and not req.marker.evaluate(MARKERS):
                continue
            dep = canonical(req.name)
            if dep in wl.pins:
                if not req.specifier.contains(wl.pins[dep], prereleases=True):
                    problems.append(f"{name} requires {req_text}, the list pins {dep}=={wl.pins[dep]}")
            elif dep in device:
                v = device[dep]
                if v is None:
                    if req.specifier:
                        notes.append(f"{name} requires {req_text}; the device has {dep} at a version its notes do not give")
                elif not req.specifier.contains(v, prereleases=True):
                    problems.append(f"{name} requires {req_text}, the device has {dep}=={v}: pin a wheel")
            elif dep in wl.omitted:
                notes.append(f"{name} requires {dep}, left out: {wl.omitted[dep]}")
            else:
                problems.append(f"{name} requires {req_text}: neither on the device nor in {WHEELS_FILE.name}")
    return problems, notes


# ------------------------------------------------------------------------------------------------
# the imports


def imports_in(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a Python file (anywhere in it), or in a Snakefile / .smk."""
    text = path.read_text()
    if path.suffix == ".py":
        names = set()
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        return names
    return {m.group(1) for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", text, re.M)}


def third_party(modules: set[str], first_party: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m not in first_party and not m.startswith("_")}


def distribution_of(module: str, mapping: dict[str, list[str]] | None = None) -> str | None:
    """The installed distribution providing a top-level module (None when it is not installed here)."""
    import importlib.metadata

    mapping = mapping if mapping is not None else importlib.metadata.packages_distributions()
    dists = mapping.get(module)
    return canonical(dists[0]) if dists else None


def check_imports(modules: set[str], wl: WheelList, device: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """({module: where it comes from}, problems): each module on the device, in the list, or left out on purpose."""
    import importlib.metadata

    mapping = importlib.metadata.packages_distributions()
    where, problems = {}, []
    for module in sorted(modules):
        dist = distribution_of(module, mapping) or canonical(module)
        if dist in wl.pins:
            where[module] = f"wheel {dist}=={wl.pins[dist]}"
        elif dist in device:
            where[module] = f"device {dist}" + (f"=={device[dist]}" if device[dist] else "")
        elif dist in wl.omitted:
            where[module] = f"left out ({dist}): {wl.omitted[dist]}"
        else:
            where[module] = "MISSING"
            problems.append(
                f"module {module} (distribution {dist}) is neither on the device ({DEVICE_FILE.name}) nor in {WHEELS_FILE.name}"
            )
    return where, problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["download", "check"])
    ap.add_argument("--dest", type=Path, default=REPO / ".whl")
    a = ap.parse_args()
    wl = read_list()
    if a.command == "download":
        download(a.dest, wl)
    problems, notes = check_wheels(a.dest, wl, read_device())
    files = wheel_files(a.dest)
    total = sum(p.stat().st_size for p in files)
    for p in sorted(files, key=lambda p: -p.stat().st_size):
        print(f"{p.stat().st_size / 2**20:8.2f} MiB  {p.name}")
    print(f"{total / 2**20:8.2f} MiB  in {len(files)} wheels ({a.dest})")
    for n in notes:
        print("note:", n)
    for p in problems:
        print("PROBLEM:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
