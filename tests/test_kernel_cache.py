"""The CPU kernels' compiled code is shared by every copy of the same source on a machine (splat/kernel_cache.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"

# a small kernel: compiled in well under a second
PROBE = (
    "import json, numpy as np; from threedsr.splat import cpu_raster as m; "
    "m._exp_neg(0.5, m.constants(np.float64)); s = m._exp_neg.stats; "
    "print(json.dumps({'file': m.__file__, 'path': s.cache_path, 'hits': sum(s.cache_hits.values()), "
    "'misses': sum(s.cache_misses.values())}))"
)


def _probe(pythonpath: Path, cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "THREEDSR_KERNEL_CACHE": cache}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_another_checkout_of_the_same_code_loads_the_compiled_kernels(tmp_path):
    cache = tmp_path / "cache"
    first = _probe(WORKFLOW, str(cache))
    assert first["misses"] == 1 and first["hits"] == 0
    assert Path(first["path"]) == cache / "threedsr.splat.cpu_raster"

    copy = tmp_path / "clone" / "workflow"
    shutil.copytree(WORKFLOW / "threedsr", copy / "threedsr", ignore=shutil.ignore_patterns("__pycache__"))
    second = _probe(copy, str(cache))
    assert Path(second["file"]).is_relative_to(copy)  # the other checkout's module ...
    assert second["hits"] == 1 and second["misses"] == 0  # ... did not compile

    # an edit anywhere beside the kernel (constants and helpers are compiled in) compiles it again
    with open(copy / "threedsr" / "splat" / "sh.py", "a") as f:
        f.write("\n# edited\n")
    assert _probe(copy, str(cache))["misses"] == 1


def test_off_leaves_the_kernels_beside_their_source(tmp_path):
    copy = tmp_path / "workflow"
    shutil.copytree(WORKFLOW / "threedsr", copy / "threedsr", ignore=shutil.ignore_patterns("__pycache__"))
    probe = _probe(copy, "off")
    assert Path(probe["path"]) == copy / "threedsr" / "splat" / "__pycache__"
