"""Real Dagster runs of the Salesforce import assets against the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import build_definitions, defs
from crm_pipelines.providers.salesforce.resource import SalesforceResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations, metadata_by_asset

UTC = timezone.utc
SECRET = "dagster-test-client-secret-77"
REFRESH = "dagster-test-refresh-token-88"
KEYS = [dg.AssetKey(["salesforce", e]) for e in ("contacts", "companies", "deals")]


def resources(sim, db_url):
    resource = SalesforceResource(client_id=sim.config.client_id, client_secret=SECRET, refresh_token=REFRESH, login_url=sim.base_url)
    return {"salesforce": resource, "crm_db": LocalDatabaseResource(url=db_url)}


def test_initial_then_incremental_import_runs(start_salesforce_sim, sqlite_url):
    now = datetime.now(UTC)
    sim = start_salesforce_sim(seed=12, contacts=1500, companies=120, deals=200, client_secret=SECRET, refresh_tokens=(REFRESH,),
                               reference_time=now - timedelta(hours=2), clock_start=now)
    assets = [defs.get_assets_def(key) for key in KEYS]
    first = DEFAULT
    with instance_with_integrations() as instance:
        result = dg.materialize(assets, resources=resources(sim, sqlite_url), partition_key=first, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert (meta["salesforce/contacts"]["created"], meta["salesforce/companies"]["created"], meta["salesforce/deals"]["created"]) == (1500, 120, 200)
        assert meta["salesforce/contacts"]["read_from"] == "beginning" and meta["salesforce/contacts"]["strategy"] == "soql"
        assert meta["salesforce/contacts"]["api_calls"] == 2  # one 2,000-row page and the recycle-bin sweep

        changed = sim.modify("contacts", n=25)
        new = sim.create("deals", 4)
        result = dg.materialize(assets, resources=resources(sim, sqlite_url), partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert meta["salesforce/contacts"]["fetched"] == len(changed) == 25
        assert meta["salesforce/deals"]["created"] == len(new) == 4
        assert meta["salesforce/companies"]["fetched"] == 0
        store = LocalStore.open(sqlite_url)
        for entity in ("contacts", "companies", "deals"):
            assert set(store.linked_records("salesforce", entity)) == set(sim.records(entity))
        store.dispose()
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                assert SECRET not in str(entry) and REFRESH not in str(entry)


def test_import_job_from_the_definitions_with_environment_variables(start_salesforce_sim, sqlite_url, monkeypatch):
    sim = start_salesforce_sim(seed=2, contacts=300, companies=10, deals=10, client_secret=SECRET, refresh_tokens=(REFRESH,))
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", sim.config.client_id)
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("SALESFORCE_REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", sim.base_url)
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    definitions = build_definitions()
    job = definitions.resolve_job_def("salesforce_import")
    first = DEFAULT
    with instance_with_integrations() as instance:
        result = job.execute_in_process(instance=instance, partition_key=first)
        assert result.success
        for entry in instance.all_logs(result.run_id):
            assert SECRET not in str(entry) and REFRESH not in str(entry)
    store = LocalStore.open(sqlite_url)
    assert store.count("contacts") == 300 and store.count("companies") == 10
    store.dispose()


def test_quota_share_fails_the_run_without_retries_and_with_the_figures(start_salesforce_sim, sqlite_url):
    sim = start_salesforce_sim(seed=2, contacts=500, companies=0, deals=0, client_secret=SECRET, refresh_tokens=(REFRESH,), daily_api_limit=1000)
    sim.add_api_usage(950)
    first = DEFAULT
    with instance_with_integrations() as instance:
        # the first call learns the usage (951 of 1,000), the second would pass the 90% share
        result = dg.materialize([defs.get_assets_def(KEYS[0])], resources=resources(sim, sqlite_url), partition_key=first, instance=instance, raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failures and "of its 1,000 daily API requests" in failures[0].event_specific_data.error.message
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert sim.api_usage()["used"] == 951
