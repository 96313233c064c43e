"""Fixtures for the Pipedrive tests: simulators on ephemeral ports, clients bound to them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from crm_pipelines.providers.pipedrive.api import PipedriveClient
from crm_pipelines.providers.pipedrive.simulator import PipedriveSimConfig, PipedriveSimulator

TOKEN = "pipedrive-test-token"
UTC = timezone.utc
REFERENCE_TIME = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def start_pipedrive_sim():
    """Start Pipedrive simulators with the given config fields; all are stopped after the test."""
    started = []

    def _start(**config):
        sim = PipedriveSimulator(PipedriveSimConfig(**({"tokens": (TOKEN,)} | config)))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()


@pytest.fixture
def sqlite_store(sqlite_url):
    """A SQLite-only store, for tests whose subject is the API side rather than the database."""
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open(sqlite_url)
    yield store
    store.dispose()


@pytest.fixture
def http():
    """Factory of raw httpx clients bound to a simulator (closed afterwards)."""
    clients = []

    def factory(sim, token: str | None = TOKEN) -> httpx.Client:
        client = httpx.Client(base_url=sim.base_url, headers={"x-api-token": token} if token else {}, timeout=10.0)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def client_for(sim, **kw) -> PipedriveClient:
    return PipedriveClient(api_token=kw.pop("token", TOKEN), base_url=sim.base_url, **kw)


def now_utc() -> datetime:
    return datetime.now(UTC)


def ago(**kw) -> datetime:
    return now_utc() - timedelta(**kw)
