"""Many stores on one database: each integration synced side by side, nothing of one store touching another's."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, text

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.providers.bling.api import BlingAuth
from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, BlingSimConfig, BlingSimulator
from crm_pipelines.storage.schema import contacts, external_links, integrations
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now
from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.parsing import parse_hubspot

UTC = timezone.utc
ENTITIES = ("contacts", "companies", "deals")


@pytest.fixture
def three_accounts(start_hubspot_sim, monkeypatch):
    """Two HubSpot accounts holding the same records (same e-mails, same CPFs) and one Bling account."""
    now = datetime.now(UTC)
    history = {"reference_time": now - timedelta(hours=2), "clock_start": now}  # seeded changes end before the test's own
    a = start_hubspot_sim(seed=31, contacts=240, companies=30, deals=40, tokens=("token-loja-a",), webhook_portal_id=1001, **history)
    b = start_hubspot_sim(seed=31, contacts=240, companies=30, deals=40, tokens=("token-loja-b",), webhook_portal_id=2002, **history)
    bling = BlingSimulator(BlingSimConfig(seed=5, contacts=25, companies=6, deals=8, per_second=100_000, daily_limit=None, reference_time=now, clock_start=now))
    bling.start()
    BlingAuth._REGISTRY.clear()
    monkeypatch.setenv("HUBSPOT_BASE_URL", a.base_url)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "token-loja-a")
    monkeypatch.setenv("TOKEN_LOJA_B", "token-loja-b")
    monkeypatch.setenv("BLING_SECRET_C", DEFAULT_CLIENT_SECRET)
    yield a, b, bling
    bling.stop()
    BlingAuth._REGISTRY.clear()


def register(store: LocalStore, b, bling):
    registry = store.integrations
    registry.add_store("loja_b", "Loja B")
    registry.add_store("loja_c", "Loja C")
    hub_b = registry.add("hubspot", store="loja_b", account_id="2002",
                         connection={"access_token": {"env": "TOKEN_LOJA_B"}, "base_url": b.base_url})
    bling_c = registry.add("bling", store="loja_c", account_id="sim-company-1", connection={
        "client_id": DEFAULT_CLIENT_ID, "client_secret": {"env": "BLING_SECRET_C"}, "refresh_token": DEFAULT_REFRESH_TOKEN,
        "base_url": bling.base_url + "/Api/v3", "per_second": 3})
    registry.update(registry.default_for("hubspot"), account_id="1001")
    return registry.default_for("hubspot"), hub_b, bling_c


def cross_store_links(store: LocalStore) -> int:
    """Links whose local record belongs to another store than the integration's."""
    total = 0
    with store.engine.connect() as conn:
        for entity in ENTITIES:
            table = store_table(entity)
            total += conn.execute(
                select(func.count()).select_from(external_links.join(integrations, integrations.c.id == external_links.c.integration_id)
                                                  .join(table, table.c.id == external_links.c.local_id))
                .where(external_links.c.entity == entity, table.c.store_id != integrations.c.store_id)
            ).scalar_one()
    return total


def store_table(entity):
    from crm_pipelines.storage.schema import ENTITY_TABLES

    return ENTITY_TABLES[entity]


def test_stores_synced_concurrently_never_mix(three_accounts, db_url, monkeypatch):
    a, b, bling = three_accounts
    monkeypatch.setenv("CRM_SECRET_KEY", "Xr5mXGCrzkyTFyj4ozF16qK0-9_hJRTDwLrwFMpQ5nY=")
    store = LocalStore.open(db_url)
    hub_a, hub_b, bling_c = register(store, b, bling)
    # Store C already holds a customer with the e-mail of one of store A's HubSpot contacts.
    shared_email = next(o["properties"]["email"] for o in a.records("contacts").values() if o["properties"].get("email"))
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts).values(store_id=bling_c.store_id, email=shared_email, first_name="Cliente da loja C", created_at=now, updated_at=now))

    errors = []

    def sync(target):
        try:
            for entity in ENTITIES:
                import_now(target, entity, store)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{target}: {exc}")

    threads = [threading.Thread(target=sync, args=(t,)) for t in (hub_a, hub_b, bling_c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    for integration, sim in ((hub_a, a), (hub_b, b), (bling_c, bling)):
        for entity in ENTITIES:
            assert set(store.linked_records(integration, entity)) == set(sim.records(entity)), (integration.label, entity)
    # Same records at both HubSpot accounts: two copies, one per store.
    assert store.count("contacts", store_id=hub_a.store_id) == 240
    assert store.count("contacts", store_id=hub_b.store_id) == 240
    assert cross_store_links(store) == 0
    # Store C's customer with store A's e-mail was not touched by store A's import.
    with store.engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.store_id == bling_c.store_id, contacts.c.email == shared_email)).first()
    assert row is not None and row.first_name == "Cliente da loja C"

    # An incremental run of one store reads its own changes from its own synced-through point.
    changed = b.modify("contacts", n=7)
    figures = import_now(hub_b, "contacts", store)
    assert figures.fetched == len(changed) and figures.window.lower is not None
    assert import_now(hub_a, "contacts", store).fetched == 0

    # A local change in store B goes to store B's account only.
    local_b = store.linked_records(hub_b, "contacts")
    target = sorted(local_b, key=int)[0]
    with store.engine.begin() as conn:
        conn.execute(contacts.update().where(contacts.c.id == local_b[target]["id"]).values(job_title="Gerente da loja B", updated_at=datetime.now(UTC)))
    assert export_now(hub_b, "contacts", store).updated == 1
    assert export_now(hub_a, "contacts", store).selected == 0
    assert b.records("contacts")[target]["properties"].get("jobtitle") == "Gerente da loja B"
    assert a.records("contacts")[target]["properties"].get("jobtitle") != "Gerente da loja B"
    store.dispose()


