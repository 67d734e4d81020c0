"""The CPU kernels' compiled code kept in a user-wide cache, so a fresh clone loads them instead of compiling them again.

numba compiles the kernels (`njit(cache=True)`) on their first call, about 30 s for a training step's, and keeps the
result beside the source (`__pycache__`) or under NUMBA_CACHE_DIR in a folder named by the source's absolute path: a
new clone, a CI checkout or a Snakemake shadow directory compiles everything again. This locator keeps the kernels of
this package in one folder per module instead:

    $THREEDSR_KERNEL_CACHE/<module>/      (default ~/.cache/threedsr/numba, or $XDG_CACHE_HOME/threedsr/numba)
    THREEDSR_KERNEL_CACHE=off             numba's own place (beside the source)

numba's index stays what decides reuse (the kernel's signature, the CPU's name and features, numba's version); the
source stamp it compares is the digest of every module in the kernel's folder, not of its own file alone, because a
kernel inlines constants and helpers from its neighbours (`cpu_project` reads `sh`'s). Two checkouts of different
code on one machine take turns (each compiles when the other one ran last), as one checkout does across edits.
NUMBA_CACHE_DIR, when set, wins: numba's own locator comes first.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


def kernel_cache_root() -> Path | None:
    """The cache folder, or None when THREEDSR_KERNEL_CACHE=off."""
    env = os.environ.get("THREEDSR_KERNEL_CACHE")
    if env == "off":
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "threedsr" / "numba"


@functools.cache
def folder_digest(folder: str) -> str:
    """sha256 of every .py file in `folder` (names and contents, in name order)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def install() -> None:
    """Put the locator in numba's list (once; call before the kernels' modules are imported). Without numba's
    internal locator API (a numba version that moved it) the kernels are cached where numba puts them."""
    root = kernel_cache_root()
    if root is None:
        return
    try:
        from numba.core import caching

        Mixin, Base, classes = caching._SourceFileBackedLocatorMixin, caching._CacheLocator, caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        return

    class ModuleCacheLocator(Mixin, Base):
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(root / py_func.__module__)

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return folder_digest(os.path.dirname(os.path.abspath(self._py_file)))

        @classmethod
        def from_function(cls, py_func, py_file):
            if py_func.__module__.split(".")[0] != __name__.split(".")[0]:
                return None
            return super().from_function(py_func, py_file)  # the file exists and the folder is writable, else the next

    if not any(c.__name__ == ModuleCacheLocator.__name__ for c in classes):
        # after numba's NUMBA_CACHE_DIR locator (named UserProvidedCacheLocator, with or without an underscore)
        user = 1 if classes and "UserProvided" in classes[0].__name__ else 0
        classes.insert(user, ModuleCacheLocator)
