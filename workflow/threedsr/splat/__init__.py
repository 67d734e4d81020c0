"""3D Gaussian splatting: gsplat on CUDA, the project's own rasterizer behind the same call on CPU
(`rasterization.rasterization`); the trainer, its config, rendering, densification and Mip-Splatting's filters.

Importing the package costs nothing (settings.py reads `train_config`); the CPU kernels install their cache locator
when they are imported (kernel_cache.py).
"""

import os
from pathlib import Path

# gsplat compiles its CUDA kernels on first use; keep them in the project's cache, not in ~/.cache.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(os.environ.get("THREEDSR_CACHE", Path.cwd() / ".cache")) / "torch_extensions"))
