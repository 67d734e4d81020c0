"""Which device a job uses, how many threads, and how many GPUs the scheduler may hand out."""

from __future__ import annotations

import os
import shutil
import subprocess


def resolve_device(name: str):
    """A torch.device for params.yaml's `device` (auto: CUDA when present)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError("device: cuda, but torch sees no CUDA device here: use device: auto (CUDA where present) or cpu")
    return torch.device(name)


def job_threads() -> int:
    """The threads a job was given: OMP_NUM_THREADS, which Snakemake sets to a rule's `threads` (torch and BLAS read it
    too), else the cores this process may run on."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return int(omp) if omp.isdigit() and int(omp) > 0 else len(os.sched_getaffinity(0))


def threads_as_given() -> None:
    """numba's pool as large as torch's (call before numba is imported): both follow the job's threads, where numba would
    otherwise start one thread per core of the machine, however many the job was given."""
    os.environ.setdefault("NUMBA_NUM_THREADS", str(job_threads()))


def visible_gpus() -> int:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists (0 without it).

    Cheap on purpose (no torch.cuda initialisation): the Snakefile calls it on every run.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())
