"""Pacing GraphQL requests by Shopify's cost bucket.

Shopify meters the Admin GraphQL API in cost points: a bucket of ``maximumAvailable`` points
refilled at ``restoreRate`` points per second; a request needs its *requested* cost available,
and is charged its *actual* cost. Every answer reports the bucket in
``extensions.cost.throttleStatus``. :class:`CostBucket` keeps a local estimate of the bucket,
corrected by every answer, and makes a request wait ``(cost - available) / restoreRate`` seconds
when its cost is not available yet, so the client spends the bucket down to the restore rate
instead of colliding with ``THROTTLED`` and retrying blindly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CostBucket:
    """Local model of one shop's cost bucket, shared by the threads of a process."""

    def __init__(
        self,
        maximum: float,
        restore_rate: float,
        *,
        margin_points: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if maximum <= 0 or restore_rate <= 0:
            raise ValueError("a cost bucket needs maximum > 0 and restore_rate > 0")
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self.margin_points = margin_points
        self._clock = clock
        self._sleep = sleep
        self._available = float(maximum)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` points are available (0 when they are)."""
        with self._lock:
            self._refill(self._clock())
            need = min(cost, self.maximum) + self.margin_points - self._available
            return max(need, 0.0) / self.restore_rate if cost > 0 else 0.0

    def acquire(self, cost: float) -> float:
        """Block until ``cost`` points are available, reserve them, return the seconds waited."""
        waited = 0.0
        while True:
            delay = self.wait_for(cost)
            if delay <= 0:
                with self._lock:
                    self._available -= cost
                return waited
            self._sleep(delay)
            waited += delay

    def observe(self, *, maximum: float | None, available: float | None, restore_rate: float | None) -> None:
        """Adopt the bucket state an answer reported (the provider's figures win over the estimate)."""
        with self._lock:
            if maximum and maximum > 0:
                self.maximum = float(maximum)
            if restore_rate and restore_rate > 0:
                self.restore_rate = float(restore_rate)
            if available is not None:
                self._available = min(float(available), self.maximum)
                self._at = self._clock()

    def available(self) -> float:
        with self._lock:
            self._refill(self._clock())
            return self._available


_SHARED: dict[tuple, CostBucket] = {}
_SHARED_LOCK = threading.Lock()


def shared_bucket(key: tuple, maximum: float, restore_rate: float) -> CostBucket:
    """One bucket per (provider, shop, app) in the process, like ``shared_limiter``."""
    with _SHARED_LOCK:
        bucket = _SHARED.get(key)
        if bucket is None:
            bucket = _SHARED[key] = CostBucket(maximum, restore_rate)
        return bucket
