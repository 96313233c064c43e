"""Salesforce import against the simulator over real HTTP: reconciliation, deltas, cursors, limits, faults."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.providers.salesforce.mapping import parse_datetime
from crm_pipelines.providers.salesforce.reader import SalesforceChangeReader
from crm_pipelines.providers.salesforce.simulator import DEFAULT_CLIENT_SECRET
from crm_pipelines.sync.importer import ImportWindow, run_import

UTC = timezone.utc
P = "salesforce"


@pytest.fixture
def make_sim(start_salesforce_sim):
    return lambda **kw: start_salesforce_sim(**({"seed": 3, "contacts": 600, "companies": 80, "deals": 150} | kw))


def full_window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def window_since(since: datetime) -> ImportWindow:
    return ImportWindow(since, since + timedelta(minutes=30), since, datetime.now(UTC) + timedelta(seconds=5), "test: delta")


def import_entity(client, store, entity, window, **kw):
    return run_import(SalesforceChangeReader(client), store, P, entity, window, stats=client.stats, **kw)


def digits(value):
    return re.sub(r"\D", "", value) if value else None


def expected_fields(entity: str, obj: dict) -> dict:
    """What the local row must hold for a simulator record (written independently of the mapping)."""
    if entity == "contacts":
        return {
            "email": obj["Email"].lower() if obj["Email"] else None, "first_name": obj["FirstName"], "last_name": obj["LastName"],
            "job_title": obj["Title"], "document": digits(obj["CPF_CNPJ__c"]), "company_name": None,
        }
    if entity == "companies":
        site = obj["Website"]
        domain = re.sub(r"^(https?://)?(www\.)?", "", site).strip("/").lower() if site else None
        return {"name": obj["Name"], "domain": domain, "document": digits(obj["CPF_CNPJ__c"]), "industry": obj["Industry"], "city": obj["BillingCity"]}
    return {
        "name": obj["Name"], "stage": obj["StageName"], "currency": obj["CurrencyIsoCode"],
        "amount": Decimal(str(obj["Amount"])).quantize(Decimal("0.01")) if obj["Amount"] is not None else None,
        "close_date": datetime.fromisoformat(obj["CloseDate"]).replace(tzinfo=UTC),
    }


def assert_reconciled(sim, store, entity):
    remote = sim.records(entity)
    local = store.linked_records(P, entity)
    assert set(local) == set(remote), f"{entity}: missing {sorted(set(remote) - set(local))[:5]}, extra {sorted(set(local) - set(remote))[:5]}"
    assert store.count(entity) == len(remote), f"{entity}: local table has duplicates or strays"
    for external_id, obj in remote.items():
        row = local[external_id]
        for name, value in expected_fields(entity, obj).items():
            got = row[name]
            if isinstance(got, datetime) and got.tzinfo is None:
                got = got.replace(tzinfo=UTC)
            assert got == value, f"{entity} {external_id}.{name}: local {got!r} != simulator {value!r}"


@pytest.mark.slow
def test_initial_import_of_10000_contacts_reconciles_exactly(make_sim, store, sf_client):
    sim = make_sim(contacts=10_000, companies=0, deals=0)
    client = sf_client(sim)
    result = import_entity(client, store, "contacts", full_window())
    assert result.outcome.created == result.fetched == 10_000 and result.failed == 0
    # five query pages of 2,000 plus the recycle-bin sweep of a full sync
    assert result.api["by_kind"] == {"query": 6}
    assert_reconciled(sim, store, "contacts")


@pytest.mark.parametrize("entity", ["companies", "deals"])
def test_accounts_and_opportunities_reconcile(make_sim, store, sf_client, entity):
    sim = make_sim(contacts=0)
    import_entity(sf_client(sim), store, entity, full_window())
    assert_reconciled(sim, store, entity)


def test_incremental_import_after_creates_updates_and_deletes(make_sim, store, sf_client):
    sim = make_sim()
    client = sf_client(sim)
    import_entity(client, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = set(sim.modify("contacts", n=40))
    touched = set(sim.touch("contacts", n=5))  # system change: SystemModstamp moves, values do not
    created = set(sim.create("contacts", 15))
    gone = set(sim.delete("contacts", 7))
    result = import_entity(sf_client(sim), store, "contacts", window_since(since), sweep_archived=True)
    assert result.outcome.created == 15
    assert result.fetched == len((changed | touched | created) - gone)
    assert result.outcome.deleted == len(gone) == 7
    assert result.api["by_kind"]["query"] == 2  # one delta page, one recycle-bin page
    assert_reconciled(sim, store, "contacts")
    assert not set(store.linked_records(P, "contacts")) & gone


def test_equal_timestamps_and_an_expired_cursor_lose_nothing(make_sim, store, sf_client):
    """4,500 records stamped in one second, read 200 a page; the cursor dies twice mid-read."""
    sim = make_sim(contacts=5000, companies=0, deals=0)
    client = sf_client(sim, query_batch_size=200)
    import_entity(client, store, "contacts", full_window())
    since = datetime.now(UTC) - timedelta(seconds=1)
    same = set(sim.modify("contacts", n=4500))
    remote = sim.records("contacts")
    stamps = {remote[i]["SystemModstamp"] for i in same}
    assert len(stamps) <= 2  # the whole bulk change falls into one (or two) whole seconds
    reader = SalesforceChangeReader(client)
    seen: list[str] = []
    for number, page in enumerate(reader.changes("contacts", since, datetime.now(UTC) + timedelta(seconds=5))):
        seen += [r.external_id for r in page.records]
        if number in (3, 11):
            sim.expire_cursors()
    assert reader.progress.resumed == 2
    assert len(seen) == len(set(seen)) == 4500 and set(seen) == same


def test_pages_retried_after_faults_are_not_duplicated(make_sim, store, sf_client):
    sim = make_sim(contacts=3000, companies=0, deals=0)
    client = sf_client(sim, query_batch_size=200)
    sim.faults.seed = 11
    sim.faults.rate_5xx = 0.15
    sim.faults.rate_truncated = 0.1
    sim.faults.rate_reset = 0.05
    reader = SalesforceChangeReader(client)
    seen = [r.external_id for page in reader.changes("contacts", None, None) for r in page.records]
    assert client.stats.retries > 0
    assert len(seen) == len(set(seen)) == 3000
    sim.faults.rate_5xx = sim.faults.rate_truncated = sim.faults.rate_reset = 0.0
    import_entity(client, store, "contacts", full_window())
    assert_reconciled(sim, store, "contacts")


def test_concurrency_limit_and_429_are_retried(make_sim, store, sf_client):
    sim = make_sim(contacts=500, companies=0, deals=0)
    client = sf_client(sim, query_batch_size=200)
    client.limits()  # opens the session: the injected faults below hit data calls
    sim.fail_next(1, 403)
    result = import_entity(client, store, "contacts", full_window())
    assert result.api["retries"] == 1
    sim.fail_next(1, 429)
    import_entity(client, store, "contacts", full_window())
    assert client.stats.rate_limited == 1
    assert_reconciled(sim, store, "contacts")


def test_expired_session_is_refreshed_once_mid_read(make_sim, store, sf_client):
    sim = make_sim(contacts=1000, companies=0, deals=0)
    client = sf_client(sim, query_batch_size=200)
    reader = SalesforceChangeReader(client)
    seen = []
    for number, page in enumerate(reader.changes("contacts", None, None)):
        seen += [r.external_id for r in page.records]
        if number == 1:
            sim.expire_sessions()
    assert client.refreshes == 1
    assert len(seen) == len(set(seen)) == 1000


def test_failed_refresh_is_a_clear_error_without_secrets(make_sim, store, sf_client):
    sim = make_sim(contacts=50)
    with pytest.raises(ProviderError) as info:
        import_entity(sf_client(sim, client_secret="wrong-secret-value"), store, "contacts", full_window())
    assert "invalid_client" in str(info.value) and "SALESFORCE_CLIENT_SECRET" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)
    client = sf_client(sim)
    import_entity(client, store, "contacts", full_window())
    sim.expire_sessions()
    sim.revoke_refresh_tokens()
    with pytest.raises(ProviderError) as info:
        import_entity(client, store, "contacts", full_window())
    assert "invalid_grant" in str(info.value) and DEFAULT_CLIENT_SECRET not in str(info.value)


def test_spent_daily_allocation_stops_with_quota_exhausted(make_sim, store, sf_client):
    """Other users spend the rest after the client last saw the usage: the org's 403 stops the sync."""
    sim = make_sim(contacts=3000, companies=0, deals=0, daily_api_limit=1000)
    client = sf_client(sim, query_batch_size=200)
    client.limits()
    sim.add_api_usage(999)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(client, store, "contacts", full_window())
    assert "TotalRequests Limit exceeded." in str(info.value) and "1,000 of 1,000" in str(info.value)
    assert client.stats.retries == 0
    state = store.sync_state(P, "contacts")
    assert state.last_status == "failed" and state.synced_through is None


