"""Export to Shopify over real HTTP: aliased bulk creates, matching, rejects, crash recovery, B2B."""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, update

from crm_pipelines.providers.shopify import mapping as shopify_mapping
from crm_pipelines.providers.shopify.writer import ShopifyWriter
from crm_pipelines.storage.schema import companies, contacts, deals
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines_tests.providers.shopify.conftest import FAST

UTC = timezone.utc


@pytest.fixture
def make_sim(start_shopify_sim):
    return lambda **overrides: start_shopify_sim(**({"seed": 5, "customers": 0, "orders": 0, "companies": 0} | FAST | overrides))


def add_local_contacts(store, n, *, start=0, invalid_every=0):
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        email = f"pessoa{i}@exemplo.com.br"
        if invalid_every and i % invalid_every == 0:
            email = f"pessoa{i}-at-nowhere"  # Shopify rejects it
        rows.append({"email": email, "first_name": "João" if i % 2 else "Conceição", "last_name": f"Gonçalves {i}", "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def export(client, store, entity="contacts", **kw):
    return export_entity(ShopifyWriter(client), store, "shopify", entity, stats=client.stats, **kw)


def assert_exactly_once(sim, store, entity="contacts"):
    remote = sim.records(entity)
    key_of = (lambda o: o["externalId"]) if entity == "companies" else (lambda o: next((t for t in o["tags"] if t.startswith("crm:")), None))
    keys = collections.Counter(key_of(o) for o in remote.values())
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"duplicates at the provider: {list(duplicated.items())[:5]}"
    links = store.linked_records("shopify", entity)
    assert set(links) <= set(remote)
    assert len(links) == len({row["id"] for row in links.values()})
    return remote, links


@pytest.mark.slow
def test_10000_contacts_land_exactly_once_and_a_rerun_sends_nothing(make_sim, sqlite_url, client_for):
    # SQLite only: the other export tests run on PostgreSQL too, and 10,000 rows there take half a minute of commits.
    store = LocalStore.open(sqlite_url)
    sim = make_sim()
    add_local_contacts(store, 10_000)
    client = client_for(sim)
    result = export(client, store)
    assert result.created == 10_000 and result.rejected == 0
    assert result.api["by_kind"]["write"] == 200  # 50 aliased customerCreate per request
    remote, links = assert_exactly_once(sim, store)
    assert sim.count("contacts") == len(remote) == len(links) == 10_000
    by_email = {o["email"]: o for o in remote.values()}
    assert by_email["pessoa1@exemplo.com.br"]["firstName"] == "João"
    assert by_email["pessoa2@exemplo.com.br"]["firstName"] == "Conceição"
    assert client.cost.snapshot()["actual"] >= 10_000 * 10

    again = export(client_for(sim), store)
    assert again.selected == 0 and again.api.get("by_kind", {}).get("write", 0) == 0
    store.dispose()


def test_only_changed_records_are_sent_again(make_sim, store, client_for):
    sim = make_sim()
    add_local_contacts(store, 120)
    export(client_for(sim), store)
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 10).values(last_name="Magalhães"))
    result = export(client_for(sim), store)
    assert (result.selected, result.updated, result.created) == (10, 10, 0)
    assert [o["lastName"] for o in sim.records("contacts").values()].count("Magalhães") == 10


def test_rejected_records_go_to_the_ledger_and_the_rest_land_despite_faults(make_sim, store, client_for):
    sim = make_sim()
    add_local_contacts(store, 1000, invalid_every=20)  # 5% invalid e-mails
    sim.faults.rate_5xx = 0.1
    sim.faults.rate_429 = 0.1
    client = client_for(sim, max_attempts=12)
    client.api._wait._exp = lambda state: 0.01
    result = export(client, store)
    assert (result.created, result.rejected) == (950, 50)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 950
    rejects = store.open_rejects("shopify", "contacts", "export")
    assert len(rejects) == 50 and all(r["message"] == "email: Email is invalid" for r in rejects)

    sim.faults.rate_5xx = sim.faults.rate_429 = 0.0
    assert export(client_for(sim), store).selected == 0  # a rejected record waits for a change of its content
    again = export(client_for(sim), store, ids=[int(r["record_ref"]) for r in rejects], retry_rejected=True)
    assert again.selected == 50 and again.created == 0
    assert store.open_rejects("shopify", "contacts", "export")[0]["attempts"] == 2


def test_crash_between_create_and_save_does_not_duplicate(make_sim, sqlite_url, client_for, monkeypatch):
    """The creates reached Shopify but their ids were never saved: the next run finds them by tag."""
    sim = make_sim()
    store = LocalStore.open(sqlite_url)
    add_local_contacts(store, 230)
    original = LocalStore.save_exported
    calls = {"n": 0}

    def crash_on_second_batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed between write and save")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "save_exported", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        export(client_for(sim), store)
    sent = sim.count("contacts")  # two batches (or the third too, sent before the failed save was seen)
    assert sent >= 200 and len(store.pending_intents("shopify", "contacts")) == sent - 100  # one was saved
    monkeypatch.setattr(LocalStore, "save_exported", original)

    result = export(client_for(sim), store)
    assert result.recovered == sent - 100 and result.created == 230 - sent
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 230
    assert store.pending_intents("shopify", "contacts") == {}
    store.dispose()


