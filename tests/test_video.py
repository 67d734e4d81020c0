"""Fly-through videos: MP4s that decode to the frames written, the labelled side-by-side grid, the report page."""

import base64
import os
import re

import numpy as np
import pytest

from threedsr.errors import DataError
from threedsr.video import count_frames, read_mp4, side_by_side, video_page, write_mp4


def _frames(n, h=37, w=51, seed=0):
    """Smooth moving gradients (what a codec keeps well), odd sizes on purpose (yuv420p needs even ones)."""
    y, x = np.mgrid[0:h, 0:w]
    return [np.stack([(x * 5 + 7 * i) % 256, (y * 6 + 3 * i) % 256, np.full_like(x, 40 * seed + 60)], -1).astype(np.uint8) for i in range(n)]


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


def test_side_by_side_puts_each_method_in_its_labelled_tile(tmp_path):
    videos, sources = {}, {}
    for k, label in enumerate(["lr3dgs", "3dsr", "supergaussian", "isr"]):
        videos[label], sources[label] = tmp_path / f"{label}.mp4", _frames(9, h=40, w=60, seed=k)
        write_mp4(videos[label], sources[label], fps=8)
    n = side_by_side(videos, tmp_path / "grid.mp4", columns=3)
    grid, _ = read_mp4(tmp_path / "grid.mp4")
    assert n == len(grid) == 9 and grid[0].shape == (80, 180, 3)
    # tile k shows video k (its blue channel is 40 k + 60) below the label box; the 6th cell stays black
    for k, label in enumerate(videos):
        r, c = divmod(k, 3)
        tile = grid[4][r * 40 : r * 40 + 40, c * 60 : c * 60 + 60].astype(float)
        assert abs(tile[20:, :, 2].mean() - (40 * k + 60)) < 8
        # the label (white on black) covers the top-left corner
        assert np.abs(tile[1:11, 1:6 * len(label)] - sources[label][4][1:11, 1:6 * len(label)]).mean() > 30
    assert grid[4][40:, 120:].mean() < 5
    write_mp4(tmp_path / "short.mp4", _frames(5, h=40, w=60), fps=8)
    with pytest.raises(DataError, match="not one trajectory"):
        side_by_side({"a": videos["3dsr"], "b": tmp_path / "short.mp4"}, tmp_path / "bad.mp4")


def test_the_report_page_embeds_the_video(tmp_path):
    write_mp4(tmp_path / "a.mp4", _frames(4), fps=4)
    video_page(tmp_path / "a.mp4", tmp_path / "a.html", "synthetic_forward", "lr3dgs, 3dsr <all>")
    page = (tmp_path / "a.html").read_text()
    data = re.search(r"src='data:video/mp4;base64,([^']+)'", page).group(1)
    assert base64.b64decode(data) == (tmp_path / "a.mp4").read_bytes()
    assert "&lt;all&gt;" in page
