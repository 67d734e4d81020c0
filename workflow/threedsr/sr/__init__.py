"""Super-resolution models behind one interface (`base.SRModel` / `base.DiffusionSR`)."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where converted or trained model files live: $THREEDSR_CACHE or ./.cache (git-ignored)."""
    return Path(os.environ.get("THREEDSR_CACHE", Path.cwd() / ".cache"))
