"""Fixtures for the Salesforce tests: simulators on ephemeral ports, clients and raw HTTP sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import httpx
import pytest

from crm_pipelines.providers.salesforce.api import SalesforceClient
from crm_pipelines.providers.salesforce.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SalesforceSimConfig,
    SalesforceSimulator,
)

REFERENCE_TIME = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
DATA = "/services/data/v66.0"


@pytest.fixture
def start_salesforce_sim() -> Iterator[Callable[..., SalesforceSimulator]]:
    """Start Salesforce simulators with the given config fields; all are stopped after the test."""
    started: list[SalesforceSimulator] = []

    def _start(**config) -> SalesforceSimulator:
        sim = SalesforceSimulator(SalesforceSimConfig(**config))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()


@pytest.fixture
def sf_client() -> Iterator[Callable[..., SalesforceClient]]:
    """Factory of real clients logged in to a simulator through its token endpoint."""
    clients: list[SalesforceClient] = []

    def factory(sim: SalesforceSimulator, **kw) -> SalesforceClient:
        kw.setdefault("client_id", DEFAULT_CLIENT_ID)
        kw.setdefault("client_secret", DEFAULT_CLIENT_SECRET)
        kw.setdefault("refresh_token", DEFAULT_REFRESH_TOKEN)
        client = SalesforceClient(login_url=sim.base_url, **kw)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def raw_session() -> Iterator[Callable[[SalesforceSimulator], httpx.Client]]:
    """Factory of plain httpx clients holding a fresh access token of a simulator."""
    opened: list[httpx.Client] = []

    def factory(sim: SalesforceSimulator) -> httpx.Client:
        http = httpx.Client(base_url=sim.base_url, timeout=10.0)
        token = http.post("/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": sim.config.client_id,
            "client_secret": sim.config.client_secret, "refresh_token": sim.config.refresh_tokens[0],
        }).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        opened.append(http)
        return http

    yield factory
    for http in opened:
        http.close()
