"""Salesforce through Bulk API 2.0: big reads as query jobs, big writes as ingest jobs, chosen by size."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crm_pipelines.providers.salesforce.reader import SalesforceChangeReader
from crm_pipelines.sync.bulk import BulkJobMemory
from crm_pipelines.sync.importer import ImportWindow, plan_incremental, run_import

from .test_import import expected_fields

UTC = timezone.utc
P = "salesforce"


@pytest.fixture
def make_sim(start_salesforce_sim):
    return lambda **kw: start_salesforce_sim(**({"seed": 7, "contacts": 2_500, "companies": 40, "deals": 60} | kw))


def full() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now, now, None, now, "test: full")


def read(client, store, entity="contacts", window=None, strategy="auto"):
    return run_import(SalesforceChangeReader(client, strategy=strategy), store, P, entity, window or full(), stats=client.stats)


def assert_reconciled(sim, store, entity="contacts"):
    remote = sim.records(entity)
    local = store.linked_records(P, entity)
    assert set(local) == set(remote)
    for record_id, obj in remote.items():
        row = local[record_id]
        assert {k: row[k] for k in expected_fields(entity, obj)} == expected_fields(entity, obj)


def test_full_sync_of_a_big_object_goes_through_a_query_job(make_sim, store, sf_client):
    sim = make_sim()
    client = sf_client(sim)
    result = read(client, store, strategy="bulk")
    assert result.strategy == "bulk" and result.fetched == 2_500 and result.outcome.created == 2_500
    meta = result.metadata()
    assert meta["bulk_state"] == "JobComplete" and meta["bulk_records_processed"] == 2_500 and meta["bulk_job_id"].startswith("750")
    by_kind = result.api["by_kind"]
    assert by_kind["bulk"] == 1 and by_kind["bulk_results"] == 1 and by_kind["query"] == 1  # the query: the deletions sweep
    assert_reconciled(sim, store)
    assert BulkJobMemory(store, P, "contacts", "import").get() is None  # done: forgotten
    state = store.sync_state(P, "contacts")
    assert state.synced_through is not None and state.last_metrics["bulk_state"] == "JobComplete"


def test_the_regular_path_below_the_threshold_and_for_incremental_runs(make_sim, store, sf_client):
    sim = make_sim(contacts=300)
    first = read(sf_client(sim), store)
    assert first.strategy == "soql" and first.outcome.created == 300 and "bulk_state" not in first.metadata()
    assert first.api["by_kind"].get("count", 0) == 0  # the first page told the size
    since = datetime.now(UTC) - timedelta(minutes=5)
    again = read(sf_client(sim), store, window=ImportWindow(since, datetime.now(UTC), since, datetime.now(UTC) + timedelta(seconds=5), "test: delta"))
    assert again.strategy == "soql" and again.api["by_kind"].get("count", 0) == 0  # incremental runs never count
    assert_reconciled(sim, store)


def test_a_backfill_above_the_threshold_is_a_bulk_read_chosen_by_the_first_pages_total(make_sim, store, sf_client):
    sim = make_sim(contacts=12_000, companies=0, deals=0)
    client = sf_client(sim)
    window = plan_incremental(store.sync_state(P, "contacts"), since=datetime(2000, 1, 1, tzinfo=UTC))
    assert window.backfill
    result = read(client, store, window=window)
    assert result.strategy == "bulk" and result.outcome.created == 12_000
    assert result.api["by_kind"]["bulk_results"] == 2  # 10,000 rows a page
    assert result.api["by_kind"]["query"] == 2  # the first page, whose totalSize chose the bulk path, and the deletions
    assert_reconciled(sim, store)


# ---------------------------------------------------------------------------------------- export


def bulk_threshold(store, value):
    store.integrations.update(store.scope(P), settings={"bulk_threshold": value})


def test_an_export_above_the_threshold_goes_as_ingest_jobs_with_rejects_and_updates(make_sim, store, sf_client):
    from .test_export import EXT, add_local_contacts, assert_exactly_once, export

    sim = make_sim(contacts=0, companies=0, deals=0)
    bulk_threshold(store, 100)
    add_local_contacts(store, 600, invalid_every=50)
    first = export(sf_client(sim), store)
    meta = first.metadata()
    assert first.created == 588 and first.rejected == 12 and meta["bulk_api"] and meta["bulk_state"] == "JobComplete"
    assert first.api["by_kind"].get("write", 0) == 0 and first.api["by_kind"]["bulk_upload"] == 1
    rejects = store.open_rejects(P, "contacts", "export")
    assert len(rejects) == 12 and {r["category"] for r in rejects} == {"INVALID_EMAIL_ADDRESS"}
    assert all("Email" in r["message"] for r in rejects)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 588
    assert all(o[EXT] == f"contacts:{links[i]['id']}" for i, o in remote.items())
    # Changes go as an update job by Id; an emptied title is cleared remotely.
    from sqlalchemy import update as sql_update

    from crm_pipelines.storage.schema import contacts

    with store.engine.begin() as conn:
        conn.execute(sql_update(contacts).where(contacts.c.id <= 300).values(job_title="Diretora", updated_at=datetime.now(UTC)))
    second = export(sf_client(sim), store)
    assert second.updated == 300 - 6 and second.created == 0 and second.metadata()["bulk_api"]
    titles = [o["Title"] for o in sim.records("contacts").values()]
    assert titles.count("Diretora") == 294
    with store.engine.begin() as conn:
        conn.execute(sql_update(contacts).where(contacts.c.id <= 300).values(job_title=None, updated_at=datetime.now(UTC)))
    third = export(sf_client(sim), store)
    assert third.updated == 294 and [o["Title"] for o in sim.records("contacts").values()].count("Diretora") == 0


def test_an_export_at_the_threshold_keeps_the_collections_path(make_sim, store, sf_client):
    from .test_export import add_local_contacts, export

    sim = make_sim(contacts=0, companies=0, deals=0)
    bulk_threshold(store, 400)
    add_local_contacts(store, 400)
    result = export(sf_client(sim), store)
    assert result.created == 400 and result.api["by_kind"]["write"] == 2 and not result.metadata()["bulk_api"]


# ---------------------------------------------------------------------------------------- Dagster


def test_dagster_runs_take_the_bulk_path_and_show_the_job_in_their_metadata(start_salesforce_sim, sqlite_url):
    import dagster as dg

    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.definitions import defs
    from crm_pipelines.providers.salesforce.resource import SalesforceResource
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations, metadata_by_asset

    from .test_export import add_local_contacts

    sim = start_salesforce_sim(seed=12, contacts=700, companies=0, deals=0)
    store = LocalStore.open(sqlite_url)
    bulk_threshold(store, 500)
    add_local_contacts(store, 600)
    resources = {"salesforce": SalesforceResource(client_id=sim.config.client_id, client_secret=sim.config.client_secret,
                                                  refresh_token=sim.config.refresh_tokens[0], login_url=sim.base_url),
                 "crm_db": LocalDatabaseResource(url=sqlite_url)}
    keys = [dg.AssetKey(["salesforce", "contacts"]), dg.AssetKey(["salesforce", "contacts_export"])]
    with instance_with_integrations() as instance:
        result = dg.materialize([defs.get_assets_def(k) for k in keys], resources=resources, partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        imported, exported = meta["salesforce/contacts"], meta["salesforce/contacts_export"]
        assert imported["strategy"] == "bulk" and imported["bulk_state"] == "JobComplete" and imported["bulk_records_processed"] == 700
        assert exported["bulk_api"] and exported["bulk_state"] == "JobComplete" and exported["created"] == 600
        sends = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and "__send[bulk_slice_0]" in e.step_key]
        assert len(sends) == 1
        logs = " ".join(str(entry.user_message) for entry in instance.all_logs(result.run_id))
        assert "bulk job 750" in logs and "JobComplete" in logs
    assert sim.count("contacts") == 1_300
    store.dispose()


@pytest.mark.parametrize("entity", ["companies", "deals"])
def test_accounts_and_opportunities_read_in_bulk_reconcile_exactly(make_sim, store, sf_client, entity):
    sim = make_sim(contacts=0, companies=300, deals=400)
    result = read(sf_client(sim), store, entity, strategy="bulk")
    assert result.strategy == "bulk" and result.failed == 0
    assert_reconciled(sim, store, entity)


def test_deals_sent_in_bulk_keep_exact_amounts_and_close_dates(make_sim, store, sf_client):
    from decimal import Decimal

    from sqlalchemy import insert

    from crm_pipelines.storage.schema import deals

    from .test_export import export

    sim = make_sim(contacts=0, companies=0, deals=0)
    bulk_threshold(store, 1)
    now, close = datetime.now(UTC), datetime(2026, 12, 31, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "Pedido Açaí", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "Closed Won", "close_date": close, "created_at": now, "updated_at": now},
            {"name": "Sem estágio", "amount": Decimal("10.00"), "currency": "BRL", "stage": None, "close_date": close, "created_at": now, "updated_at": now},
        ])
    result = export(sf_client(sim), store, "deals")
    assert (result.created, result.rejected) == (1, 1) and result.metadata()["bulk_api"]
    [remote] = sim.records("deals").values()
    assert remote["Name"] == "Pedido Açaí" and Decimal(str(remote["Amount"])) == Decimal("1234567.89")
    assert remote["CloseDate"] == "2026-12-31" and remote["IsWon"] is True and remote["CurrencyIsoCode"] == "BRL"
    [reject] = store.open_rejects(P, "deals", "export")
    assert reject["category"] == "REQUIRED_FIELD_MISSING" and "StageName" in reject["message"]


def failing_pages(monkeypatch, status):
    from crm_pipelines.core.errors import ProviderError
    from crm_pipelines.providers.salesforce import bulk as sf_bulk

    def pages(self, job_id, **kw):
        raise ProviderError("salesforce", "results unavailable", status=status, category="TEST")
        yield  # a generator, as the real one

    monkeypatch.setattr(sf_bulk.Bulk2, "result_pages", pages)


@pytest.mark.parametrize("status, kept", [(503, True), (404, False)])
def test_a_run_failing_after_its_job_started_leaves_it_for_the_next_run_unless_its_results_are_gone(make_sim, store, sf_client, monkeypatch, status, kept):
    from crm_pipelines.core.errors import ProviderError

    sim = make_sim(contacts=500)
    with monkeypatch.context() as patched:
        failing_pages(patched, status)
        with pytest.raises(ProviderError):
            read(sf_client(sim), store, strategy="bulk")
    assert (BulkJobMemory(store, P, "contacts", "import").get() is not None) == kept
    assert store.sync_state(P, "contacts").last_status == "failed"
    again = read(sf_client(sim), store, strategy="bulk")
    assert again.metadata()["bulk_resumed"] == kept and again.outcome.created == 500
    assert sim.account().bulk_query_jobs == (1 if kept else 2)  # taken up again, or a new one when the results expired


# ---------------------------------------------------------------------------------------- cancelled while a job runs


class Cancelled(BaseException):
    """What a step's interrupt raises when its run is cancelled (Dagster's interrupt is a BaseException too)."""


def cancel() -> None:
    raise Cancelled


def test_a_cancelled_read_stops_waiting_for_its_query_job_and_the_next_run_takes_it_up(make_sim, store, sf_client):
    sim = make_sim(contacts=500, bulk_processing_s=3600)  # an hour of simulated time before the job completes
    client = sf_client(sim)
    with pytest.raises(Cancelled):
        run_import(SalesforceChangeReader(client, strategy="bulk"), store, P, "contacts", full(), stats=client.stats, interrupt=cancel)
    assert BulkJobMemory(store, P, "contacts", "import").get() is not None
    assert store.sync_state(P, "contacts").synced_through is None and store.linked_records(P, "contacts") == {}
    sim.clock.advance(3600)
    again = read(sf_client(sim), store, strategy="bulk")
    assert again.metadata()["bulk_resumed"] and again.outcome.created == 500
    assert sim.account().bulk_query_jobs == 1  # taken up, not started again
    assert_reconciled(sim, store)


def test_a_cancelled_export_stops_waiting_for_its_ingest_job_and_the_next_export_collects_it(make_sim, store, sf_client):
    from .test_export import add_local_contacts, assert_exactly_once, export

    sim = make_sim(contacts=0, companies=0, deals=0, bulk_processing_s=3600)
    bulk_threshold(store, 100)
    add_local_contacts(store, 300)
    with pytest.raises(Cancelled):
        export(sf_client(sim), store, interrupt=cancel)
    assert any(m.get() is not None for m in BulkJobMemory(store, P, "contacts", "export").family())  # remembered
    jobs = len(sim.account().jobs)
    sim.clock.advance(3600)
    again = export(sf_client(sim), store)
    assert again.created == 0 and len(sim.account().jobs) == jobs  # the job's results were collected; nothing sent again
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 300
