"""Real Dagster runs of the Pipedrive import assets against the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import build_definitions
from crm_pipelines.providers.pipedrive.resource import PipedriveResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations, metadata_by_asset

TOKEN = "dagster-pipedrive-secret-token-7"
UTC = timezone.utc
KEYS = [dg.AssetKey(["pipedrive", e]) for e in ("contacts", "companies", "deals")]


def test_initial_then_incremental_materialization(start_pipedrive_sim, sqlite_url, monkeypatch):
    now = datetime.now(UTC)
    sim = start_pipedrive_sim(seed=11, persons=1500, organizations=120, deals=200, tokens=(TOKEN,), reference_time=now - timedelta(hours=2), clock_start=now, burst_limit=200)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", TOKEN)
    monkeypatch.setenv("PIPEDRIVE_BASE_URL", sim.base_url)
    monkeypatch.setenv("PIPEDRIVE_BURST_LIMIT", "200")
    defs = build_definitions()
    assert isinstance(defs.resources["pipedrive"], PipedriveResource)
    assets = [defs.get_assets_def(key) for key in KEYS]
    resources = {"pipedrive": defs.resources["pipedrive"], "crm_db": LocalDatabaseResource(url=sqlite_url)}
    first = DEFAULT
    with instance_with_integrations() as instance:
        result = dg.materialize(assets, resources=resources, partition_key=first, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert (meta["pipedrive/contacts"]["created"], meta["pipedrive/companies"]["created"], meta["pipedrive/deals"]["created"]) == (1500, 120, 200)
        assert meta["pipedrive/contacts"]["strategy"] == "list" and meta["pipedrive/contacts"]["failed"] == 0

        sim.modify("persons", n=25)
        sim.delete("deals", 3)
        new = sim.create("organizations", 4)
        result = dg.materialize(assets, resources=resources, partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert meta["pipedrive/contacts"]["strategy"] == "delta"
        assert meta["pipedrive/contacts"]["fetched"] == 25
        assert meta["pipedrive/companies"]["created"] == len(new) == 4
        assert meta["pipedrive/contacts"]["api_calls"] <= 3  # custom fields + one page (+ the id sweep on a daily window)

        store = LocalStore.open(sqlite_url)
        for entity, path in (("contacts", "persons"), ("companies", "organizations"), ("deals", "deals")):
            assert set(store.linked_records("pipedrive", entity)) == set(sim.records(path))
        store.dispose()
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                assert TOKEN not in str(entry)
