"""API budgets shared by every process of a deployment, kept in the project's database.

In production the 30-minute schedule, webhook-triggered runs, an outage backfill and an export
call the same provider account at once, each in its own process. Each with its own limiter would
together exceed the provider's limit. Here each limit of each account (HubSpot's ten-second
window, its search limit, Bling's 3 per second, ...) is one row of ``quota_budgets``: a process
takes a send from it inside a short transaction that locks the row (an ``UPDATE`` first, so
PostgreSQL locks the row and SQLite takes its write lock), so the sends of all processes together
respect the limit, on SQLite and on PostgreSQL alike.

Priorities: a high-priority send (webhook or scheduled incremental run) marks the budget as
wanted for one window; while it is, low-priority sends (backfills) may only use
``low_priority_share`` of the window, so the incremental runs go ahead of a long backfill
without starving it when nothing else is running.

The provider's own headers still correct the estimate (:meth:`DatabaseWindowLimiter.observe`),
and a 429 blocks the budget for every process (:meth:`DatabaseWindowLimiter.saturate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_pipelines.core.jsonutil import dumps, loads
from crm_pipelines.core.ratelimit import current_priority
from crm_pipelines.storage.schema import quota_budgets as budgets

DEFAULT_LOW_PRIORITY_SHARE = 0.2


def budget_key(key: tuple) -> str:
    """A readable row key from a limiter key such as ``("hubspot", url, account, "search")``."""
    return "|".join(str(part) for part in key)[:255]


class DatabaseWindowLimiter:
    """At most ``max_calls`` units in any ``period_s`` window, across every process using the row.

    The same interface as :class:`crm_pipelines.core.ratelimit.SlidingWindowLimiter`, so the
    HTTP client cannot tell them apart.
    """

    def __init__(
        self,
        engine: Engine,
        key: str,
        max_calls: int,
        period_s: float,
        *,
        name: str = "limit",
        safety_margin_s: float | None = None,
        low_priority_share: float = DEFAULT_LOW_PRIORITY_SHARE,
        priority: Callable[[], str] = current_priority,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or period_s <= 0:
            raise ValueError(f"{name}: a rate limit needs max_calls >= 1 and period_s > 0")
        self.engine = engine
        self.key = key
        self.name = name
        # A send is recorded when its slot is taken; it reaches the provider a little later (the
        # commit, then the request), more so on a busy machine. The margin covers that delay:
        # by default 2% of the window (0.2 s of HubSpot's ten seconds), at least 50 ms.
        self.safety_margin_s = max(0.05, 0.02 * period_s) if safety_margin_s is None else safety_margin_s
        self.low_priority_share = low_priority_share
        self._priority = priority
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.max_calls = max_calls
        self.period_s = period_s
        self._ensure_row(max_calls, period_s)

    # ------------------------------------------------------------------ storage

    def _ensure_row(self, max_calls: int, period_s: float) -> None:
        """Create the row if missing; a changed configured limit replaces the stored one."""
        configured = [max_calls, period_s]
        values = {"budget_key": self.key, "max_calls": max_calls, "period_s": period_s, "version": 0, "updated_at": self._clock(),
                  "state": dumps({"sends": [], "blocked_until": 0.0, "high_until": 0.0, "configured": configured}).decode()}
        dialect = self.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        with self.engine.begin() as conn:
            conn.execute(insert(budgets).values(**values).on_conflict_do_nothing(index_elements=["budget_key"]))
        self._transact(lambda state, limit, now: (None, state, tuple(configured)) if state.get("configured") != configured else (None, state, None),
                       configured=configured)

    def _transact(self, step: Callable[[dict, tuple[int, float], float], tuple[Any, dict, tuple[int, float] | None]], *, configured: list | None = None) -> Any:
        """Run ``step(state, (max_calls, period_s), now)`` on the locked row and store what it returns."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(budgets).where(budgets.c.budget_key == self.key).values(version=budgets.c.version + 1))
            row = conn.execute(select(budgets.c.max_calls, budgets.c.period_s, budgets.c.state).where(budgets.c.budget_key == self.key)).one()
            state = loads(row.state)
            now = self._clock()
            result, state, limit = step(state, (row.max_calls, row.period_s), now)
            if configured is not None:
                state["configured"] = configured
            max_calls, period_s = limit or (row.max_calls, row.period_s)
            conn.execute(
                update(budgets)
                .where(budgets.c.budget_key == self.key)
                .values(max_calls=max_calls, period_s=period_s, state=dumps(state).decode(), updated_at=now)
            )
            self.max_calls, self.period_s = max_calls, period_s
        return result

    def _purge(self, state: dict, period_s: float, now: float) -> list:
        horizon = now - period_s - self.safety_margin_s
        sends = [s for s in state.get("sends", []) if s[0] > horizon]
        state["sends"] = sends
        return sends

    # ------------------------------------------------------------------ limiter interface

    def acquire(self, cost: int = 1) -> float:
        """Block until ``cost`` units may be sent, record them, and return the seconds waited."""
        waited = 0.0
        priority = self._priority()

        def step(state: dict, limit: tuple[int, float], now: float):
            max_calls, period_s = limit
            units = max(1, min(int(cost), max_calls))
            sends = self._purge(state, period_s, now)
            capacity = max_calls
            if priority == "high":
                state["high_until"] = max(state.get("high_until", 0.0), now + period_s)
            elif priority == "low" and state.get("high_until", 0.0) > now:
                capacity = max(1, int(max_calls * self.low_priority_share))
            if now < state.get("blocked_until", 0.0):
                return state["blocked_until"] - now, state, None
            used = sum(s[1] for s in sends)
            if used + units <= capacity:
                sends.append([now, units])
                return 0.0, state, None
            # Wait until the oldest sends have left the window and freed enough units.
            needed, freed = used + units - capacity, 0
            for sent_at, sent_units in sends:
                freed += sent_units
                if freed >= needed:
                    return max(sent_at + period_s + self.safety_margin_s - now, 0.001), state, None
            return period_s, state, None

        while True:
            delay = self._transact(step)
            if delay <= 0:
                self.waited_s += waited
                return waited
            # Re-check at least once per window: a high-priority run may have finished.
            pause = min(delay, self.period_s)
            self._sleep(pause)
            waited += pause

    def remaining(self) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(select(budgets.c.max_calls, budgets.c.period_s, budgets.c.state).where(budgets.c.budget_key == self.key)).one()
        state = loads(row.state)
        used = sum(s[1] for s in self._purge(state, row.period_s, self._clock()))
        return max(row.max_calls - used, 0)

    def observe(self, *, remaining: int | None = None, max_calls: int | None = None, period_s: float | None = None) -> None:
        """Correct the shared estimate from the provider's rate-limit headers.

        Nothing is written when the headers agree with the stored budget (the usual case), so
        reading headers on every response costs one indexed read.
        """
        if remaining is None and not max_calls and not period_s:
            return
        if (not max_calls or max_calls == self.max_calls) and (not period_s or period_s == self.period_s):
            if remaining is None or remaining >= self.remaining():
                return

        def step(state: dict, limit: tuple[int, float], now: float):
            new_max = max_calls if max_calls and max_calls > 0 else limit[0]
            new_period = period_s if period_s and period_s > 0 else limit[1]
            if remaining is not None:
                sends = self._purge(state, new_period, now)
                local_remaining = new_max - sum(s[1] for s in sends)
                missing = local_remaining - max(remaining, 0)
                if missing > 0:
                    sends.append([now, missing])  # someone else spends this budget
            return None, state, (new_max, new_period)

        self._transact(step)

    def saturate(self, seconds: float | None = None) -> float:
        """After a 429: no process sends until the window has room again; returns the wait."""

        def step(state: dict, limit: tuple[int, float], now: float):
            state["blocked_until"] = max(state.get("blocked_until", 0.0), now + (seconds if seconds is not None else limit[1]))
            return state["blocked_until"] - now, state, None

        return self._transact(step)


