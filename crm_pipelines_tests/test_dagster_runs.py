"""Real Dagster runs of the HubSpot import assets against the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.mapping import parse_timestamp
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations, metadata_by_asset

TOKEN = "dagster-test-secret-token-42"
UTC = timezone.utc
KEYS = [dg.AssetKey(["hubspot", e]) for e in ("contacts", "companies", "deals")]


@pytest.fixture
def sim():
    # Seeded history ends two hours ago, so the current window holds only the test's own changes.
    now = datetime.now(UTC)
    config = HubSpotSimConfig(seed=11, contacts=2000, companies=150, deals=300, tokens=(TOKEN,), reference_time=now - timedelta(hours=2), clock_start=now)
    simulator = HubSpotSimulator(config)
    simulator.start()
    yield simulator
    simulator.stop()


def assets():
    return [defs.get_assets_def(key) for key in KEYS]


def resources(sim, db_url):
    return {"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=db_url)}


def test_initial_sync_then_incremental_run(sim, sqlite_url):
    """The first run of an integration reads every record; the next one only what changed since."""
    with instance_with_integrations() as instance:
        result = dg.materialize(assets(), resources=resources(sim, sqlite_url), partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert meta["hubspot/contacts"]["created"] == 2000
        assert meta["hubspot/companies"]["created"] == 150
        assert meta["hubspot/deals"]["created"] == 300
        assert meta["hubspot/contacts"]["strategy"] == "list"
        assert meta["hubspot/contacts"]["failed"] == 0  # a 429 under load is retried, never a lost record
        assert meta["hubspot/contacts"]["dagster/row_count"] == 2000
        assert meta["hubspot/contacts"]["read_from"] == "beginning"

        sim.modify("contacts", n=25)
        new = sim.create("deals", 4)
        gone = sim.archive("companies", 3)
        result = dg.materialize(assets(), resources=resources(sim, sqlite_url), partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert meta["hubspot/contacts"]["strategy"] == "search"
        assert meta["hubspot/contacts"]["fetched"] == 25
        assert meta["hubspot/contacts"]["updated"] + meta["hubspot/contacts"]["unchanged"] == 25
        assert meta["hubspot/deals"]["created"] == len(new) == 4
        # deletions arrive with the next run, not a day later
        assert meta["hubspot/companies"]["deleted"] == len(gone) == 3
        # an incremental run with few changes costs a handful of calls, not a scan
        assert meta["hubspot/contacts"]["api_calls"] <= 3

        store = LocalStore.open(sqlite_url)
        for entity in ("contacts", "companies", "deals"):
            assert set(store.linked_records("hubspot", entity)) == set(sim.records(entity))
        store.dispose()

        # partition health: after the initial sync and one catch-up the integration's partition
        # reads as materialized on every asset, and the row count is this integration's own
        for key in KEYS:
            assert instance.get_materialized_partitions(key) == {DEFAULT}
        assert meta["hubspot/deals"]["dagster/row_count"] == 304

        # secrets never reach the event log
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                assert TOKEN not in str(entry)


def test_backfill_of_a_past_window_imports_exactly_that_window(sim, sqlite_url):
    """A run given a window re-reads that window only: one run for the whole range, one integration."""
    remote = sim.records("contacts")
    stamps = sorted(parse_timestamp(o["updatedAt"]) for o in remote.values())
    middle = stamps[len(stamps) // 2]
    start = middle.replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    end = start + timedelta(hours=12)
    lower = start - timedelta(minutes=5)  # the configured overlap
    expected = {i for i, o in remote.items() if lower <= parse_timestamp(o["updatedAt"]) < end}
    assert expected, "the chosen window should hold some records"
    config = {"ops": {"hubspot__contacts": {"config": {"window_start": start.strftime("%Y-%m-%d-%H:%M"), "window_end": end.strftime("%Y-%m-%d-%H:%M")}}}}

    with instance_with_integrations() as instance:
        result = dg.materialize([defs.get_assets_def(KEYS[0])], resources=resources(sim, sqlite_url), partition_key=DEFAULT, run_config=config, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)["hubspot/contacts"]
    assert meta["strategy"] == "search"
    assert meta["window_start"] == start.isoformat() and meta["window_end"] == end.isoformat()
    store = LocalStore.open(sqlite_url)
    assert set(store.linked_records("hubspot", "contacts")) == expected
    store.dispose()


def test_daily_quota_fails_the_run_without_retries_and_with_a_clear_message(sqlite_url):
    with HubSpotSimulator(HubSpotSimConfig(seed=2, contacts=500, companies=0, deals=0, tokens=(TOKEN,), daily_limit=2)) as simulator:
        with instance_with_integrations() as instance:
            result = dg.materialize([defs.get_assets_def(KEYS[0])], resources=resources(simulator, sqlite_url), partition_key=DEFAULT, instance=instance, raise_on_error=False)
            assert not result.success
            failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            assert failures and "daily" in failures[0].event_specific_data.error.message.lower()
            assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
            for entry in instance.all_logs(result.run_id):
                assert TOKEN not in str(entry)
