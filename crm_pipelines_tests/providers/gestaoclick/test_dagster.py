"""Real Dagster runs of the GestaoClick import and export assets against the simulator."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import build_definitions
from crm_pipelines.providers.gestaoclick import PLUGIN
from crm_pipelines.providers.gestaoclick.reader import STRATEGY
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations, metadata_by_asset

ACCESS = "dagster-gc-access-token-7731"
SECRET = "dagster-gc-secret-token-9902"
UTC = timezone.utc
KEYS = [dg.AssetKey(["gestaoclick", e]) for e in ("contacts", "companies", "deals")]


@pytest.fixture
def sim(start_gestaoclick_sim, monkeypatch):
    simulator = start_gestaoclick_sim(seed=11, contacts=90, companies=25, deals=30, credentials=((ACCESS, SECRET),))  # real limits: 3/s
    monkeypatch.setenv("GESTAOCLICK_ACCESS_TOKEN", ACCESS)
    monkeypatch.setenv("GESTAOCLICK_SECRET_ACCESS_TOKEN", SECRET)
    monkeypatch.setenv("GESTAOCLICK_BASE_URL", simulator.base_url)
    return simulator


def test_import_assets_scan_everything_and_propagate_deletions(sim, sqlite_url):
    defs = build_definitions()
    assets = [defs.get_assets_def(key) for key in KEYS]
    # The plugin's own resource, configured from the environment like in production.
    resources = {"gestaoclick": PLUGIN.default_resource(), "crm_db": LocalDatabaseResource(url=sqlite_url)}
    first = DEFAULT
    with instance_with_integrations() as instance:
        result = dg.materialize(assets, resources=resources, partition_key=first, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert [meta[f"gestaoclick/{e}"]["created"] for e in ("contacts", "companies", "deals")] == [90, 25, 30]
        assert meta["gestaoclick/contacts"]["strategy"] == STRATEGY == "full scan (no modification filter)"
        assert meta["gestaoclick/contacts"]["failed"] == 0  # a 429 under load is retried, never a lost record

        sim.modify("contacts", 4)
        gone = sim.delete("companies", 3)
        sim.create("deals", 2)
        result = dg.materialize(assets, resources=resources, partition_key=DEFAULT, instance=instance)
        assert result.success
        meta = metadata_by_asset(result)
        assert (meta["gestaoclick/contacts"]["updated"], meta["gestaoclick/contacts"]["unchanged"]) == (4, 86)
        assert meta["gestaoclick/companies"]["deleted"] == len(gone) == 3
        assert meta["gestaoclick/deals"]["created"] == 2
        assert meta["gestaoclick/contacts"]["failed"] == 0  # a 429 under load is retried, never a lost record

        store = LocalStore.open(sqlite_url)
        for entity in ("contacts", "companies", "deals"):
            assert set(store.linked_records("gestaoclick", entity)) == set(sim.records(entity))
        store.dispose()

        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                assert ACCESS not in str(entry) and SECRET not in str(entry)


def test_export_asset_creates_clientes(sim, sqlite_url):
    from sqlalchemy import insert

    from crm_pipelines.storage.schema import contacts

    store = LocalStore.open(sqlite_url)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"exportado{i}@exemplo.com.br", "first_name": "Estêvão", "last_name": f"Simões {i}", "created_at": now, "updated_at": now} for i in range(7)])
    defs = build_definitions()
    resources = {"gestaoclick": PLUGIN.default_resource(), "crm_db": LocalDatabaseResource(url=sqlite_url)}
    with instance_with_integrations() as instance:
        result = dg.materialize([defs.get_assets_def(dg.AssetKey(["gestaoclick", "contacts_export"]))], resources=resources, instance=instance, partition_key=DEFAULT)
        assert result.success
    assert sim.count("contacts") == 97
    assert len(store.linked_records("gestaoclick", "contacts")) == 7
    store.dispose()
