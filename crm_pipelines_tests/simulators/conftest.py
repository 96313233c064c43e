"""Fixtures for the simulator tests: simulators started on ephemeral ports, HTTP clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from crm_pipelines.providers.hubspot.simulator import DEFAULT_TOKEN, HubSpotSimulator

REFERENCE_TIME = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def make_hubspot(start_hubspot_sim: Callable[..., HubSpotSimulator]) -> Callable[..., HubSpotSimulator]:
    """Factory: ``make_hubspot(contacts=..., burst_limit=...)`` returns a started simulator.

    Data is reproducible (fixed seed and reference time); every simulator is stopped afterwards.
    """
    defaults: dict[str, Any] = {"seed": 7, "contacts": 120, "companies": 30, "deals": 40, "reference_time": REFERENCE_TIME}
    return lambda **overrides: start_hubspot_sim(**(defaults | overrides))


@pytest.fixture
def hubspot(make_hubspot: Callable[..., HubSpotSimulator]) -> HubSpotSimulator:
    """A started simulator with default limits and small data."""
    return make_hubspot()


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    """Factory of httpx clients bound to a simulator (closed afterwards)."""
    clients: list[httpx.Client] = []

    def factory(simulator: HubSpotSimulator, token: str | None = DEFAULT_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.Client(base_url=simulator.base_url, headers=headers, timeout=10.0)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def api(hubspot: HubSpotSimulator, client_for: Callable[..., httpx.Client]) -> httpx.Client:
    """An authenticated client of the default ``hubspot`` simulator."""
    return client_for(hubspot)