class QuotaBudgets:
    """Hands out database-backed limiters for one engine (one object per key per process)."""

    def __init__(self, engine: Engine, *, low_priority_share: float = DEFAULT_LOW_PRIORITY_SHARE) -> None:
        self.engine = engine
        self.low_priority_share = low_priority_share
        self._limiters: dict[str, DatabaseWindowLimiter] = {}
        self._lock = threading.Lock()

    def __call__(self, key: tuple, max_calls: int, period_s: float, *, name: str = "limit", **kwargs: Any) -> DatabaseWindowLimiter:
        row_key = budget_key(key)
        with self._lock:
            limiter = self._limiters.get(row_key)
            if limiter is None or limiter.period_s != period_s:
                limiter = self._limiters[row_key] = DatabaseWindowLimiter(
                    self.engine, row_key, max_calls, period_s, name=name, low_priority_share=self.low_priority_share, **kwargs
                )
            return limiter

    def snapshot(self) -> list[dict[str, Any]]:
        """Every budget as stored (for the CLI and tests)."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(select(budgets)).all()
        out = []
        for row in rows:
            state = loads(row.state)
            used = sum(s[1] for s in state.get("sends", []) if s[0] > now - row.period_s)
            out.append({"key": row.budget_key, "max_calls": row.max_calls, "period_s": row.period_s, "used_now": used,
                        "blocked_for_s": max(state.get("blocked_until", 0.0) - now, 0.0), "high_priority_active": state.get("high_until", 0.0) > now})
        return out


__all__ = ["DatabaseWindowLimiter", "QuotaBudgets", "budget_key"]
