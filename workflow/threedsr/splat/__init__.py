"""3D Gaussian splatting: gsplat on CUDA, the project's own rasterizer behind the same call on CPU."""

import os
from pathlib import Path

# gsplat compiles its CUDA kernels on first use; keep them in the project's cache, not in ~/.cache.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(os.environ.get("THREEDSR_CACHE", Path.cwd() / ".cache")) / "torch_extensions"))

# numba's compiled kernels in a user-wide cache, so a fresh clone does not compile them again (before they are imported).
from .kernel_cache import install  # noqa: E402

install()

from .rasterization import rasterization  # noqa: E402

__all__ = ["rasterization"]
