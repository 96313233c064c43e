"""Real Dagster runs of the Shopify import assets against the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import build_definitions
from crm_pipelines.providers.shopify.resource import ShopifyResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

TOKEN = "shpat_dagster_secret_token_42"
UTC = timezone.utc
KEYS = [dg.AssetKey(["shopify", e]) for e in ("contacts", "companies", "deals")]


@pytest.fixture
def sim_for(start_shopify_sim):
    def _start(**overrides):
        # Seeded history ends two hours ago, so the current window holds only the test's own changes.
        now = datetime.now(UTC)
        return start_shopify_sim(**({"seed": 11, "customers": 800, "orders": 120, "companies": 30, "tokens": (TOKEN,), "plan": "plus",
                                     "reference_time": now - timedelta(hours=2), "clock_start": now} | overrides))

    return _start


def run(defs, sim, db_url, instance, partition_key, sweep="daily"):
    resources = {"shopify": ShopifyResource(access_token=TOKEN, base_url=sim.base_url, plan="plus"), "crm_db": LocalDatabaseResource(url=db_url)}
    run_config = {"ops": {f"shopify__{e}": {"config": {"sweep_archived": sweep}} for e in ("contacts", "companies", "deals")}}
    result = dg.materialize([defs.get_assets_def(k) for k in KEYS], resources=resources, partition_key=partition_key, instance=instance, run_config=run_config)
    assert result.success
    out = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        out[m.asset_key.to_user_string()] = {k: v.value for k, v in m.metadata.items()}
    return out


def first_key():
    return DEFAULT


def test_initial_sync_then_incremental_run(sim_for, sqlite_url):
    sim = sim_for()
    defs = build_definitions()
    with instance_with_integrations() as instance:
        meta = run(defs, sim, sqlite_url, instance, first_key())
        assert meta["shopify/contacts"]["created"] == 800
        assert meta["shopify/companies"]["created"] == 30
        assert meta["shopify/deals"]["created"] == 120
        assert meta["shopify/contacts"]["read_from"] == "beginning"

        changed = sim.modify("contacts", n=25)
        new = sim.create("deals", 4)
        gone = sim.delete("contacts", 3)
        meta = run(defs, sim, sqlite_url, instance, DEFAULT, sweep="always")
        assert meta["shopify/contacts"]["fetched"] == len(set(changed) - set(gone))
        assert meta["shopify/contacts"]["deleted"] == 3
        assert meta["shopify/deals"]["created"] == len(new) == 4
        assert meta["shopify/companies"]["fetched"] == 0

        store = LocalStore.open(sqlite_url)
        for entity in ("contacts", "companies", "deals"):
            assert set(store.linked_records("shopify", entity)) == set(sim.records(entity))
        assert not set(gone) & set(store.linked_records("shopify", "contacts"))
        store.dispose()

        for past in instance.get_runs():
            for entry in instance.all_logs(past.run_id):
                assert TOKEN not in str(entry)


def test_store_without_b2b_skips_companies_and_syncs_the_rest(sim_for, sqlite_url):
    sim = sim_for(b2b=False, customers=100, orders=20)
    with instance_with_integrations() as instance:
        meta = run(build_definitions(), sim, sqlite_url, instance, first_key())
    assert "B2B" in meta["shopify/companies"]["skipped"]
    assert meta["shopify/contacts"]["created"] == 100 and meta["shopify/deals"]["created"] == 20