def test_the_client_keeps_to_its_share_of_the_allocation(make_sim, store, sf_client):
    """Other users spent most of the org's allocation: slow down, then stop before the share."""
    sim = make_sim(contacts=4000, companies=0, deals=0, daily_api_limit=1000)
    sim.add_api_usage(880)
    sleeps: list[float] = []
    client = sf_client(sim, query_batch_size=200, max_share_of_daily_allocation=0.9, slow_down_from_share=0.8, max_slowdown_s=0.01)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(client, store, "contacts", full_window())
    message = str(info.value)
    assert "900 of its 1,000" in message and "90%" in message
    assert sim.api_usage()["used"] == 900  # stopped exactly at the share, never beyond
    assert sim.stats["rate_limited_total"] == 0  # the org never had to refuse a call
    assert client.guard.waited_s > 0 and not sleeps


def test_invalid_remote_values_go_to_the_reject_ledger(make_sim, store, sf_client):
    sim = make_sim(contacts=200, companies=0, deals=0)
    victim = sorted(sim.records("contacts"))[0]
    sim.set_fields("contacts", victim, {"CPF_CNPJ__c": "123.456.789-00"})
    result = import_entity(sf_client(sim), store, "contacts", full_window())
    assert result.failed == 1 and result.outcome.created == 199
    [reject] = store.open_rejects(P, "contacts", "import")
    assert reject["record_ref"] == victim and "CPF" in reject["message"]


