"""Fixtures for the Shopify tests: simulators on ephemeral ports and clients bound to them."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from crm_pipelines.providers.shopify.api import ShopifyClient
from crm_pipelines.providers.shopify.simulator import ShopifySimConfig, ShopifySimulator

TOKEN = "shpat_test_token"
REFERENCE_TIME = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
#: Cost limits so generous that tests never wait (the pacing tests set their own).
FAST = {"bucket_size": 1_000_000.0, "restore_rate": 1_000_000.0}


@pytest.fixture
def start_shopify_sim():
    """Start Shopify simulators with the given config fields; all are stopped after the test."""
    started = []

    def _start(**config):
        sim = ShopifySimulator(ShopifySimConfig(**({"tokens": (TOKEN,)} | config)))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()


@pytest.fixture
def client_for():
    """``client_for(sim, **kw)``: a ShopifyClient for the simulator (closed afterwards)."""
    clients = []

    def _client(sim, **kw):
        limits = FAST if kw.pop("fast", True) else {}
        client = ShopifyClient(access_token=kw.pop("token", TOKEN), base_url=sim.base_url, **(limits | kw))
        clients.append(client)
        return client

    yield _client
    for client in clients:
        client.close()


@pytest.fixture
def gql():
    """``gql(sim, query, variables=None, token=TOKEN, version="2026-10")`` -> raw httpx response."""
    clients = []

    def _post(sim, query, variables=None, *, token=TOKEN, version="2026-10", body=None):
        client = httpx.Client(base_url=sim.base_url, timeout=10)
        clients.append(client)
        headers = {"X-Shopify-Access-Token": token} if token else {}
        payload = body if body is not None else {"query": query, "variables": variables or {}}
        return client.post(f"/admin/api/{version}/graphql.json", json=payload, headers=headers)

    yield _post
    for client in clients:
        client.close()
