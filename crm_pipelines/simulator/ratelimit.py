"""Server-side rate limits of the provider simulators.

* :class:`SlidingWindowLimiter`: at most ``limit`` units per key in any ``window_s`` seconds
  (requests, or weighted calls such as Pipedrive's token costs). Rejected requests are not
  recorded, so a client that keeps hammering is let in again as soon as the oldest accepted units
  leave the window. With ``bucket_s`` the times are rounded down to buckets (a rolling 24-hour
  allocation counted per minute, as Salesforce's).
* :class:`DailyCounter`: at most ``limit`` units per key per calendar day of the simulated clock,
  in a time zone; resets at that zone's midnight.
* :class:`LeakyBucket`: points that drain and refill at a steady rate (Shopify's cost bucket).
* :class:`Quota`: a daily budget over a burst window, as HubSpot, Pipedrive and GestaoClick count
  API calls: :meth:`Quota.take` checks the day first (a call it cannot pay for is refused as
  ``DAILY`` until the next local midnight), then the window; an admitted call is counted against
  the day. Each refusal is recorded in the simulator's statistics under its policy name. The
  provider keeps its own numbers, headers and 429 bodies; :func:`retry_after` is the
  ``Retry-After`` they share.

``limit`` may be a callable read at every request (a live configuration), or ``None`` for no
limit (usage is still counted). All are thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

Limit = int | None | Callable[[], int | None]


@dataclass(frozen=True)
class LimitDecision:
    """Outcome of one acquisition: ``remaining`` after it (``None`` when unlimited);
    ``retry_after_s`` until it would fit (0 when allowed); ``reset_s`` until the window is empty."""

    allowed: bool
    remaining: int | None
    retry_after_s: float = 0.0
    reset_s: float = 0.0


class _Limited:
    def __init__(self, limit: Limit) -> None:
        self._limit = limit
        self._lock = threading.Lock()

    @property
    def limit(self) -> int | None:
        return self._limit() if callable(self._limit) else self._limit


class SlidingWindowLimiter(_Limited):
    """``limit`` units per ``window_s`` seconds, per key (a log of accepted units)."""

    def __init__(self, limit: Limit, window_s: float, *, clock: Callable[[], float] = time.monotonic, bucket_s: float = 0.0) -> None:
        if window_s <= 0 or (isinstance(limit, int) and limit < 1):
            raise ValueError("a sliding window needs limit >= 1 and window_s > 0")
        super().__init__(limit)
        self.window_s = window_s
        self._clock = clock
        self._bucket_s = bucket_s
        self._log: dict[Hashable, deque[list[float]]] = {}
        self._used: dict[Hashable, float] = {}

    def _now(self) -> float:
        now = self._clock()
        return now - now % self._bucket_s if self._bucket_s else now

    def _expire(self, key: Hashable, now: float) -> tuple[deque[list[float]], float]:
        entries = self._log.setdefault(key, deque())
        used = self._used.get(key, 0)
        while entries and entries[0][0] <= now - self.window_s:
            used -= entries.popleft()[1]
        self._used[key] = used
        return entries, used

    def try_acquire(self, key: Hashable = "", weight: int = 1, *, force: bool = False) -> LimitDecision:
        """Accept and record ``weight`` units for ``key`` if the window has room (always with ``force``)."""
        with self._lock:
            now, limit = self._now(), self.limit
            entries, used = self._expire(key, now)
            if not force and limit is not None and used + weight > limit:
                freed, retry = 0.0, self.window_s
                for stamp, units in entries:
                    freed += units
                    if freed >= used + weight - limit:
                        retry = stamp + self.window_s - now
                        break
                return LimitDecision(False, max(limit - int(used), 0), max(retry, 0.0), max(retry, 0.0))
            if entries and entries[-1][0] == now:
                entries[-1][1] += weight
            else:
                entries.append([now, weight])
            used = self._used[key] = used + weight
            return LimitDecision(True, None if limit is None else limit - int(used), 0.0, max(entries[0][0] + self.window_s - now, 0.0))

    def used(self, key: Hashable = "") -> int:
        with self._lock:
            return int(self._expire(key, self._now())[1])

    def remaining(self, key: Hashable = "") -> int:
        """Units ``key`` may still spend in the current window."""
        limit = self.limit
        return max((limit or 0) - self.used(key), 0)

    def reset(self) -> None:
        """Forget every key's usage."""
        with self._lock:
            self._log.clear()
            self._used.clear()


