"""The webhook applier: events applied as they arrive, nothing acknowledged lost when the
provider fails, each application reported to Dagster as a runless observation."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.app import WebhookSecrets, create_app
from crm_pipelines.webhooks.applier import WebhookApplier
from crm_pipelines.webhooks.inbox import WebhookInbox

SECRET = "applier-client-secret"
TOKEN = "applier-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(sqlite_url):
    """Run the receiver app (optionally with an applier) on a port; stopped after the test."""
    servers = []

    def _serve(store: LocalStore, applier: WebhookApplier | None = None) -> str:
        port = _free_port()
        app = create_app(store.engine, WebhookSecrets(hubspot_client_secret=SECRET), applier=applier)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}/webhooks/hubspot"

    yield _serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _wait(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _unprocessed(store: LocalStore) -> int:
    return len(WebhookInbox(store.engine).read_unprocessed("hubspot", 10_000))


def test_changes_are_applied_as_they_arrive(serve, start_hubspot_sim, sqlite_url, monkeypatch):
    store = LocalStore.open(sqlite_url)
    observed: list = []
    applier = WebhookApplier(store, observe=observed.append)
    url = serve(store, applier)
    sim = start_hubspot_sim(seed=21, contacts=10, companies=0, deals=0, tokens=(TOKEN,), webhook_url=url, webhook_client_secret=SECRET)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_BASE_URL", sim.base_url)
    created = sim.create("contacts", 5)
    _wait(lambda: set(created) <= set(store.linked_records("hubspot", "contacts")))
    _wait(lambda: _unprocessed(store) == 0)
    _wait(lambda: observed)  # the applier reports its observation after marking the events processed
    assert observed and observed[0].asset_key.path == ["hubspot", "contacts"] and observed[0].partition == "default"
    store.dispose()


def test_nothing_acknowledged_is_lost_when_the_provider_fails(serve, start_hubspot_sim, sqlite_url, monkeypatch):
    store = LocalStore.open(sqlite_url)
    url = serve(store)  # the receiver alone: the test drives the applier
    sim = start_hubspot_sim(seed=22, contacts=10, companies=0, deals=0, tokens=(TOKEN,), webhook_url=url, webhook_client_secret=SECRET)
    created = sim.create("contacts", 3)
    _wait(lambda: _unprocessed(store) >= 3)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "expired-token")
    monkeypatch.setenv("HUBSPOT_BASE_URL", sim.base_url)
    applier = WebhookApplier(store, retry_after_s=0.0)
    failed = applier.drain_once()
    assert failed.events == 0 and "401" in next(iter(failed.failures.values()))
    assert _unprocessed(store) >= 3 and not set(created) & set(store.linked_records("hubspot", "contacts"))
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    done = applier.drain_once()
    assert done.events >= 3 and not done.failures and _unprocessed(store) == 0
    assert set(created) <= set(store.linked_records("hubspot", "contacts"))
    store.dispose()
