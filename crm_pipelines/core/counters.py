"""Counters that several threads add to, read all at once."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class LockedCounters:
    """Base for dataclasses of numeric fields: ``add(**deltas)`` and a consistent ``snapshot()``."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, Any]:
        """Public fields as plain values (floats rounded to milliseconds, counters as dicts)."""
        with self._lock:
            return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, Counter):
        return dict(value)
    return value
