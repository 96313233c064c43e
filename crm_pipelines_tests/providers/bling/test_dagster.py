"""A real Dagster materialization of the Bling import assets against the simulator; the webhook sensor's mapping."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.webhook_sensors import targeted_run_request
from crm_pipelines.definitions import build_definitions
from crm_pipelines.providers.bling import PLUGIN
from crm_pipelines.providers.bling.resource import BlingResource
from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations


def test_import_assets_materialize_against_the_simulator(start_bling_sim, sqlite_url, monkeypatch):
    sim = start_bling_sim(contacts=300, companies=40, deals=25)
    monkeypatch.setenv("BLING_CLIENT_ID", DEFAULT_CLIENT_ID)
    monkeypatch.setenv("BLING_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    monkeypatch.setenv("BLING_REFRESH_TOKEN", DEFAULT_REFRESH_TOKEN)
    defs = build_definitions()
    assets = [defs.get_assets_def(dg.AssetKey(["bling", e])) for e in ("contacts", "companies", "deals")]
    resource = BlingResource(client_id=dg.EnvVar("BLING_CLIENT_ID"), client_secret=dg.EnvVar("BLING_CLIENT_SECRET"),
                             refresh_token=dg.EnvVar("BLING_REFRESH_TOKEN"), base_url=sim.base_url + "/Api/v3", per_second=1000)
    with instance_with_integrations() as instance:
        first = DEFAULT
        result = dg.materialize(assets, resources={"bling": resource, "crm_db": LocalDatabaseResource(url=sqlite_url)}, partition_key=first, instance=instance)
    assert result.success
    created = {e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization.metadata["created"].value
               for e in result.get_asset_materialization_events()}
    assert created == {"bling/contacts": 300, "bling/companies": 40, "bling/deals": 25}


def test_a_contact_event_is_synced_for_persons_and_companies(monkeypatch):
    rows = [{"id": 1, "object_type": "contact", "object_id": "17000000005"}, {"id": 2, "object_type": "order", "object_id": "21000000001"}]
    request = targeted_run_request(PLUGIN, rows)
    ids = request.run_config["ops"]["bling__sync_ids"]["config"]["ids"]
    assert ids == {"companies": ["17000000005"], "contacts": ["17000000005"], "deals": ["21000000001"]}