def test_by_ids_reports_deletions_and_total_counts_live_records(make_sim, sf_client):
    sim = make_sim(contacts=700, companies=0, deals=0)
    client = sf_client(sim)
    ids = sorted(sim.records("contacts"))[:350]
    gone = set(sim.delete("contacts", ids[:3]))
    reader = SalesforceChangeReader(client)
    records = [r for page in reader.by_ids("contacts", ids + ["0035g0000ZZZZZZAAA"]) for r in page.records]
    assert {r.external_id for r in records if r.archived} == gone
    assert {r.external_id for r in records if not r.archived} == set(ids) - gone
    assert reader.total("contacts") == 697
    stamp = parse_datetime(sim.records("contacts", deleted=True)[min(gone)]["SystemModstamp"])
    assert next(r for r in records if r.external_id == min(gone)).updated_at == stamp


def test_resuming_after_an_expired_cursor_with_millisecond_stamps(make_sim, sf_client):
    """With millisecond stamps the resume query carries a fractional literal, and still misses nothing."""
    sim = make_sim(contacts=1200, companies=0, deals=0, timestamp_resolution_ms=1)
    client = sf_client(sim, query_batch_size=200)
    reader = SalesforceChangeReader(client)
    seen = []
    for number, page in enumerate(reader.changes("contacts", None, None)):
        seen += [r.external_id for r in page.records]
        if number == 2:
            sim.expire_cursors()
    assert reader.progress.resumed == 1
    assert len(seen) == len(set(seen)) == 1200
