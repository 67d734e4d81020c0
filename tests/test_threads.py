"""Every job uses the threads it was given (Snakemake's `threads`, passed as OMP_NUM_THREADS), and no more."""

import os
import subprocess
import sys

import numpy as np

from threedsr.data.synthetic import generate_scene
from threedsr.io import read_image

PROBE = (
    "import sys; from threedsr.devices import threads_as_given; threads_as_given(); import numba, torch; "
    "sys.stdout.write(f'{numba.config.NUMBA_NUM_THREADS} {torch.get_num_threads()}')"
)


def _pools(env: dict) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True).stdout


def test_numba_and_torch_pools_follow_the_jobs_threads():
    assert _pools({"OMP_NUM_THREADS": "1"}) == "1 1"
    assert _pools({"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}) == "1 1"
    assert _pools({}).split()[0] == str(len(os.sched_getaffinity(0)))  # without a job's threads: the cores it may use


def test_scene_generation_gives_the_same_images_on_any_number_of_threads(tmp_path, monkeypatch):
    out = {}
    for n in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", n)
        generate_scene("forward", tmp_path / n, 48, 36, 1, 200, seed=0, num_views=4)
        out[n] = [read_image(p) for p in sorted((tmp_path / n / "images").iterdir())]
    assert len(out["1"]) == 4 and all(np.array_equal(a, b) for a, b in zip(out["1"], out["2"]))
