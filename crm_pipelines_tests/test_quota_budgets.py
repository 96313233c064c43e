"""Budgets shared through the database: every limiter on a key draws from one budget."""

from __future__ import annotations

import pytest

from crm_pipelines.core.ratelimit import shared_budgets, shared_limiter
from crm_pipelines.storage.quota import DatabaseWindowLimiter, QuotaBudgets


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _limiter(store, clock, key="hubspot|acct|ten-secondly", max_calls=10, period_s=10.0, priority="normal", **kw):
    return DatabaseWindowLimiter(store.engine, key, max_calls, period_s, clock=clock, sleep=clock.sleep, priority=lambda: priority, safety_margin_s=0.0, **kw)


def test_two_processes_share_one_window(store):
    clock = FakeClock()
    first, second = _limiter(store, clock), _limiter(store, clock)  # as two processes would build them
    for _ in range(5):
        assert first.acquire() == 0.0
        assert second.acquire() == 0.0
    assert first.remaining() == 0 and second.remaining() == 0
    # The eleventh send waits for the first send to leave the ten-second window.
    assert second.acquire() == pytest.approx(10.0)
    assert clock.slept == [pytest.approx(10.0)]


def test_costly_sends_take_several_units(store):
    clock = FakeClock()
    limiter = _limiter(store, clock, max_calls=20, period_s=2.0)
    limiter.acquire(cost=10)
    limiter.acquire(cost=10)
    assert limiter.remaining() == 0
    assert limiter.acquire(cost=5) == pytest.approx(2.0)


def test_backfill_yields_to_incremental_runs(store):
    clock = FakeClock()
    incremental = _limiter(store, clock, priority="high")
    backfill = _limiter(store, clock, priority="low", low_priority_share=0.2)
    incremental.acquire()
    # While the incremental run is active, the backfill only sends while the window is under 20% used.
    assert backfill.acquire() == 0.0
    assert backfill.acquire() > 0.0
    for _ in range(7):
        assert incremental.acquire() == 0.0
    # Once no high-priority send happened for a window, the backfill has the whole budget again.
    clock.now += 30
    for _ in range(10):
        assert backfill.acquire() == 0.0


def test_high_priority_is_never_held_back_by_a_backfill_share(store):
    clock = FakeClock()
    backfill = _limiter(store, clock, priority="low")
    incremental = _limiter(store, clock, priority="high")
    for _ in range(5):
        backfill.acquire()
    for _ in range(5):
        assert incremental.acquire() == 0.0


def test_429_blocks_every_process(store):
    clock = FakeClock()
    first, second = _limiter(store, clock), _limiter(store, clock)
    first.saturate(3.0)
    assert second.acquire() == pytest.approx(3.0)


def test_provider_headers_correct_the_shared_estimate(store):
    clock = FakeClock()
    limiter = _limiter(store, clock, max_calls=100)
    limiter.acquire()
    # Another application spends the same account: the provider says 40 remain, not 99.
    limiter.observe(remaining=40)
    assert limiter.remaining() == 40
    # The provider reports a bigger limit for this account (a Professional portal): adopted by all.
    limiter.observe(max_calls=190)
    assert _limiter(store, clock, max_calls=100).max_calls == 190
    # A new configured limit (the user changed the setting) replaces what was stored.
    assert _limiter(store, clock, max_calls=150).max_calls == 150


def test_shared_limiter_uses_the_database_inside_shared_budgets(store):
    budgets = QuotaBudgets(store.engine)
    with shared_budgets(budgets, "high"):
        limiter = shared_limiter(("hubspot", "http://x", "acct", "search"), 5, 1.0, name="hubspot search")
        assert isinstance(limiter, DatabaseWindowLimiter)
        assert shared_limiter(("hubspot", "http://x", "acct", "search"), 5, 1.0) is limiter
        limiter.acquire()
    outside = shared_limiter(("hubspot", "http://x", "acct", "search"), 5, 1.0)
    assert not isinstance(outside, DatabaseWindowLimiter)
    [row] = budgets.snapshot()
    assert row["key"] == "hubspot|http://x|acct|search" and row["used_now"] == 1 and row["high_priority_active"]


def test_unknown_priority_is_refused():
    with pytest.raises(ValueError, match="unknown priority"):
        with shared_budgets(None, "urgent"):
            pass
