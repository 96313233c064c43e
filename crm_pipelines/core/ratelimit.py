"""Client-side rate limiting.

Providers publish their limits as "N requests per W seconds" measured over a sliding window
(HubSpot's ten-second window, its search limit of 5 per second, Bling's 3 per second...). A
classic token bucket is not safe for such limits: a full bucket of N plus the tokens refilled
during the next W seconds lets almost 2N requests into one window. :class:`SlidingWindowLimiter`
therefore remembers the send time of the last N requests and lets a new one go only when fewer
than N were sent in the last W seconds (plus a small safety margin for network jitter).

The provider's own rate-limit headers correct the local estimate (another process may be
spending the same budget), and a 429 saturates the window so the client waits it out.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class SlidingWindowLimiter:
    """At most ``max_calls`` sends in any ``period_s`` window, shared by the threads of a process."""

    def __init__(
        self,
        max_calls: int,
        period_s: float,
        *,
        safety_margin_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "limit",
    ) -> None:
        if max_calls < 1 or period_s <= 0:
            raise ValueError(f"{name}: a rate limit needs max_calls >= 1 and period_s > 0")
        self.name = name
        self.max_calls = max_calls
        self.period_s = period_s
        self.safety_margin_s = safety_margin_s
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def _purge(self, now: float) -> None:
        horizon = now - self.period_s - self.safety_margin_s
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def _delay(self, now: float, cost: int) -> float:
        self._purge(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if len(self._sent) + cost <= self.max_calls:
            return 0.0
        # The oldest send that must leave the window before enough slots free up.
        oldest = self._sent[max(len(self._sent) + cost - self.max_calls - 1, 0)]
        return max(oldest + self.period_s + self.safety_margin_s - now, 0.001)

    def acquire(self, cost: int = 1) -> float:
        """Block until a request of ``cost`` units may be sent, record it, and return the seconds waited."""
        cost = max(1, min(int(cost), self.max_calls))
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now, cost)
                if delay <= 0:
                    self._sent.extend([now] * cost)
                    self.waited_s += waited
                    return waited
            self._sleep(delay)
            waited += delay

    def remaining(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return max(self.max_calls - len(self._sent), 0)

    def observe(
        self,
        *,
        remaining: int | None = None,
        max_calls: int | None = None,
        period_s: float | None = None,
    ) -> None:
        """Correct the local estimate from the provider's rate-limit headers.

        ``max_calls``/``period_s`` adopt the limit the provider reports for this account (a
        Professional HubSpot portal allows 190, not 100). ``remaining`` lower than the local
        estimate means someone else spends the same budget: the difference is recorded as sends
        made now, so this process slows down accordingly.
        """
        with self._lock:
            if max_calls and max_calls > 0:
                self.max_calls = max_calls
            if period_s and period_s > 0:
                self.period_s = period_s
            if remaining is None:
                return
            now = self._clock()
            self._purge(now)
            local_remaining = self.max_calls - len(self._sent)
            for _ in range(max(local_remaining - max(remaining, 0), 0)):
                self._sent.append(now)

    def saturate(self, seconds: float | None = None) -> float:
        """After a 429: send nothing until the window has room again; returns the wait."""
        with self._lock:
            now = self._clock()
            self._blocked_until = max(self._blocked_until, now + (seconds if seconds is not None else self.period_s))
            return self._blocked_until - now


#: Who goes first when runs share an account's budget: webhook-triggered and scheduled
#: incremental runs (high) before manual runs (normal) before backfills (low).
PRIORITIES: tuple[str, ...] = ("high", "normal", "low")

_SHARED: dict[tuple, SlidingWindowLimiter] = {}
_SHARED_LOCK = threading.Lock()
# Context variables, not globals: a block of shared budgets belongs to the run (thread) that
# opened it; threads it starts take it along with ``in_context`` (a plain new thread starts
# outside any block).
_BACKEND: contextvars.ContextVar[Callable[..., Any] | None] = contextvars.ContextVar("crm_budget_backend", default=None)
_PRIORITY: contextvars.ContextVar[str] = contextvars.ContextVar("crm_budget_priority", default="normal")


def current_priority() -> str:
    return _PRIORITY.get()


def in_context(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` bound to the caller's budgets and priority, to run in another thread."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(function, *args, **kwargs)


@contextmanager
def shared_budgets(backend: Callable[..., Any] | None, priority: str = "normal") -> Iterator[None]:
    """Within this block, :func:`shared_limiter` takes its limiters from ``backend``.

    ``backend(key, max_calls, period_s, **kwargs)`` returns a limiter kept outside the process
    (:class:`crm_pipelines.storage.quota.QuotaBudgets` keeps them in the project's database),
    so every process calling the same account shares one budget; ``priority`` is this
    process's place in the queue for it (one Dagster step runs per process).
    """
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}; expected one of {', '.join(PRIORITIES)}")
    backend_token, priority_token = _BACKEND.set(backend), _PRIORITY.set(priority)
    try:
        yield
    finally:
        _BACKEND.reset(backend_token)
        _PRIORITY.reset(priority_token)


def shared_limiter(key: tuple, max_calls: int, period_s: float, **kwargs) -> Any:
    """One limiter per key (provider, account, limit name).

    Inside :func:`shared_budgets` the limiter is the deployment-wide one from its backend;
    otherwise every client of the same account in this process (threads, steps run in-process,
    several resources) draws from one in-process budget.
    """
    backend = _BACKEND.get()
    if backend is not None:
        return backend(key, max_calls, period_s, **kwargs)
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None or limiter.period_s != period_s:
            limiter = _SHARED[key] = SlidingWindowLimiter(max_calls, period_s, **kwargs)
        return limiter
