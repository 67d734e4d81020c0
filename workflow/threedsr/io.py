"""File I/O that never leaves a half-written output that looks finished."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import DataError, DiskFullError, ThreeDSRError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _own_name(final: str | os.PathLike) -> Path:
    """`final` as a Path, refusing names that are not a file or folder of their own: 'a/..' or 'a/.' would
    make the caller replace a parent folder (and everything in it)."""
    raw = os.fspath(final)
    if os.path.basename(raw.rstrip("/")) in ("", ".", ".."):
        raise DataError(f"{raw!r}: not a file or folder name of its own; refusing to write (it would replace a parent folder)")
    return Path(raw)


def _remove_stale(final: Path) -> None:
    """Temporary files of `final` left by a killed process (a SIGKILL runs no clean-up); nothing else is touched."""
    for old in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        log.info("removing %s, left by an interrupted run", old)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


_FAULT_PASSES: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A place where the fault-injection tests kill the job as SIGKILL would (no `finally` block runs, no temporary file
    is removed): THREEDSR_FAULT=<name>[@<n>] exits at the n-th pass (default the first). Points: write:<file name>
    (every atomic write, just before its rename: "inside the final write"), fit:resume-saved, 3dsr:round-saved,
    sr:batch-saved and frames:batch-saved (partial.PartialImages)."""
    spec = os.environ.get("THREEDSR_FAULT")
    if not spec or spec.partition("@")[0] != name:
        return
    _FAULT_PASSES[name] = _FAULT_PASSES.get(name, 0) + 1
    if _FAULT_PASSES[name] == int(spec.partition("@")[2] or 1):
        print(f"threedsr: fault injected at {spec}", file=sys.stderr, flush=True)
        os._exit(137)


def _free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bfree * st.f_frsize


@contextlib.contextmanager
def _naming_a_full_disk(final: Path, tmp: Path) -> Iterator[None]:
    """A full disk is reported as such, naming the output (torch.save says only 'basic_ios::clear: iostream error')."""
    try:
        yield
    except ThreeDSRError:  # already named, by the innermost write (a file inside an atomic_dir): said once
        raise
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFullError(
                f"{final}: no space left on device while writing it ({e.strerror}); free some space and run again"
            ) from None
        raise
    except RuntimeError as e:
        if _free_bytes(tmp.parent) < 16 << 20:
            raise DiskFullError(f"{final}: no space left on device while writing it ({e}); free some space and run again") from None
        raise


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    final = _own_name(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with _naming_a_full_disk(final, tmp):
            yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared like any written file
        fault_point(f"write:{final.name}")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `final` only if the block succeeds."""
    final = _own_name(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        with _naming_a_full_disk(final, tmp):
            yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        fault_point(f"write:{final.name}")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


RERUN = "delete it and rerun the job that writes it"


def load_checkpoint(path: str | os.PathLike, map_location="cpu", keys: tuple[str, ...] = (), fix: str | None = RERUN):
    """A checkpoint this project wrote (torch.load with weights_only=True) holding `keys`; a truncated, foreign or
    malicious file is a DataError naming it and what to do (`fix`), never a bare PytorchStreamReader traceback or a
    KeyError later."""
    import pickle

    import torch

    advice = f"; {fix}" if fix else ""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError, AttributeError) as e:
        raise DataError(f"{path}: truncated, corrupt or not a checkpoint of this project ({type(e).__name__}: {e}){advice}") from None
    if keys and not isinstance(state, dict):
        raise DataError(f"{path}: not a checkpoint of this project (a {type(state).__name__}, not a dict){advice}")
    if missing := [k for k in keys if k not in state]:
        raise DataError(f"{path}: not a checkpoint of this project (no {', '.join(repr(k) for k in missing)}){advice}")
    return state


def load_resume_point(path: str | os.PathLike, map_location="cpu", keys: tuple[str, ...] = ()):
    """A resume point (state.pt, resume.pt) holding `keys`, or None if there is none. One that cannot be read (a
    truncated write, a full disk, a file from elsewhere) is set aside as <name>.corrupt with a warning, so the run
    starts clean instead of failing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, map_location, keys, fix=None)
    except DataError as e:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        log.warning("%s: moved to %s, starting over", e, aside)
        return None


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files in `folder`, sorted by name (the order every split and pose file relies on)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def file_hashes(folder: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{path relative to `folder` (POSIX): sha256} of every file under it, sorted by path; file names in `skip` left
    out. What a folder of weights is checked against (the prior's tiny_sr.json, the prior cache's fingerprints)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with _open_image(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


_CONVERSIONS_SAID: set[tuple[str, str]] = set()  # (folder, kind): each conversion is logged once per folder


def _as_rgb(im: Image.Image, path: str | os.PathLike) -> Image.Image:
    """RGB, from whatever the file holds. Alpha is composited over black, as 3DGS' and the official 3DSR code's
    loaders do (image * alpha); one channel is replicated. Each is said once per folder."""
    if im.mode == "RGB":
        return im
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)
    kind = "alpha" if has_alpha else "grayscale" if im.mode in ("1", "L", "I", "I;16", "F") else im.mode
    folder = str(Path(path).parent)
    if (folder, kind) not in _CONVERSIONS_SAID:
        _CONVERSIONS_SAID.add((folder, kind))
        what = {
            "alpha": f"with an alpha channel ({im.mode}) are composited over black, as 3DGS and the official 3DSR code load them",
            "grayscale": f"with one channel ({im.mode}) are converted to RGB (the channel repeated)",
        }.get(kind, f"in mode {im.mode} are converted to RGB")
        log.warning("%s: images %s (first: %s)", folder, what, Path(path).name)
    if has_alpha:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    if im.mode in ("I", "I;16", "F"):  # 16-bit or float grayscale: scale to 8 bits instead of clipping
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I") and a.max() > 255 else 255.0 if im.mode != "F" else max(1.0, float(a.max()))
        return Image.fromarray(np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


# PIL refuses images over 2 x Image.MAX_IMAGE_PIXELS (179 MP) as decompression bombs, yet phone photos reach 200 MP. The
# limit here is what decoding one may cost, 3 bytes a pixel: 1.5 GB at 500 MP; checked on the header, before decoding.
MAX_PIXELS = 500_000_000


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image to HxWx3 uint8 RGB; a truncated or corrupt file, or one larger than MAX_PIXELS, raises DataError
    naming it."""
    try:
        with _open_image(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(
                    f"{path}: {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} MP) is over the {MAX_PIXELS / 1e6:.0f} MP "
                    f"an image may have here ({3 * MAX_PIXELS / 1e9:.1f} GB decoded): downsample the originals first"
                )
            im.load()
            return np.asarray(_as_rgb(im, path))
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e})") from None


def _open_image(path):
    """Image.open with PIL's decompression-bomb check left to read_image's own limit (MAX_PIXELS)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