def test_existing_customers_with_the_same_email_are_linked_not_duplicated(make_sim, store, client_for):
    sim = make_sim(customers=200)
    remote_emails = sorted(o["email"] for o in sim.records("contacts").values() if o["email"])[:50]
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": e.upper(), "first_name": "Local", "created_at": now, "updated_at": now} for e in remote_emails])
    result = export(client_for(sim), store)
    assert result.linked == 50 and result.created == 0
    assert sim.count("contacts") == 200
    assert sum(o["firstName"] == "Local" for o in sim.records("contacts").values()) == 50


def test_email_taken_on_create_becomes_a_link(make_sim, store, client_for, monkeypatch):
    """A customer created after matching ran: "Email has already been taken" links to it."""
    sim = make_sim(customers=30)
    existing = next(o for o in sim.records("contacts").values() if o["email"])
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": existing["email"], "first_name": "Ana", "created_at": now, "updated_at": now},
                                        {"email": "nova@exemplo.com.br", "first_name": "Íñigo", "created_at": now, "updated_at": now}])
    monkeypatch.setattr(ShopifyWriter, "match", lambda self, entity, records: {})
    result = export(client_for(sim), store)
    assert (result.linked, result.created, result.updated) == (1, 1, 1)
    assert sim.records("contacts")[existing["id"]]["firstName"] == "Ana"
    assert sim.count("contacts") == 31


def test_a_request_refused_as_a_whole_is_split_until_the_bad_record_is_alone(make_sim, store, client_for, monkeypatch):
    sim = make_sim()
    add_local_contacts(store, 100)
    original = shopify_mapping.create_input

    def with_a_bad_type(entity, fields, key, **options):
        data = original(entity, fields, key, **options)
        if fields["email"] in ("pessoa7@exemplo.com.br", "pessoa70@exemplo.com.br"):
            data["firstName"] = {"not": "a string"}  # variable coercion fails the whole request
        return data

    monkeypatch.setattr("crm_pipelines.providers.shopify.writer.create_input", with_a_bad_type)
    result = export(client_for(sim), store)
    assert (result.created, result.rejected) == (98, 2)
    assert_exactly_once(sim, store)
    messages = [r["message"] for r in store.open_rejects("shopify", "contacts", "export")]
    assert len(messages) == 2 and all("firstName" in m or "String" in m for m in messages), messages


def test_orders_are_created_with_exact_amounts_and_immutable_fields_are_reported(make_sim, store, client_for):
    sim = make_sim()
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "#A-1", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "paid", "created_at": now, "updated_at": now},
            {"name": "#A-2", "amount": Decimal("10.00"), "currency": "BRL", "stage": "ganho", "created_at": now, "updated_at": now},
            {"name": "#A-3", "amount": None, "currency": "BRL", "stage": "pending", "created_at": now, "updated_at": now},
        ])
    result = export(client_for(sim), store, "deals")
    assert (result.created, result.rejected) == (1, 2)
    [order] = sim.records("deals").values()
    assert order["totalPriceSet"]["shopMoney"] == {"amount": "1234567.89", "currencyCode": "BRL"}
    assert order["name"] == "#A-1" and order["displayFinancialStatus"] == "PAID" and order["tags"] == ["crm:deals:1"]
    messages = sorted(r["message"] for r in store.open_rejects("shopify", "deals", "export"))
    assert "amount" in messages[0] and "financial status" in messages[1]

    with store.engine.begin() as conn:
        conn.execute(update(deals).where(deals.c.id == 1).values(amount=Decimal("99.00")))
    changed = export(client_for(sim), store, "deals")
    assert changed.rejected >= 1 and changed.updated == 0
    immutable = [r for r in store.open_rejects("shopify", "deals", "export") if r["record_ref"] == "1"]
    assert immutable and immutable[0]["category"] == "IMMUTABLE_FIELD" and "amount" in immutable[0]["message"]
    assert sim.records("deals")[order["id"]]["totalPriceSet"]["shopMoney"]["amount"] == "1234567.89"


def test_companies_use_external_id_and_match_by_unique_name(make_sim, store, client_for):
    sim = make_sim(companies=20)
    names = sorted({o["name"] for o in sim.records("companies").values()})
    unique = [n for n in names if [o["name"] for o in sim.records("companies").values()].count(n) == 1][:3]
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(companies), [{"name": n, "created_at": now, "updated_at": now} for n in unique]
                     + [{"name": "Sabiá Comércio Ltda", "created_at": now, "updated_at": now}])
    client = client_for(sim)
    writer = ShopifyWriter(client)
    assert writer.unavailable("companies") is None
    result = export(client, store, "companies")
    assert (result.linked, result.created) == (3, 1)
    assert sim.count("companies") == 21
    created = [o for o in sim.records("companies").values() if o["name"] == "Sabiá Comércio Ltda"]
    assert len(created) == 1 and created[0]["externalId"] == "crm:companies:4"
    assert writer.find_by_keys("companies", ["companies:4"]) == {"companies:4": created[0]["id"]}


def test_without_b2b_the_writer_says_why_companies_are_skipped(make_sim, client_for):
    sim = make_sim(b2b=False)
    writer = ShopifyWriter(client_for(sim))
    reason = writer.unavailable("companies")
    assert reason and "B2B" in reason
    assert writer.unavailable("contacts") is None
