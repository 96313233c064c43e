"""HubSpot import against the simulator over real HTTP: reconciliation, deltas, limits, faults."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.importer import ImportWindow, run_import

TOKEN = "test-token"
UTC = timezone.utc


@pytest.fixture
def make_sim(start_hubspot_sim):
    return lambda **overrides: start_hubspot_sim(**({"seed": 3, "contacts": 600, "companies": 80, "deals": 150, "tokens": (TOKEN,)} | overrides))


def client_for(sim, **kw) -> HubSpotClient:
    return HubSpotClient(access_token=kw.pop("token", TOKEN), base_url=sim.base_url, **kw)


def full_window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def import_entity(sim, store, entity, window, *, strategy="auto", **client_kw):
    with client_for(sim, **client_kw) as client:
        reader = HubSpotChangeReader(client, strategy=strategy)
        return run_import(reader, store, "hubspot", entity, window, stats=client.stats)


def digits(value):
    return re.sub(r"\D", "", value) if value else None


def expected_fields(entity: str, props: dict) -> dict:
    """What the local row must hold for a simulator record (written independently of the mapping)."""
    blank = lambda v: v if v not in (None, "") else None  # noqa: E731
    if entity == "contacts":
        return {
            "email": blank(props.get("email")) and props["email"].strip().lower(),
            "first_name": blank(props.get("firstname")),
            "last_name": blank(props.get("lastname")),
            "company_name": blank(props.get("company")),
            "document": digits(props.get("cpf_cnpj")),
        }
    if entity == "companies":
        return {"name": blank(props.get("name")), "domain": blank(props.get("domain")) and props["domain"].lower(), "document": digits(props.get("cpf_cnpj"))}
    return {
        "name": blank(props.get("dealname")),
        "amount": Decimal(props["amount"]).quantize(Decimal("0.01")) if blank(props.get("amount")) else None,
        "stage": blank(props.get("dealstage")),
    }


def assert_reconciled(sim, store, entity):
    remote = sim.records(entity)
    local = store.linked_records("hubspot", entity)
    assert set(local) == set(remote), f"{entity}: missing {sorted(set(remote) - set(local))[:5]}, extra {sorted(set(local) - set(remote))[:5]}"
    assert store.count(entity) == len(remote), f"{entity}: local table has duplicates or strays"
    for external_id, obj in remote.items():
        row = local[external_id]
        for name, value in expected_fields(entity, obj["properties"]).items():
            assert row[name] == value, f"{entity} {external_id}.{name}: local {row[name]!r} != simulator {value!r}"


def rate_limited_count(sim) -> int:
    """429s the simulator's limits served (injected faults are counted apart)."""
    return sim.stats["rate_limited_total"]


def assert_every_429_retried(sim, result) -> None:
    """What holds at any machine speed: a 429 (a stalled process can land a burst in one window) is
    waited out and sent again, never a failed record. Counts of 429s belong to the benchmarks."""
    assert rate_limited_count(sim) <= result.api["retries"] and result.failed == 0


@pytest.mark.parametrize("entity", ["contacts", "companies", "deals"])
def test_full_import_reconciles_exactly(make_sim, store, entity):
    sim = make_sim()
    result = import_entity(sim, store, entity, full_window())
    assert result.strategy == "list"
    assert result.outcome.created == sim.count(entity)
    assert result.failed == 0
    assert_reconciled(sim, store, entity)
    assert_every_429_retried(sim, result)


def test_accents_survive_end_to_end(make_sim, store):
    sim = make_sim(contacts=400)
    import_entity(sim, store, "contacts", full_window())
    names = {r["first_name"] for r in store.linked_records("hubspot", "contacts").values()} | {r["last_name"] for r in store.linked_records("hubspot", "contacts").values()}
    assert any(n and any(ch in n for ch in "ãçéêôõüöøł") for n in names), names


def test_incremental_import_after_changes_reconciles(make_sim, store):
    sim = make_sim()
    import_entity(sim, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = sim.modify("contacts", n=40)
    created = sim.create("contacts", 15)
    window = ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(seconds=5))
    result = import_entity(sim, store, "contacts", window)
    assert result.strategy == "search"
    assert result.outcome.created == 15
    assert result.outcome.updated + result.outcome.unchanged == len(set(changed))
    assert result.fetched == len(set(changed)) + 15
    assert_reconciled(sim, store, "contacts")


def test_search_past_the_10000_cap_and_equal_timestamps(make_sim, store):
    """Keyset paging: more changes than the cap, many sharing one millisecond, nothing lost."""
    sim = make_sim(contacts=1500, companies=0, deals=0, search_total_cap=300)
    import_entity(sim, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    same = sim.modify("contacts", n=450, same_timestamp=True)
    spread = sim.modify("contacts", n=500)
    window = ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(seconds=5))
    result = import_entity(sim, store, "contacts", window, strategy="search")
    assert result.fetched == len(set(same) | set(spread))
    assert sim.stats["by_status"].get("400", 0) == 0
    assert_reconciled(sim, store, "contacts")


