"""How far a reader has come: counted per page and logged every few pages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class ReadProgress:
    """The read path a reader took and what it has read so far (``expected`` when the total is known)."""

    strategy: str = ""
    expected: int | None = None
    fetched: int = 0
    pages: int = 0
    resumed: int = 0
    started: float = 0.0

    def tick(self, count: int, logger: Any, every: int, *, page: bool = True) -> None:
        """Count ``count`` records (and a page, unless the reader counts pages itself); log every ``every`` pages."""
        self.fetched += count
        if page:
            self.pages += 1
        if self.pages % every:
            return
        elapsed = time.monotonic() - self.started
        if self.expected:
            share = min(self.fetched / self.expected, 1.0)
            eta = elapsed / share - elapsed if share > 0 else float("nan")
            logger.info("read %d of ~%d records (%d pages, %.0f%%), ETA %.0fs", self.fetched, self.expected, self.pages, share * 100, eta)
        else:
            rate = self.fetched / elapsed if elapsed > 0 else 0.0
            logger.info("read %d records (%d pages, %.0f records/s)", self.fetched, self.pages, rate)
