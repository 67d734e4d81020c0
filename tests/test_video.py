"""Fly-through videos: MP4s that decode to the frames written, the labelled side-by-side grid, the report page."""

import base64
import os
import re

import numpy as np
import pytest
import torch

from threedsr.data.scene import PreparedScene
from threedsr.errors import DataError
from threedsr.reporting.video import count_frames, grid, read_mp4, scene_videos, video_page, write_mp4


def _frames(n, h=37, w=51, seed=0):
    """Smooth moving gradients (what a codec keeps well), odd sizes on purpose (yuv420p needs even ones)."""
    y, x = np.mgrid[0:h, 0:w]
    return [
        np.stack([(x * 5 + 7 * i) % 256, (y * 6 + 3 * i) % 256, np.full_like(x, 40 * seed + 60)], -1).astype(np.uint8) for i in range(n)
    ]


def test_an_mp4_decodes_to_its_frames(tmp_path):
    frames = _frames(17)
    write_mp4(tmp_path / "a.mp4", frames, fps=12)
    decoded, fps = read_mp4(tmp_path / "a.mp4")
    assert len(decoded) == count_frames(tmp_path / "a.mp4") == 17 and fps == pytest.approx(12)
    assert decoded[0].shape == (38, 52, 3)  # padded to even sides
    err = np.mean([np.abs(d[:37, :51].astype(float) - f).mean() for d, f in zip(decoded, frames)])
    assert err < 6, err
    assert not list(tmp_path.glob(".*tmp"))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.mp4").stat().st_mode & 0o777 == 0o666 & ~mask  # readable like any written file, not mkstemp's 0600


def test_a_truncated_video_counts_fewer_frames_and_a_broken_one_is_an_error_naming_it(tmp_path):
    write_mp4(tmp_path / "a.mp4", _frames(30), fps=12)
    data = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert count_frames(tmp_path / "cut.mp4") < 30
    (tmp_path / "broken.mp4").write_bytes(b"\0" * 64 + data[4000:])
    with pytest.raises(DataError, match="broken.mp4"):
        read_mp4(tmp_path / "broken.mp4")
    with pytest.raises(DataError, match="none.mp4"):
        read_mp4(tmp_path / "none.mp4")


def test_the_grid_puts_each_method_in_its_labelled_tile():
    clips = {label: _frames(9, h=40, w=60, seed=k) for k, label in enumerate(["lr3dgs", "3dsr", "supergaussian", "isr"])}
    frames = grid(clips, columns=3)
    assert len(frames) == 9 and frames[0].shape == (80, 180, 3)
    for k, (label, clip) in enumerate(clips.items()):
        r, c = divmod(k, 3)
        tile = frames[4][r * 40 : r * 40 + 40, c * 60 : c * 60 + 60]
        assert np.array_equal(tile[20:], clip[4][20:])
        # the label (white on black) covers the top-left corner
        assert np.abs(tile[1:11, 1 : 6 * len(label)].astype(float) - clip[4][1:11, 1 : 6 * len(label)]).mean() > 30
    assert frames[4][40:, 120:].max() == 0
    with pytest.raises(DataError, match="not one trajectory"):
        grid({"a": clips["3dsr"], "b": clips["isr"][:5]})


def test_scene_videos_share_one_path(small_scene_and_lr_model, tmp_path):
    scene_dir, ckpt = small_scene_and_lr_model
    n = scene_videos(scene_dir, {"lr3dgs": ckpt, "again": ckpt}, tmp_path, 1, 8, torch.device("cpu"))
    keys = len(PreparedScene(scene_dir).train_views)
    assert n == 2 * (keys - 1) + 1
    a, b, side = (read_mp4(tmp_path / f"{m}.mp4")[0] for m in ("lr3dgs", "again", "side_by_side"))
    assert len(a) == len(side) == n and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert side[0].shape == (48, 128, 3)


def test_the_report_page_embeds_the_video(tmp_path):
    write_mp4(tmp_path / "a.mp4", _frames(4), fps=4)
    video_page(tmp_path / "a.mp4", tmp_path / "a.html", "synthetic_forward", "lr3dgs, 3dsr <all>")
    page = (tmp_path / "a.html").read_text()
    data = re.search(r"src='data:video/mp4;base64,([^']+)'", page).group(1)
    assert base64.b64decode(data) == (tmp_path / "a.mp4").read_bytes()
    assert "&lt;all&gt;" in page
