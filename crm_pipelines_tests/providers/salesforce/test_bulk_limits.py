"""The org's daily Bulk API allocations (``/limits``) decide between a bulk job and the regular path."""

from __future__ import annotations

import logging

import pytest

from crm_pipelines.core.errors import QuotaExhausted
from crm_pipelines.providers.salesforce.bulk_limits import OrgLimits
from crm_pipelines.sync.bulk import BulkChoice

from .test_bulk_sync import P, assert_reconciled, bulk_threshold, make_sim, read  # noqa: F401 - fixture
from .test_export import add_local_contacts, assert_exactly_once, export


def test_a_full_sync_takes_soql_pages_when_the_days_query_jobs_are_spent(make_sim, store, sf_client, caplog):
    sim = make_sim(companies=0, deals=0, bulk_query_jobs_per_day=10)
    sim.add_bulk_usage(query_jobs=10)  # other users of the org
    bulk_threshold(store, 100)
    with caplog.at_level(logging.WARNING):
        result = read(sf_client(sim), store)
    assert result.strategy == "soql" and result.outcome.created == 2_500
    meta = result.metadata()
    assert "bulk_job_id" not in meta and meta["bulk_fallback"].startswith("a Bulk API 2.0 query job reading 2,500 Contact records does not fit")
    assert "DailyBulkV2QueryJobs 0 of 10 left (needs 1)" in meta["bulk_fallback"] and meta["bulk_fallback"].endswith("taking SOQL pages instead")
    assert "bulk API not used: " + meta["bulk_fallback"] in caplog.text
    assert store.sync_state(P, "contacts").last_metrics["bulk_fallback"] == meta["bulk_fallback"]
    assert sim.account().bulk_query_jobs == 0 and result.api["by_kind"]["limits"] == 1
    assert_reconciled(sim, store)


def test_a_full_sync_with_room_for_its_job_still_takes_the_bulk_path(make_sim, store, sf_client):
    sim = make_sim(companies=0, deals=0, bulk_query_jobs_per_day=10)
    sim.add_bulk_usage(query_jobs=9)
    bulk_threshold(store, 100)
    result = read(sf_client(sim), store)
    assert result.strategy == "bulk" and "bulk_fallback" not in result.metadata() and sim.account().bulk_query_jobs == 1
    assert_reconciled(sim, store)


def test_a_full_sync_fitting_neither_path_stops_before_reading_and_says_why(make_sim, store, sf_client):
    sim = make_sim(companies=0, deals=0, bulk_query_jobs_per_day=10, daily_api_limit=1_000)
    sim.add_bulk_usage(query_jobs=10)
    sim.add_api_usage(897)  # the first page and /limits make 899: one request left of this sync's 90%
    bulk_threshold(store, 100)
    with pytest.raises(QuotaExhausted) as caught:
        read(sf_client(sim), store)
    message = str(caught.value)
    assert caught.value.category == "BULK_ALLOCATION" and "DailyBulkV2QueryJobs 0 of 10 left" in message
    assert "SOQL pages would need about 2 API requests and 1 are left to this sync" in message and "resumes on a later run" in message
    assert store.count("contacts") == 0 and sim.account().bulk_query_jobs == 0
    state = store.sync_state(P, "contacts")
    assert state.last_status == "failed" and state.synced_through is None


def test_a_query_job_the_org_refuses_anyway_leaves_the_read_on_soql_pages(make_sim, store, sf_client, monkeypatch):
    sim = make_sim(companies=0, deals=0, bulk_query_jobs_per_day=10)
    sim.add_bulk_usage(query_jobs=10)
    monkeypatch.setattr(OrgLimits, "for_query", lambda self, records, what: BulkChoice(True))  # spent between /limits and the job
    bulk_threshold(store, 100)
    result = read(sf_client(sim), store)
    fallback = result.metadata()["bulk_fallback"]
    assert result.strategy == "soql" and result.outcome.created == 2_500
    assert fallback == "the org refused a bulk query job: Max bulk v2 query jobs (10) per 24 hrs has been reached (11); taking SOQL pages instead"
    assert_reconciled(sim, store)


def test_an_export_takes_sobject_collections_when_the_days_batches_are_spent(make_sim, store, sf_client):
    sim = make_sim(contacts=0, companies=0, deals=0)
    sim.add_bulk_usage(batches=14_999)
    bulk_threshold(store, 100)
    add_local_contacts(store, 600)
    result = export(sf_client(sim), store)
    meta = result.metadata()
    assert result.created == 600 and not meta["bulk_api"] and "bulk_job_id" not in meta
    assert "Bulk API 2.0 ingest jobs writing 600 Contact records" in meta["bulk_fallback"]
    assert "DailyBulkApiBatches 1 of 15,000 left (needs 2)" in meta["bulk_fallback"] and meta["bulk_fallback"].endswith("taking sObject Collections instead")
    assert result.api["by_kind"]["write"] == 3 and "bulk_upload" not in result.api["by_kind"]
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 600


def test_an_ingest_job_running_out_of_batches_stops_the_export_and_the_next_day_sends_the_rest_once(make_sim, store, sf_client):
    sim = make_sim(contacts=0, companies=0, deals=0, bulk_batches_per_day=20, bulk_batch_records=100)
    sim.add_bulk_usage(batches=17)  # /limits shows 3 left: enough for the client's estimate, not for 600 rows of 100 a batch
    bulk_threshold(store, 100)
    add_local_contacts(store, 600)
    with pytest.raises(QuotaExhausted) as caught:
        export(sf_client(sim), store)
    assert caught.value.category == "BULK_BATCHES" and "300 of 600 records" in str(caught.value)
    assert len(sim.records("contacts")) == 300 and store.open_rejects(P, "contacts", "export") == []  # not the records' fault
    sim.clock.advance(86_401)  # the rolling 24 hours move on
    again = export(sf_client(sim), store)
    assert again.recovered == 300 and again.rejected == 0 and again.metadata()["bulk_api"]
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 600
