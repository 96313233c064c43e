"""Shopify import against the simulator over real HTTP: reconciliation, deltas, deletions, pacing, faults."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_pipelines.core.errors import EntityUnavailable, ProviderError
from crm_pipelines.core.normalize import normalize_phone
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines_tests.providers.shopify.conftest import FAST

UTC = timezone.utc


@pytest.fixture
def make_sim(start_shopify_sim):
    return lambda **overrides: start_shopify_sim(**({"seed": 3, "customers": 600, "orders": 150, "companies": 40} | FAST | overrides))


def full_window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def since_window(since: datetime) -> ImportWindow:
    return ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(seconds=5))


def import_entity(client, store, entity, window, **reader_kw):
    reader = ShopifyChangeReader(client, **reader_kw)
    return run_import(reader, store, "shopify", entity, window, stats=client.stats, sweep_archived=True)


def expected_fields(entity: str, node: dict) -> dict:
    """What the local row must hold for a simulator record (written apart from the mapping)."""
    if entity == "contacts":
        return {
            "email": node["email"].lower() if node["email"] else None,
            "first_name": node["firstName"], "last_name": node["lastName"], "phone": normalize_phone(node["phone"]),
            "company_name": (node["defaultAddress"] or {}).get("company"),
        }
    if entity == "deals":
        money = node["totalPriceSet"]["shopMoney"]
        return {"name": node["name"], "amount": Decimal(money["amount"]).quantize(Decimal("0.01")), "currency": node["currencyCode"],
                "stage": node["displayFinancialStatus"].lower(), "pipeline": node["displayFulfillmentStatus"].lower()}
    return {"name": node["name"]}


def assert_reconciled(sim, store, entity):
    remote = sim.records(entity)
    local = store.linked_records("shopify", entity)
    assert set(local) == set(remote), f"{entity}: missing {sorted(set(remote) - set(local))[:5]}, extra {sorted(set(local) - set(remote))[:5]}"
    assert store.count(entity) == len(remote), f"{entity}: local table has duplicates or strays"
    for gid, node in remote.items():
        row = local[gid]
        for name, value in expected_fields(entity, node).items():
            assert row[name] == value, f"{entity} {gid}.{name}: local {row[name]!r} != simulator {value!r}"


@pytest.mark.slow
def test_initial_import_of_10000_customers_reconciles_exactly(make_sim, store, client_for):
    sim = make_sim(customers=10_000, orders=0, companies=0)
    client = client_for(sim)
    result = import_entity(client, store, "contacts", full_window())
    assert result.outcome.created == 10_000 and result.failed == 0
    assert result.api["by_kind"]["list"] == 40  # 250 per page
    assert_reconciled(sim, store, "contacts")
    assert ShopifyChangeReader(client).total("contacts") == 10_000


@pytest.mark.parametrize("entity", ["deals", "companies"])
def test_orders_and_companies_reconcile(make_sim, store, client_for, entity):
    sim = make_sim()
    result = import_entity(client_for(sim), store, entity, full_window())
    assert result.outcome.created == sim.count(entity) and result.failed == 0
    assert_reconciled(sim, store, entity)


def test_accents_survive(make_sim, store, client_for):
    sim = make_sim()
    import_entity(client_for(sim), store, "contacts", full_window())
    names = {r["first_name"] for r in store.linked_records("shopify", "contacts").values()}
    assert any(n and any(ch in n for ch in "ãçéêôõüöøł") for n in names), names


def test_incremental_import_after_creates_updates_and_deletes(make_sim, store, client_for):
    sim = make_sim()
    client = client_for(sim)
    import_entity(client, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = sim.modify("contacts", n=40)
    created = sim.create("contacts", 15)
    deleted = sim.delete("contacts", 7)
    result = import_entity(client, store, "contacts", since_window(since))
    assert result.outcome.created == 15
    assert result.outcome.deleted == 7
    live_changed = set(changed) - set(deleted)
    assert result.fetched == len(live_changed) + 15
    assert_reconciled(sim, store, "contacts")
    gone = store.linked_records("shopify", "contacts", include_deleted=True)
    assert all(gone[g]["deleted_at"] is not None for g in deleted)


def test_records_sharing_one_second_are_all_read_across_walk_restarts(make_sim, store, client_for, monkeypatch):
    """600 changes in one second, walks restarted every 250 records: nothing lost, nothing twice."""
    seconds_read_by_id = []
    original = ShopifyChangeReader._one_second
    monkeypatch.setattr(ShopifyChangeReader, "_one_second", lambda self, *a: (seconds_read_by_id.append(a[1]), (yield from original(self, *a))))
    sim = make_sim(customers=1500, orders=0, companies=0)
    client = client_for(sim)
    import_entity(client, store, "contacts", full_window())
    sim.clock.freeze()
    since = sim.clock.now() - timedelta(seconds=1)
    same = sim.modify("contacts", n=600)
    sim.clock.advance(1)
    spread = sim.modify("contacts", n=300)
    sim.clock.unfreeze()
    window = ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(minutes=10))
    pages = list(ShopifyChangeReader(client, restart_every=250).changes("contacts", window.lower, window.upper))
    ids = [r.external_id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == len(set(same) | set(spread))
    assert len(seconds_read_by_id) == 2  # both crowded seconds (600 and 300 records) were read on their own, by id
    result = import_entity(client, store, "contacts", window, restart_every=250)
    assert result.fetched == len(set(same) | set(spread))
    assert_reconciled(sim, store, "contacts")


def test_faults_and_retried_pages_do_not_duplicate(make_sim, store, client_for):
    sim = make_sim(customers=2000, orders=0, companies=0)
    sim.faults.rate_5xx = 0.15
    sim.faults.rate_truncated = 0.1
    sim.faults.rate_reset = 0.05
    sim.faults.rate_429 = 0.1
    client = client_for(sim, max_attempts=12)
    client.api._wait._exp = lambda state: 0.01  # keep backoff short in tests
    result = import_entity(client, store, "contacts", full_window())
    assert result.outcome.created == 2000
    assert client.stats.snapshot()["retries"] > 0
    assert_reconciled(sim, store, "contacts")


@pytest.mark.parametrize("status", [200, 429])
def test_throttled_answers_are_paced_from_the_reported_bucket(start_shopify_sim, client_for, status):
    """Another app drained the bucket: the client waits what throttleStatus implies, then succeeds."""
    sim = start_shopify_sim(customers=300, bucket_size=2000.0, restore_rate=1000.0, throttled_http_status=status)
    client = client_for(sim, fast=False, bucket_size=2000.0, restore_rate=1000.0)
    sim.bucket.take(sim.bucket.available())
    pages = list(ShopifyChangeReader(client).changes("contacts", None, datetime.now(UTC) + timedelta(minutes=1)))
    assert sum(len(p.records) for p in pages) == 300
    assert client.cost.snapshot()["throttled"] == 1  # one collision, then paced: no blind retry loop
    snapshot = client.stats.snapshot()
    assert snapshot["rate_limited"] == 1 and snapshot["limiter_wait_s"] > 0.3


def test_pacing_keeps_a_small_bucket_from_throttling(start_shopify_sim, client_for):
    sim = start_shopify_sim(customers=2000, bucket_size=1000.0, restore_rate=4000.0)
    client = client_for(sim, fast=False, bucket_size=1000.0, restore_rate=4000.0)
    pages = list(ShopifyChangeReader(client).changes("contacts", None, datetime.now(UTC) + timedelta(minutes=1)))
    assert sum(len(p.records) for p in pages) == 2000
    # At any speed: every throttled answer was waited out and sent again, none ended the read.
    # (How long pacing waits, and that a paced read meets no throttle, is measured by benchmarks/shopify.py.)
    snapshot = client.stats.snapshot()
    assert snapshot["rate_limited"] == sim.stats["rate_limited_total"] <= snapshot["retries"]


def test_graphql_errors_are_clear_provider_errors(make_sim, client_for):
    sim = make_sim()
    client = client_for(sim)
    with pytest.raises(ProviderError) as info:
        client.graphql("{ customers(first: 300) { nodes { id } } }")
    assert "250" in str(info.value) and info.value.category == "BAD_REQUEST"
    with pytest.raises(ProviderError) as info:
        client_for(sim, token="shpat_wrong").graphql("{ customersCount { count } }")
    assert info.value.status == 401 and "SHOPIFY_ACCESS_TOKEN" in str(info.value)
    assert "shpat_wrong" not in str(info.value)


def test_store_without_b2b_skips_companies_cleanly(make_sim, store, client_for):
    sim = make_sim(b2b=False)
    client = client_for(sim)
    with pytest.raises(EntityUnavailable) as info:
        import_entity(client, store, "companies", full_window())
    assert "B2B" in str(info.value)
    with pytest.raises(EntityUnavailable):
        ShopifyChangeReader(client).total("companies")
    import_entity(client, store, "contacts", full_window())
    assert_reconciled(sim, store, "contacts")


def test_by_ids_takes_webhook_ids_and_reports_deletions(make_sim, client_for):
    sim = make_sim()
    reader = ShopifyChangeReader(client_for(sim))
    gids = list(sim.records("contacts"))[:3]
    [deleted] = sim.delete("contacts", [gids[0]])
    numeric = [g.rsplit("/", 1)[1] for g in gids]
    pages = list(reader.by_ids("contacts", numeric + ["not-an-id"]))
    records = {r.external_id: r for p in pages for r in p.records}
    assert records[deleted].archived and not records[gids[1]].archived
    assert records[gids[2]].fields["email"] == (sim.records("contacts")[gids[2]]["email"] or None)
    assert [e.external_id for p in pages for e in p.errors] == ["not-an-id"]


def test_total_pages_ids_when_the_count_is_capped(make_sim, client_for, monkeypatch):
    sim = make_sim(customers=700)
    import crm_pipelines.providers.shopify.simulator as simulator_module

    original = simulator_module.ShopifySimulator.count
    monkeypatch.setattr(simulator_module.ShopifySimulator, "count", lambda self, kind, info=None, *, query=None, limit=10_000: original(self, kind, info, query=query, limit=500) if info else original(self, kind))
    assert ShopifyChangeReader(client_for(sim)).total("contacts") == 700
