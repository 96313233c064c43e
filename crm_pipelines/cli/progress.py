"""A progress bar on the terminal (a plain line every few seconds when output is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, *, stream: TextIO | None = None, width: int = 30, every_s: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = False

    def update(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not self._tty and not finished and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        if total:
            filled = int(self.width * min(done / total, 1.0))
            eta = (total - done) / rate if rate > 0 else 0.0
            line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,} {rate:,.0f}/s ETA {eta:,.0f}s"
        else:
            line = f"{self.label}: {done:,} records, {rate:,.0f}/s, {elapsed:,.0f}s"
        if self._tty:
            self.stream.write("\r" + line.ljust(100)[:120])
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
