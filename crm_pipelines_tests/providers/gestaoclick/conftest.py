"""Fixtures for the GestaoClick tests: simulators on ephemeral ports and clients bound to them."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from crm_pipelines.providers.gestaoclick.api import GestaoClickClient
from crm_pipelines.providers.gestaoclick.simulator import (
    GestaoClickSimConfig,
    GestaoClickSimulator,
)

ACCESS = "gc-test-access-token"
SECRET = "gc-test-secret-token"
REFERENCE_TIME = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def start_gestaoclick_sim():
    """Start GestaoClick simulators with the given config fields; all are stopped after the test."""
    started = []

    def _start(**config):
        defaults = {"seed": 7, "contacts": 60, "companies": 15, "deals": 20, "credentials": ((ACCESS, SECRET),)}
        sim = GestaoClickSimulator(GestaoClickSimConfig(**(defaults | config)))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()


@pytest.fixture
def make_empty_sim(start_gestaoclick_sim):
    """An account with no records and no rate limits (export tests add what they need)."""
    return lambda **kw: start_gestaoclick_sim(**({"contacts": 0, "companies": 0, "deals": 0, "rate_limits_enabled": False} | kw))


@pytest.fixture
def http_for():
    """Raw httpx clients carrying the test credentials (closed afterwards)."""
    clients = []

    def factory(sim, access=ACCESS, secret=SECRET):
        headers = {}
        if access is not None:
            headers["access-token"] = access
        if secret is not None:
            headers["secret-access-token"] = secret
        client = httpx.Client(base_url=sim.base_url, headers=headers, timeout=10.0)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def gc_client(sim, **kw) -> GestaoClickClient:
    """The project's client for a simulator; fast limits unless the test asks for the real ones."""
    kw.setdefault("per_second", 1000)
    return GestaoClickClient(access_token=kw.pop("access", ACCESS), secret_access_token=kw.pop("secret", SECRET), base_url=sim.base_url, **kw)