def test_webhooks_go_to_the_account_they_name_and_never_to_another(three_accounts, sqlite_url):
    a, b, bling = three_accounts
    store = LocalStore.open(sqlite_url)
    hub_a, hub_b, _ = register(store, b, bling)
    inbox = WebhookInbox(store.engine)

    def deliver(portal, event_id):
        body = json.dumps([{"eventId": event_id, "subscriptionType": "contact.creation", "objectId": 5, "portalId": portal}]).encode()
        inbox.store("hubspot", parse_hubspot(body, {}), body)

    deliver(1001, 1)
    deliver(2002, 1)  # the same event id at another account is another event
    deliver(3003, 2)  # an account no integration knows
    rows = {(r["account_id"], r["event_id"]): r["integration_id"] for r in inbox.read_after("hubspot", 0, 10)}
    assert rows == {("1001", "1"): hub_a.id, ("2002", "1"): hub_b.id, ("3003", "2"): None}
    store.dispose()


def test_secrets_are_encrypted_or_referenced_never_plain(start_hubspot_sim, sqlite_url, postgres_url, monkeypatch):
    sim = start_hubspot_sim(seed=2, contacts=12, companies=0, deals=0, tokens=("plain-token-that-must-not-be-stored",))
    monkeypatch.delenv("CRM_SECRET_KEY", raising=False)
    store = LocalStore.open(sqlite_url)
    store.integrations.add_store("loja_x")
    added = store.integrations.add("hubspot", store="loja_x", connection={"access_token": "plain-token-that-must-not-be-stored", "base_url": sim.base_url})
    with store.engine.connect() as conn:
        dumped = " ".join(str(v) for row in conn.execute(text("SELECT * FROM integrations")) for v in row)
    assert "plain-token-that-must-not-be-stored" not in dumped and "enc" in dumped
    assert import_now(added, "contacts", store).outcome.created == 12  # decrypted when used
    store.dispose()

    # A server database needs the key from the environment; without it a plain secret is refused, a reference is fine.
    server = LocalStore.open(postgres_url)
    server.integrations.add_store("loja_x")
    with pytest.raises(ConfigurationError, match="CRM_SECRET_KEY"):
        server.integrations.add("hubspot", store="loja_x", connection={"access_token": "plain-token-that-must-not-be-stored"})
    server.integrations.add("hubspot", store="loja_x", connection={"access_token": {"env": "SOME_TOKEN"}})
    server.dispose()


def test_settings_stay_within_the_published_limits(sqlite_url):
    store = LocalStore.open(sqlite_url)
    store.integrations.add_store("loja_y")
    with pytest.raises(ConfigurationError, match="published limit"):
        store.integrations.add("hubspot", store="loja_y", connection={"access_token": {"env": "T"}, "burst_limit": 500})
    with pytest.raises(ConfigurationError, match="no setting"):
        store.integrations.add("hubspot", store="loja_y", connection={"access_token": {"env": "T"}, "bogus": 1})
    with pytest.raises(ConfigurationError, match="cadence_minutes"):
        store.integrations.add("hubspot", store="loja_y", connection={"access_token": {"env": "T"}}, settings={"cadence_minutes": 0})
    added = store.integrations.add("hubspot", store="loja_y", connection={"access_token": {"env": "T"}, "burst_limit": 150},
                                   settings={"cadence_minutes": 60, "conflict_strategies": {"contacts": "manual"}})
    assert added.settings.cadence_minutes == 60 and added.conflict_strategy("contacts") == "manual" and added.conflict_strategy("deals") is None
    store.dispose()


def test_matching_and_dedupe_stay_inside_one_store(sqlite_url):
    from crm_pipelines.core.model import RemoteRecord
    from crm_pipelines.storage.dedupe import Deduplicator

    store = LocalStore.open(sqlite_url)
    store.integrations.add_store("loja_z")
    other = store.integrations.add("hubspot", store="loja_z", connection={"access_token": {"env": "T"}})
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"store_id": 1, "email": "ana@exemplo.com.br", "document": "52998224725", "created_at": now, "updated_at": now},
                                        {"store_id": other.store_id, "email": "ana@exemplo.com.br", "document": "52998224725", "created_at": now, "updated_at": now}])
    # The same person in both stores: two records, not a duplicate.
    assert Deduplicator(store.engine).find("contacts") == []
    outcome = store.apply_remote(other, "contacts", [RemoteRecord("77", now, {"email": "ana@exemplo.com.br", "document": "52998224725"})])
    assert outcome.linked == 1  # linked to its own store's record
    assert store.linked_records(other, "contacts")["77"]["store_id"] == other.store_id
    store.dispose()
