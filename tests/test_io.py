"""Writes that never leave a finished-looking output, never replace a parent folder, and name a full disk."""

import errno
import subprocess
import uuid

import pytest
import torch

from threedsr.errors import DataError, DiskFullError
from threedsr.io import atomic_dir, atomic_path, write_json


@pytest.mark.parametrize("name", ["..", ".", "llff/..", "llff/.", ""])
def test_no_write_can_replace_a_parent_folder(tmp_path, monkeypatch, name):
    """A job whose output resolves to a parent (a scene named '..') must not replace what is beside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "poses" / "llff" / "fern").mkdir(parents=True)
    (tmp_path / "results" / "poses" / "other").mkdir(parents=True)
    for write in (atomic_dir, atomic_path):
        with pytest.raises(DataError, match="not a file or folder name of its own"):
            with write(f"results/poses/{name}" if name else ""):
                pass
    assert (tmp_path / "results" / "poses" / "llff" / "fern").is_dir() and (tmp_path / "results" / "poses" / "other").is_dir()


def test_a_failed_write_leaves_nothing_and_a_killed_ones_leftovers_go(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "steps.png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    # a SIGKILL runs no clean-up: the next write of the same file removes what it left, and nothing else
    (tmp_path / ".steps.png.abc123.tmp").write_bytes(b"half")
    (tmp_path / ".steps.png.dir42.tmp").mkdir()
    (tmp_path / ".other.png.abc123.tmp").write_bytes(b"another job's")
    write_json(tmp_path / "steps.png", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.png.abc123.tmp", "steps.png"]


def test_a_full_disk_is_reported_as_such_naming_the_file(tmp_path, monkeypatch):
    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=f"{tmp_path / 'table.csv'}: no space left on device"):
        with atomic_path(tmp_path / "table.csv") as tmp:
            no_space(tmp)
    assert list(tmp_path.iterdir()) == []
    # a file written inside a folder written atomically: named once, the file (the message once nested itself)
    with pytest.raises(DiskFullError) as caught:
        with atomic_dir(tmp_path / "frames") as folder, atomic_path(folder / "f0.png") as tmp:
            no_space(tmp)
    assert str(caught.value).count("no space left") == 1 and "f0.png" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs: a real full disk (needs root and mount rights: skipped where they are missing)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root?)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_torch_save_on_a_full_disk_names_the_checkpoint(tiny_disk):
    """torch.save itself says only 'basic_ios::clear: iostream error' / 'unexpected pos'."""
    with pytest.raises(DiskFullError, match=f"{tiny_disk / 'ckpt.pt'}: no space left on device"):
        with atomic_path(tiny_disk / "ckpt.pt") as tmp:
            torch.save({"means": torch.zeros(1_000_000)}, tmp)
    assert list(tiny_disk.iterdir()) == []  # the partial file is gone: the space is free again
    with pytest.raises(DiskFullError, match="frames"):
        with atomic_dir(tiny_disk / "frames") as tmp:
            (tmp / "a.bin").write_bytes(bytes(2 << 20))
    assert list(tiny_disk.iterdir()) == []


def test_alpha_and_grayscale_images_are_converted_and_said_once(tmp_path, caplog):
    import logging

    import numpy as np
    from PIL import Image

    from threedsr.io import read_image

    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 128  # half transparent
    for i in range(2):
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"a{i}.png")
    Image.fromarray(np.full((4, 5), 77, dtype=np.uint8), "L").save(tmp_path / "g.png")
    with caplog.at_level(logging.WARNING):
        a0, a1, g = read_image(tmp_path / "a0.png"), read_image(tmp_path / "a1.png"), read_image(tmp_path / "g.png")
    assert a0.shape == (4, 5, 3) and int(a0[0, 0, 0]) == round(200 * 128 / 255)  # over black: colour x alpha
    assert np.array_equal(a0, a1) and np.array_equal(g, np.full((4, 5, 3), 77, dtype=np.uint8))
    assert caplog.text.count("composited over black") == 1 and caplog.text.count("one channel (L)") == 1


def test_images_over_pils_bomb_limit_decode_and_only_truly_huge_ones_are_refused(tmp_path, monkeypatch):
    """A 201-megapixel phone photo was a DecompressionBombError traceback (PIL refuses 2 x 89.5 MP by default). The
    limit is now read_image's own (MAX_PIXELS, what decoding costs), checked on the header and said in one line."""
    from PIL import Image

    from threedsr import io
    from threedsr.errors import DataError

    path = tmp_path / "big.png"
    Image.new("RGB", (100, 80), (10, 20, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL alone would refuse 8000 pixels as a bomb (> 2 x 1000)
    assert io.read_image(path).shape == (80, 100, 3) and io.image_size(path) == (100, 80) and Image.MAX_IMAGE_PIXELS == 1000
    monkeypatch.setattr(io, "MAX_PIXELS", 5000)
    with pytest.raises(DataError, match=r"big.png: 100x80 \(0 MP\) is over the 0 MP an image may have here"):
        io.read_image(path)


def test_progress_in_a_log_reads_as_lines(capsys, monkeypatch):
    """A job's log was one 18 KB line of carriage returns (train_prior) with cursor moves of nested bars (fit_3dsr):
    off a terminal each redraw is one line, at most every LOG_INTERVAL seconds."""
    from threedsr import progress as progress_module

    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    outer = progress_module.progress(range(2), desc="outer")
    for _ in outer:
        for _ in progress_module.progress(range(3), desc="inner", leave=False):
            pass
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert any(line.startswith("outer: 100%") for line in lines) and any(line.startswith("inner:") for line in lines)
