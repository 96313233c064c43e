"""Pipedrive import against the simulator over real HTTP: reconciliation, deltas, deletions, limits."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.core.normalize import normalize_phone
from crm_pipelines.providers.pipedrive.reader import PipedriveChangeReader
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines.sync.targeted import sync_ids

from .conftest import client_for

UTC = timezone.utc
ENTITY_PATH = {"contacts": "persons", "companies": "organizations", "deals": "deals"}


@pytest.fixture
def make_sim(start_pipedrive_sim):
    return lambda **kw: start_pipedrive_sim(**({"seed": 3, "persons": 600, "organizations": 80, "deals": 150, "burst_limit": 1000} | kw))


def full_window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def delta_window(since: datetime) -> ImportWindow:
    return ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(seconds=5))


def import_entity(sim, store, entity, window, *, strategy="auto", sweep=False, **client_kw):
    with client_for(sim, **({"burst_limit": 1000} | client_kw)) as client:
        reader = PipedriveChangeReader(client, strategy=strategy)
        return run_import(reader, store, "pipedrive", entity, window, stats=client.stats, sweep_archived=sweep)


def digits(value):
    return re.sub(r"\D", "", value) if value else None


def expected_fields(sim, entity: str, obj: dict) -> dict:
    """What the local row must hold for a simulator record (written independently of the mapping)."""
    keys = sim.field_keys(ENTITY_PATH[entity])
    custom = obj["custom_fields"]
    if entity == "contacts":
        return {
            "email": obj["emails"][0]["value"].lower() if obj["emails"] else None,
            "first_name": obj["first_name"],
            "last_name": obj["last_name"],
            "phone": normalize_phone(obj["phones"][0]["value"]) if obj["phones"] else None,
            "company_name": custom[keys["Company"]],
            "job_title": custom[keys["Job title"]],
            "document": digits(custom[keys["CPF/CNPJ"]]),
        }
    if entity == "companies":
        return {"name": obj["name"], "domain": custom[keys["Domain"]], "document": digits(custom[keys["CPF/CNPJ"]]), "city": obj["address"]["locality"], "industry": custom[keys["Industry"]]}
    return {
        "name": obj["title"],
        "amount": Decimal(str(obj["value"])).quantize(Decimal("0.01")),
        "currency": obj["currency"],
        "stage": str(obj["stage_id"]),
        "close_date": datetime.fromisoformat(obj["expected_close_date"]).replace(tzinfo=UTC),
    }


def assert_reconciled(sim, store, entity):
    remote = sim.records(ENTITY_PATH[entity])
    local = store.linked_records("pipedrive", entity)
    assert set(local) == set(remote), f"{entity}: missing {sorted(set(remote) - set(local))[:5]}, extra {sorted(set(local) - set(remote))[:5]}"
    assert store.count(entity) == len(remote), f"{entity}: local table has duplicates or strays"
    for external_id, obj in remote.items():
        row = local[external_id]
        for name, value in expected_fields(sim, entity, obj).items():
            assert row[name] == value, f"{entity} {external_id}.{name}: local {row[name]!r} != simulator {value!r}"


@pytest.mark.slow
def test_initial_import_of_10000_persons_reconciles_exactly(start_pipedrive_sim, store):
    sim = start_pipedrive_sim(seed=9, persons=10_000, organizations=0, deals=0, burst_limit=1000, burst_unit="tokens")
    result = import_entity(sim, store, "contacts", full_window(), burst_limit=1000, burst_unit="tokens")
    assert result.strategy == "list"
    assert (result.outcome.created, result.failed) == (10_000, 0)
    assert result.api["by_kind"]["list"] - result.api["retries"] == 20 + 20  # 20 pages of 500, and the id sweep for deletions
    assert sim.stats["rate_limited_total"] <= result.api["retries"]  # any 429 was waited out, at any machine speed
    assert_reconciled(sim, store, "contacts")


@pytest.mark.parametrize("entity", ["companies", "deals"])
def test_initial_import_of_organizations_and_deals(make_sim, sqlite_store, entity):
    sim = make_sim()
    result = import_entity(sim, sqlite_store, entity, full_window())
    assert result.outcome.created == sim.count(ENTITY_PATH[entity]) and result.failed == 0
    assert_reconciled(sim, sqlite_store, entity)


def test_incremental_import_after_creates_updates_and_deletes(make_sim, store):
    sim = make_sim()
    import_entity(sim, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = set(sim.modify("persons", n=40))
    created = sim.create("persons", 15)
    deleted = sim.delete("persons", 6)
    result = import_entity(sim, store, "contacts", delta_window(since), sweep=True)
    assert result.strategy == "delta"
    assert result.outcome.created == 15
    assert result.outcome.deleted == len(deleted) == 6
    assert result.fetched == len(changed - set(deleted)) + 15
    assert_reconciled(sim, store, "contacts")


def test_deleted_deals_are_read_from_status_deleted(make_sim, sqlite_store):
    sim = make_sim()
    import_entity(sim, sqlite_store, "deals", full_window())
    gone = sim.delete("deals", 5)
    now = datetime.now(UTC)
    result = import_entity(sim, sqlite_store, "deals", delta_window(now - timedelta(minutes=1)), sweep=True)
    assert result.outcome.deleted == len(gone) == 5
    assert_reconciled(sim, sqlite_store, "deals")


def test_records_sharing_one_update_time_are_not_missed_across_pages_and_windows(make_sim, store):
    sim = make_sim(persons=1500)
    import_entity(sim, store, "contacts", full_window())
    stamp = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    sim.clock.freeze(at=stamp)
    same = set(sim.modify("persons", n=1100))  # one second: more than two pages of 500
    sim.clock.advance(1)
    later = set(sim.modify("persons", n=30))
    sim.clock.unfreeze()
    first = import_entity(sim, store, "contacts", ImportWindow(stamp, stamp, stamp, stamp + timedelta(seconds=1)))
    second = import_entity(sim, store, "contacts", ImportWindow(stamp, stamp, stamp + timedelta(seconds=1), datetime.now(UTC) + timedelta(seconds=5)))
    assert first.fetched == len(same - later)  # [stamp, stamp+1s): exactly that second
    assert second.fetched == len(later)  # the adjacent window neither misses nor repeats
    assert_reconciled(sim, store, "contacts")


def test_retried_pages_after_faults_do_not_duplicate(make_sim, sqlite_store):
    sim = make_sim(persons=1500)
    sim.faults.rate_5xx = 0.2
    sim.faults.rate_truncated = 0.1
    sim.faults.rate_reset = 0.05
    result = import_entity(sim, sqlite_store, "contacts", full_window())
    assert result.api["retries"] > 0
    assert result.outcome.created == 1500
    assert_reconciled(sim, sqlite_store, "contacts")


def test_pacing_from_headers_gives_zero_429s_and_adopts_a_lower_limit(make_sim, sqlite_store):
    sim = make_sim(persons=1000, burst_limit=3)
    result = import_entity(sim, sqlite_store, "contacts", full_window(), burst_limit=50)
    assert sim.stats["rate_limited_total"] <= 1  # at most the first burst, before the headers told the limit
    assert result.api["calls"] - result.api["retries"] == 1 + 2 + 2
    assert_reconciled(sim, sqlite_store, "contacts")


def test_burst_429_waits_x_ratelimit_reset_and_continues(make_sim, sqlite_store):
    sim = make_sim(persons=1200)
    sim.faults.rate_429 = 0.3
    result = import_entity(sim, sqlite_store, "contacts", full_window())
    assert result.api["rate_limited"] > 0
    assert_reconciled(sim, sqlite_store, "contacts")


def test_daily_budget_stops_cleanly_with_quota_exhausted(make_sim, sqlite_store):
    sim = make_sim(persons=5000, daily_token_budget=45)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(sim, sqlite_store, "contacts", full_window())
    assert "daily" in str(info.value).lower() and "pipedrive-test-token" not in str(info.value)
    state = sqlite_store.sync_state("pipedrive", "contacts")
    assert state.last_status == "failed" and state.synced_through is None
    # the client stopped on the budget headers: at most one refused call reached the API
    assert sim.stats["rate_limited_total"] <= 1


def test_bad_token_fails_at_once_with_the_provider_message(make_sim, sqlite_store):
    sim = make_sim(persons=10)
    with pytest.raises(ProviderError) as info:
        import_entity(sim, sqlite_store, "contacts", full_window(), token="wrong-token")
    assert info.value.status == 401 and "unauthorized" in str(info.value)
    assert "wrong-token" not in str(info.value)


def test_invalid_values_go_to_the_reject_ledger_and_the_rest_proceeds(make_sim, sqlite_store, http):
    sim = make_sim(persons=200)
    victim = sorted(sim.records("persons"), key=int)[0]
    key = sim.field_keys("persons")["CPF/CNPJ"]
    assert http(sim).patch(f"/api/v2/persons/{victim}", json={"custom_fields": {key: "123.456.789-00"}}).status_code == 200
    result = import_entity(sim, sqlite_store, "contacts", full_window())
    assert (result.failed, result.outcome.created) == (1, 199)
    [reject] = sqlite_store.open_rejects("pipedrive", "contacts", "import")
    assert reject["record_ref"] == victim and "CPF" in reject["message"]


def test_sync_by_ids_reads_live_records_and_reports_deleted_ones(make_sim, sqlite_store):
    sim = make_sim()
    import_entity(sim, sqlite_store, "contacts", full_window())
    [changed] = sim.modify("persons", n=1)
    [gone] = sim.delete("persons", 1)
    with client_for(sim, burst_limit=1000) as client:
        figures = sync_ids(PipedriveChangeReader(client), sqlite_store, "pipedrive", "contacts", [changed, gone, "999999"], stats=client.stats)
    assert figures["deleted"] == 1 and figures["fetched"] == 3
    assert_reconciled(sim, sqlite_store, "contacts")
