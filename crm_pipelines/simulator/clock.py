"""The simulators' notion of "now" and the time formats they share."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

class SimClock:
    """Wall clock plus an offset, or a frozen instant; ``advance``/``set``/``freeze``/``unfreeze``
    move it. All datetimes are timezone-aware UTC. Thread-safe."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        start_ts = to_utc(start).timestamp() if start is not None else wall()
        self._frozen_at: float | None = start_ts if frozen else None
        self._offset = 0.0 if frozen or start is None else start_ts - wall()

    def timestamp(self) -> float:
        """Seconds since the epoch, simulated."""
        with self._lock:
            return self._frozen_at if self._frozen_at is not None else self._wall() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=timezone.utc)

    def now_ms(self) -> int:
        return int(self.timestamp() * 1000)

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (naive = UTC); a frozen clock stays frozen."""
        target = to_utc(moment).timestamp()
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = target
            else:
                self._offset = target - self._wall()

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (default: the current simulated time)."""
        with self._lock:
            current = self._frozen_at if self._frozen_at is not None else self._wall() + self._offset
            self._frozen_at = to_utc(at).timestamp() if at is not None else current

    def unfreeze(self) -> None:
        """Let a frozen clock run again from where it stopped."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - self._wall()
                self._frozen_at = None

    def describe(self) -> dict[str, Any]:
        now = self.now()
        return {"now": now.isoformat(), "now_ms": int(now.timestamp() * 1000), "frozen": self.frozen}


def to_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_datetime(text: str) -> datetime:
    """ISO-8601 (``Z`` allowed) or epoch milliseconds, as an aware UTC datetime."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def utc_iso_ms(epoch_ms: int) -> str:
    """``2025-02-01T09:30:11.123Z`` for an epoch-milliseconds value."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def utc_iso_s(epoch_s: float | None) -> str | None:
    """``2025-02-01T09:30:11Z`` (whole seconds) for epoch seconds; ``None`` stays ``None``."""
    return None if epoch_s is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_s)))


def seeded_time(rng: Any, start: int, end: int) -> int:
    """A seeded instant in ``[start, end]``: how every simulator spreads its seeded history."""
    return start + int(rng.random() * (end - start + 1))