class DailyCounter(_Limited):
    """``limit`` units per key per day of a (simulated) clock ``now``; days are counted in ``tz``."""

    def __init__(self, limit: Limit, now: Callable[[], datetime], *, tz: tzinfo = timezone.utc) -> None:
        if isinstance(limit, int) and limit < 1:
            raise ValueError("daily limit must be >= 1 or None")
        super().__init__(limit)
        self.tz = tz
        self._now = now
        self._day: date | None = None
        self._counts: dict[Hashable, int] = {}
        self.total = 0  #: units counted since start, all days

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

    def try_acquire(self, key: Hashable = "", cost: int = 1) -> LimitDecision:
        """Accept and count ``cost`` units for ``key`` unless today's budget would be exceeded."""
        limit = self.limit
        with self._lock:
            self._roll()
            used = self._counts.get(key, 0)
            if limit is not None and used + cost > limit:
                return LimitDecision(False, max(limit - used, 0))
            self._counts[key] = used + cost
            self.total += cost
            return LimitDecision(True, None if limit is None else limit - used - cost)

    def remaining(self, key: Hashable = "") -> int | None:
        """Units left today for ``key`` (``None`` when unlimited)."""
        limit = self.limit
        return None if limit is None else limit - self.used(key)

    def used(self, key: Hashable = "") -> int:
        with self._lock:
            self._roll()
            return self._counts.get(key, 0)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class LeakyBucket:
    """``size`` points refilled at ``rate`` per second of real time; a request takes its cost."""

    def __init__(self, size: float, rate: float) -> None:
        self.size, self.rate = size, rate
        self._available, self._at = size, time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._at) * self.rate)
        self._at = now

    def take(self, cost: float) -> bool:
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + points)

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def reset(self) -> None:
        with self._lock:
            self._available, self._at = self.size, time.monotonic()


Window = tuple[str, SlidingWindowLimiter]  #: a window and the policy its refusals are named by


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header: whole seconds, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Quota:
    """An account's burst window (``limit`` calls per ``window_s`` per key, its refusals named
    ``policy``) under its daily budget (``daily_limit`` per key per day in ``tz``), in ``sim``."""

    def __init__(self, sim: Any, policy: str, limit: Limit, window_s: float, daily_limit: Limit, tz: tzinfo) -> None:
        self.sim = sim
        self.burst, self.daily = SlidingWindowLimiter(limit, window_s), DailyCounter(daily_limit, sim.clock.now, tz=tz)
        self.window: Window = (policy, self.burst)
        self.limiters = (self.burst, self.daily)

    def take(self, key: Hashable, daily_key: Hashable = "", *, cost: int = 1, weight: int = 1, daily: bool = True,
             window: Window | None = None, before: tuple[Window, ...] = ()) -> tuple[str | None, LimitDecision]:
        """Admit one call of ``key`` costing ``cost`` against the day of ``daily_key`` (unless not ``daily``)
        and ``weight`` in ``window`` (the burst window by default). ``before``: windows that must have
        room for one more call first, charged once the call is admitted. Returns the refusing policy
        (``None`` when admitted) and the decision its headers describe (for ``DAILY``: the burst
        window's remaining, retry at midnight)."""
        limit = self.daily.limit
        if daily and limit is not None and self.daily.used(daily_key) + cost > limit:
            refusal = LimitDecision(False, self.burst.remaining(key), self.daily.seconds_until_reset(), self.burst.window_s)
            return self._refused("DAILY"), refusal
        for policy, earlier in before:
            if earlier.remaining(key) < 1:
                return self._refused(policy), earlier.try_acquire(key)
        policy, limiter = window or self.window
        decision = limiter.try_acquire(key, weight)
        if not decision.allowed:
            return self._refused(policy), decision
        if daily:
            self.daily.try_acquire(daily_key, cost)
        for _, earlier in before:
            earlier.try_acquire(key)
        return None, decision

    def headers(self, names: Sequence[str], remaining: int | None, third: int, daily_key: Hashable = "", *, daily: bool = True) -> dict[str, str]:
        """The usage headers ``names`` declares: the burst window's limit, ``remaining`` and ``third`` value (its length, or
        the time until it empties), then, with ``daily`` and a daily limit, the day's limit and what is left of it."""
        values = [self.burst.limit, max(0, remaining or 0), third]
        limit = self.daily.limit
        if daily and limit is not None:
            values += [limit, max(0, limit - self.daily.used(daily_key))]
        return dict(zip(names, map(str, values)))

    def _refused(self, policy: str) -> str:
        self.sim.stats_recorder.record_rate_limited(policy)
        return policy
