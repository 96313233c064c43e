"""The client's share of the org's daily allocation, driven by Sforce-Limit-Info readings."""

from __future__ import annotations

import pytest

from crm_pipelines.core.errors import ConfigurationError, QuotaExhausted
from crm_pipelines.providers.salesforce.api import DailyAllocationGuard, parse_limit_info


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def guard(t: FakeTime, **kw) -> DailyAllocationGuard:
    return DailyAllocationGuard(clock=t.clock, sleep=t.sleep, **({"max_share": 0.9, "slowdown_from": 0.8, "max_slowdown_s": 2.0} | kw))


def test_parse_limit_info():
    assert parse_limit_info("api-usage=18/15000") == (18, 15000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)") == (25, 5000)
    assert parse_limit_info("per-app-api-usage=17/250(appName=x)") is None
    assert parse_limit_info("api-usage=x/y") is None and parse_limit_info(None) is None


def test_free_below_the_slowdown_then_paced_then_stopped_at_the_share():
    t = FakeTime()
    g = guard(t)
    assert g.acquire() == 0.0  # nothing known yet
    g.observe(used=700, allowed=1000)
    assert g.acquire() == 0.0
    g.observe(used=850, allowed=1000)
    assert g.acquire() == pytest.approx(1.0)  # halfway between 80% and 90%: half the longest pause
    g.observe(used=899, allowed=1000)
    assert g.acquire() == pytest.approx(2.0 * 99 / 100)
    with pytest.raises(QuotaExhausted) as info:
        g.acquire()  # 900 + 1 would pass the share
    assert "900 of its 1,000" in str(info.value) and "90% (900)" in str(info.value)


def test_a_stale_or_forgotten_reading_lets_one_call_probe_again():
    t = FakeTime()
    g = guard(t, stale_after_s=60)
    g.observe(used=950, allowed=1000)
    with pytest.raises(QuotaExhausted):
        g.acquire()
    t.now += 61
    assert g.acquire() == 0.0  # the rolling window may have freed calls: read again
    g.observe(used=500, allowed=1000)
    assert g.acquire() == 0.0
    g.observe(used=950, allowed=1000)
    g.forget()
    assert g.acquire() == 0.0


def test_bad_share_settings_are_clear_errors():
    with pytest.raises(ConfigurationError, match="max_share_of_daily_allocation"):
        DailyAllocationGuard(max_share=1.5)
    with pytest.raises(ConfigurationError, match="slow_down_from_share"):
        DailyAllocationGuard(max_share=0.5, slowdown_from=0.8)
