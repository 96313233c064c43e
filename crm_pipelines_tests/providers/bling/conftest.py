"""Fixtures for the Bling tests: simulators on ephemeral ports and clients bound to them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crm_pipelines.providers.bling.api import BlingAuth, BlingClient
from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, BlingSimConfig, BlingSimulator

FAST = 100_000  # per-second limit for tests that are not about limits


@pytest.fixture(autouse=True)
def fresh_token_registry():
    """Each test starts with the configured refresh token (the registry outlives simulators)."""
    BlingAuth._REGISTRY.clear()
    yield
    BlingAuth._REGISTRY.clear()


@pytest.fixture
def start_bling_sim():
    """Start Bling simulators with the given config fields; the clock runs at real time, the
    seeded history ends an hour ago. All are stopped after the test."""
    started = []

    def _start(**config):
        now = datetime.now(timezone.utc)
        defaults = {"seed": 3, "per_second": FAST, "daily_limit": None, "reference_time": now - timedelta(hours=1), "clock_start": now}
        sim = BlingSimulator(BlingSimConfig(**(defaults | config)))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()


@pytest.fixture
def client_for():
    clients = []

    def _client(sim, **kw):
        options = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN,
                   "base_url": sim.base_url + "/Api/v3", "per_second": FAST, "max_attempts": 4} | kw
        client = BlingClient(**options)
        clients.append(client)
        return client

    yield _client
    for client in clients:
        client.close()
