"""Progress bars that read as lines in a job's log.

On a terminal: tqdm as usual. Elsewhere (a job's `> log 2>&1`): the same bar, redrawn at most every LOG_INTERVAL seconds,
each redraw one line, without the carriage returns and cursor moves that made a log one 18 KB line.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 20.0  # seconds between two lines of one bar in a log


class _Lines:
    """A file for tqdm that turns its redraws into lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace("\x1b[A", "").split("\r"):
            if part.strip():
                self.stream.write(part.strip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs), as lines when stderr is not a terminal."""
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    kwargs["mininterval"] = max(kwargs.get("mininterval", 0.0), LOG_INTERVAL)
    return tqdm(iterable, file=_Lines(sys.stderr), ascii=True, **kwargs)
