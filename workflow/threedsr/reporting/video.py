"""Fly-through videos: one MP4 per 3D method along one shared smooth path, and all of them side by side.

Flicker and view-dependent inconsistency show in motion, not in still test views. MP4s are H.264
(yuv420p, what browsers play) written by the ffmpeg binary that the imageio-ffmpeg wheel ships.
"""

from __future__ import annotations

import base64
import contextlib
import html
import logging
import math
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from ..data.scene import PreparedScene
from ..data.trajectory import scene_trajectory
from ..errors import DataError
from ..imaging import labelled, to_uint8
from ..io import atomic_path
from ..progress import progress
from ..splat.render import RenderSettings, render_views
from ..splat.trainer import load_params

log = logging.getLogger(__name__)


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: pad by repeating the last row / column."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


@contextlib.contextmanager
def mp4_writer(path: str | Path, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """Append H×W×3 uint8 frames one at a time to an MP4 written atomically (a killed job leaves no
    playable-looking file); frames are streamed to ffmpeg, never held together in memory."""
    import imageio_ffmpeg

    with atomic_path(path) as tmp:
        writer = None

        def append(frame: np.ndarray) -> None:
            nonlocal writer
            frame = _even(np.ascontiguousarray(frame, dtype=np.uint8))
            if writer is None:
                h, w = frame.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(tmp),
                    (w, h),
                    fps=fps,
                    codec="libx264",
                    quality=8,
                    pix_fmt_out="yuv420p",
                    macro_block_size=1,
                    output_params=["-f", "mp4", "-movflags", "+faststart"],
                    ffmpeg_log_level="error",
                )
                writer.send(None)
            writer.send(frame)

        try:
            yield append
        finally:
            if writer is not None:
                writer.close()  # ends ffmpeg also when the block failed
        if writer is None:
            raise ValueError(f"{path}: no frames to write")


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> None:
    """H×W×3 uint8 frames as an MP4, written atomically."""
    with mp4_writer(path, fps) as append:
        for f in frames:
            append(f)


def read_mp4(path: str | Path) -> tuple[list[np.ndarray], float]:
    """Every decoded frame (H×W×3 uint8) and the frame rate."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    except (RuntimeError, OSError, StopIteration) as e:
        raise DataError(f"{path}: cannot decode ({e})") from None
    if not frames:
        raise DataError(f"{path}: no frames")
    return frames, float(meta["fps"])


def count_frames(path: str | Path) -> int:
    """Frames counted by decoding the whole file (a truncated file counts what decodes)."""
    return len(read_mp4(path)[0])


def grid_frame(tiles: dict[str, np.ndarray], columns: int = 3) -> np.ndarray:
    """Frames of the same size in a grid, each tile labelled."""
    sizes = {label: frame.shape for label, frame in tiles.items()}
    if len(set(sizes.values())) > 1:
        raise DataError(f"frames differ in size, so they are not one trajectory: {sizes}")
    h, w = next(iter(sizes.values()))[:2]
    columns = min(columns, len(tiles))
    canvas = np.zeros((math.ceil(len(tiles) / columns) * h, columns * w, 3), dtype=np.uint8)
    for k, (label, frame) in enumerate(tiles.items()):
        r, c = divmod(k, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = labelled(Image.fromarray(np.ascontiguousarray(frame)), label)
    return canvas


def grid(clips: dict[str, list[np.ndarray]], columns: int = 3) -> list[np.ndarray]:
    """Clips of the same length and frame size in a grid, frame by frame."""
    lengths = {label: len(frames) for label, frames in clips.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"clips differ in length, so they are not one trajectory: {lengths}")
    return [grid_frame(dict(zip(clips, frames)), columns) for frames in zip(*clips.values())]


def scene_videos(scene_dir: Path, ckpts: dict[str, Path], out_dir: Path, n_interp: int, fps: float, device: torch.device) -> int:
    """<out_dir>/<method>.mp4 for every checkpoint and <out_dir>/side_by_side.mp4, along one path; returns its length.

    One job per scene: rendering is cheap next to starting a process per method. Each pose is
    rendered by every method and written to all videos at once, so memory holds one frame per
    method, not whole videos (a paper-sized path is thousands of 2016×1512 frames); the grid is
    composed from the rendered frames, not from decoded (twice compressed) videos.
    """
    scene = PreparedScene(scene_dir)
    path = scene_trajectory(scene, n_interp)
    models = {method: load_params(ckpt, device) for method, ckpt in ckpts.items()}
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        writers = {method: stack.enter_context(mp4_writer(out_dir / f"{method}.mp4", fps)) for method in models}
        side_by_side = stack.enter_context(mp4_writer(out_dir / "side_by_side.mp4", fps))
        for view in progress(path, desc=f"videos {scene.root.name}", unit="frame", mininterval=2.0):
            tiles = {}
            for method, (params, state) in models.items():
                rgb, _ = render_views(params, [view], RenderSettings.of(state["config"]), device)
                tiles[method] = to_uint8(rgb[0])
                writers[method](tiles[method])
            side_by_side(grid_frame(tiles))
    log.info(
        "%s: %d frames at %dx%d (%.1f s) for %s", out_dir, len(path), path[0].hr.width, path[0].hr.height, len(path) / fps, ", ".join(ckpts)
    )
    return len(path)


def video_page(mp4: Path, out_html: Path, title: str, note: str) -> None:
    """A self-contained HTML page playing the video (embedded as a data URI): what the Snakemake report shows."""
    data = base64.b64encode(Path(mp4).read_bytes()).decode("ascii")
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        "<body style='margin:0;font-family:sans-serif;background:#111;color:#eee'>"
        f"<p style='margin:6px'>{html.escape(note)}</p>"
        f"<video controls loop autoplay muted playsinline style='width:100%;image-rendering:pixelated' "
        f"src='data:video/mp4;base64,{data}'></video></body></html>"
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page)
