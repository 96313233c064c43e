"""Server-side rate limiters used by the provider simulators.

* :class:`SlidingWindowLimiter`: at most ``limit`` accepted requests per key in any ``window_s``
  seconds, measured with ``time.monotonic``. Rejected requests are not recorded, so a client that
  keeps hammering is let in again as soon as the oldest accepted request leaves the window.
* :class:`DailyCounter`: at most ``limit`` accepted requests per key per calendar day of the
  simulated clock (in a configurable time zone); the count resets at midnight. ``limit=None``
  disables it.

Both are thread-safe and return a :class:`LimitDecision` describing the outcome.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo


@dataclass(frozen=True)
class LimitDecision:
    """Outcome of one acquisition attempt.

    ``remaining`` is what is left *after* this request (``None`` when the limiter is disabled);
    ``retry_after_s`` is how long until a slot frees up (0 when allowed).
    """

    allowed: bool
    limit: int | None
    remaining: int | None
    retry_after_s: float = 0.0


class SlidingWindowLimiter:
    """``limit`` requests per ``window_s`` seconds, per key (sliding log of accept times)."""

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a sliding window needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._log: dict[Hashable, deque[float]] = {}

    def _expire(self, key: Hashable, now: float) -> deque[float]:
        entries = self._log.setdefault(key, deque())
        horizon = now - self.window_s
        while entries and entries[0] <= horizon:
            entries.popleft()
        return entries

    def try_acquire(self, key: Hashable = "") -> LimitDecision:
        """Accept and record one request for ``key`` if the window has room."""
        with self._lock:
            now = self._clock()
            entries = self._expire(key, now)
            if len(entries) >= self.limit:
                retry = entries[0] + self.window_s - now
                return LimitDecision(False, self.limit, 0, max(0.0, retry))
            entries.append(now)
            return LimitDecision(True, self.limit, self.limit - len(entries))

    def remaining(self, key: Hashable = "") -> int:
        """Requests ``key`` may still make in the current window."""
        with self._lock:
            return self.limit - len(self._expire(key, self._clock()))

    def reset(self, key: Hashable | None = None) -> None:
        """Forget usage of ``key`` (or of every key)."""
        with self._lock:
            if key is None:
                self._log.clear()
            else:
                self._log.pop(key, None)


class DailyCounter:
    """``limit`` requests per key per day of a (simulated) clock; ``limit=None`` means unlimited.

    ``now`` returns the current time as an aware datetime (e.g. ``SimClock.now``); days are
    counted in ``tz`` (UTC by default), so the counter resets at that zone's midnight.
    """

    def __init__(self, limit: int | None, now: Callable[[], datetime], *, tz: tzinfo = timezone.utc) -> None:
        if limit is not None and limit < 1:
            raise ValueError("daily limit must be >= 1 or None")
        self.limit = limit
        self.tz = tz
        self._now = now
        self._lock = threading.Lock()
        self._day: date | None = None
        self._counts: dict[Hashable, int] = {}

    @property
    def enabled(self) -> bool:
        """Whether a limit is enforced."""
        return self.limit is not None

    def _roll(self) -> datetime:
        local_now = self._now().astimezone(self.tz)
        if local_now.date() != self._day:
            self._day = local_now.date()
            self._counts.clear()
        return local_now

    def seconds_until_reset(self) -> float:
        """Seconds until the next local midnight."""
        with self._lock:
            local_now = self._roll()
        midnight = datetime.combine(local_now.date() + timedelta(days=1), datetime.min.time(), tzinfo=self.tz)
        # Subtract in UTC: same-tzinfo subtraction would ignore a DST change on that day.
        return max(0.0, (midnight.astimezone(timezone.utc) - local_now.astimezone(timezone.utc)).total_seconds())

    def try_acquire(self, key: Hashable = "") -> LimitDecision:
        """Accept and count one request for ``key`` unless today's budget is spent."""
        if self.limit is None:
            return LimitDecision(True, None, None)
        with self._lock:
            self._roll()
            used = self._counts.get(key, 0)
            if used >= self.limit:
                return LimitDecision(False, self.limit, 0)
            self._counts[key] = used + 1
            return LimitDecision(True, self.limit, self.limit - used - 1)

    def remaining(self, key: Hashable = "") -> int | None:
        """Requests left today for ``key`` (``None`` when unlimited)."""
        if self.limit is None:
            return None
        with self._lock:
            self._roll()
            return self.limit - self._counts.get(key, 0)

    def used(self, key: Hashable = "") -> int:
        """Requests counted today for ``key``."""
        with self._lock:
            self._roll()
            return self._counts.get(key, 0)

    def reset(self, key: Hashable | None = None) -> None:
        """Forget today's usage of ``key`` (or of every key)."""
        with self._lock:
            if key is None:
                self._counts.clear()
            else:
                self._counts.pop(key, None)