def test_a_tight_rate_limit_is_paced_and_every_429_retried(make_sim, store):
    sim = make_sim(contacts=3000, companies=0, deals=0, burst_limit=20, burst_window_s=1.0)
    result = import_entity(sim, store, "contacts", full_window(), burst_limit=20, burst_window_s=1.0)
    assert result.api["calls"] - result.api["retries"] == 31  # 30 pages of 100, plus the archived listing of a full sync
    assert_every_429_retried(sim, result)
    assert_reconciled(sim, store, "contacts")


def test_client_adopts_a_lower_limit_from_headers(make_sim, store):
    """The account allows 10 per second but the client was told 100: headers correct it."""
    sim = make_sim(contacts=3000, companies=0, deals=0, burst_limit=10, burst_window_s=1.0)
    result = import_entity(sim, store, "contacts", full_window(), burst_limit=100, burst_window_s=1.0)
    assert_reconciled(sim, store, "contacts")
    assert rate_limited_count(sim) <= 1
    assert result.api["calls"] - result.api["retries"] == 31


def test_injected_429s_and_5xx_are_retried(make_sim, store):
    sim = make_sim(contacts=800, companies=0, deals=0)
    sim.faults.rate_429 = 0.15
    sim.faults.rate_5xx = 0.15
    result = import_entity(sim, store, "contacts", full_window())
    assert result.api["retries"] > 0
    assert_reconciled(sim, store, "contacts")


def test_daily_limit_stops_with_a_clear_error(make_sim, store):
    sim = make_sim(contacts=800, companies=0, deals=0, daily_limit=3)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(sim, store, "contacts", full_window())
    assert "daily" in str(info.value).lower()
    assert TOKEN not in str(info.value)
    state = store.sync_state("hubspot", "contacts")
    assert state.last_status == "failed" and state.synced_through is None


def test_bad_token_fails_at_once_with_the_provider_message(make_sim, store):
    sim = make_sim(contacts=10, companies=0, deals=0)
    with pytest.raises(ProviderError) as info:
        import_entity(sim, store, "contacts", full_window(), token="wrong-token")
    assert info.value.status == 401
    assert "wrong-token" not in str(info.value)
    assert rate_limited_count(sim) == 0


def test_archived_records_are_soft_deleted_locally(make_sim, store):
    sim = make_sim(contacts=300, companies=0, deals=0)
    import_entity(sim, store, "contacts", full_window())
    gone = sim.archive("contacts", 7)
    with client_for(sim) as client:
        now = datetime.now(UTC)
        window = ImportWindow(now - timedelta(minutes=30), now, now - timedelta(minutes=30), now)
        result = run_import(HubSpotChangeReader(client), store, "hubspot", "contacts", window, stats=client.stats, sweep_archived=True)
    assert result.outcome.deleted == len(gone) == 7
    assert_reconciled(sim, store, "contacts")


def test_invalid_values_go_to_the_reject_ledger_and_the_rest_proceeds(make_sim, store):
    sim = make_sim(contacts=200, companies=0, deals=0)
    import httpx

    victim = sorted(sim.records("contacts"), key=int)[0]
    response = httpx.patch(f"{sim.base_url}/crm/v3/objects/contacts/{victim}", json={"properties": {"cpf_cnpj": "123.456.789-00"}}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    result = import_entity(sim, store, "contacts", full_window())
    assert result.failed == 1
    assert result.outcome.created == 199
    [reject] = store.open_rejects("hubspot", "contacts", "import")
    assert reject["record_ref"] == victim and "CPF" in reject["message"]


def test_same_import_on_postgres_and_sqlite_gives_the_same_rows(make_sim, sqlite_url, postgres_url):
    sim = make_sim()
    snapshots = []
    for url in (sqlite_url, postgres_url):
        store = LocalStore.open(url)
        for entity in ("contacts", "companies", "deals"):
            import_entity(sim, store, entity, full_window())
            assert_reconciled(sim, store, entity)
        snapshots.append({e: {k: {f: v for f, v in row.items() if f not in ("id", "created_at", "updated_at")} for k, row in store.linked_records("hubspot", e).items()} for e in ("contacts", "companies", "deals")})
        store.dispose()
    assert snapshots[0] == snapshots[1]


def test_an_epoch_timestamp_beyond_any_date_is_a_record_error():
    from crm_pipelines.core.model import RecordError
    from crm_pipelines.providers.hubspot.mapping import to_remote_record

    huge = "9" * 20
    bad_field = to_remote_record("deals", {"id": "1", "properties": {"closedate": huge, "dealname": "x"}, "updatedAt": "2025-01-01T00:00:00Z"})
    bad_stamp = to_remote_record("contacts", {"id": "2", "properties": {}, "updatedAt": huge})
    assert isinstance(bad_field, RecordError) and "closedate" in bad_field.message
    assert isinstance(bad_stamp, RecordError) and "out of range" in bad_stamp.message
