"""Real Dagster runs of the HubSpot export assets (select -> send slices -> summarize)."""

from datetime import datetime, timezone

import dagster as dg
import pytest
from sqlalchemy import insert

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

TOKEN = "dagster-export-token"
KEY = dg.AssetKey(["hubspot", "contacts_export"])
OP = "hubspot__contacts_export"


@pytest.fixture
def sim():
    with HubSpotSimulator(HubSpotSimConfig(seed=4, contacts=0, companies=0, deals=0, tokens=(TOKEN,))) as simulator:
        yield simulator


def seed_local(url, n):
    store = LocalStore.open(url)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"cliente{i}@loja.com.br", "first_name": "Antônio", "created_at": now, "updated_at": now} for i in range(n)])
    return store


def run_export(sim, url, instance, **config):
    run_config = {"ops": {OP: {"config": config}}} if config else None
    return dg.materialize(
        [defs.get_assets_def(KEY)],
        resources={"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=url)},
        instance=instance,
        run_config=run_config,
        partition_key=DEFAULT,
    )


def export_metadata(result):
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def test_export_fans_out_in_slices_and_a_second_run_sends_nothing(sim, sqlite_url):
    store = seed_local(sqlite_url, 350)
    with instance_with_integrations() as instance:
        dry = export_metadata(run_export(sim, sqlite_url, instance, dry_run=True, slice_size=100))
        assert dry["dry_run"] is True and dry["would_create"] == 350
        assert sim.count("contacts") == 0

        result = run_export(sim, sqlite_url, instance, slice_size=100)
        assert result.success
        sends = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and f"{OP}__send[slice_" in e.step_key]
        assert len(sends) == 4  # 350 records in slices of 100
        meta = export_metadata(result)
        assert meta["created"] == 350 and meta["rejected"] == 0 and meta["unchanged"] == 0
        assert meta["write_calls"] == 4
        assert sim.count("contacts") == 350

        again = export_metadata(run_export(sim, sqlite_url, instance))
        assert again["selected"] == 0 and again["write_calls"] == 0 and again["unchanged"] == 350
        for entry in instance.all_logs(result.run_id):
            assert TOKEN not in str(entry)
    assert len(store.linked_records("hubspot", "contacts")) == 350
    store.dispose()
