"""Integrations in Dagster: partitions follow the table, the schedule's run syncs every due one, failures stay per store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.integration_partitions import integration_partitions_sensor
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.batch import due_integrations
from crm_pipelines_tests.helpers.dagster import instance_with_integrations

UTC = timezone.utc


def test_partitions_follow_the_integrations_table(sqlite_url):
    store = LocalStore.open(sqlite_url)
    store.integrations.add_store("loja_b")
    added = store.integrations.add("hubspot", store="loja_b", connection={"access_token": {"env": "T"}})
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources={"crm_db": LocalDatabaseResource(url=sqlite_url)}) as context:
            result = integration_partitions_sensor.evaluate_tick(context)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        assert instance.get_dynamic_partitions("hubspot_integrations") == ["loja_b"]
        store.integrations.remove(added)
        with dg.build_sensor_context(instance=instance, resources={"crm_db": LocalDatabaseResource(url=sqlite_url)}) as context:
            result = integration_partitions_sensor.evaluate_tick(context)
        [delete] = result.dynamic_partitions_requests
        assert delete.partitions_def_name == "hubspot_integrations" and list(delete.partition_keys) == ["loja_b"]
    store.dispose()


def test_the_schedule_run_syncs_every_due_integration_and_a_wrong_token_fails_alone(start_hubspot_sim, sqlite_url, monkeypatch):
    now = datetime.now(UTC)
    sims = {key: start_hubspot_sim(seed=40 + i, contacts=30 + i, companies=3, deals=4, tokens=(f"token-{key}",), reference_time=now - timedelta(hours=2), clock_start=now)
            for i, key in enumerate(("loja_a", "loja_b", "loja_c"))}
    monkeypatch.setenv("CRM_SECRET_KEY", "Xr5mXGCrzkyTFyj4ozF16qK0-9_hJRTDwLrwFMpQ5nY=")
    store = LocalStore.open(sqlite_url)
    for key, sim in sims.items():
        store.integrations.add_store(key)
        token = "not-the-token" if key == "loja_c" else f"token-{key}"
        store.integrations.add("hubspot", store=key, connection={"access_token": token, "base_url": sim.base_url})
    resources = {"hubspot": HubSpotResource(access_token="unused", base_url=sims["loja_a"].base_url), "crm_db": LocalDatabaseResource(url=sqlite_url)}
    with instance_with_integrations() as instance:
        result = defs.resolve_job_def("hubspot_incremental").execute_in_process(instance=instance, resources=resources, raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.event_specific_data.error.message
        assert "1 of 3 HubSpot integrations failed" in message and "hubspot/loja_c" in message and "401" in message
        assert "not-the-token" not in message
        logged = [entry.dagster_event for entry in instance.all_logs(result.run_id) if entry.dagster_event]
        materialized = {(e.event_specific_data.materialization.asset_key.to_user_string(), e.event_specific_data.materialization.partition)
                        for e in logged if e.event_type_value == "ASSET_MATERIALIZATION"}
        assert materialized == {(f"hubspot/{entity}", key) for entity in ("contacts", "companies", "deals") for key in ("loja_a", "loja_b")}
        checks = {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.partition, e.event_specific_data.check_name): e.event_specific_data.passed
                  for e in logged if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        assert checks[("hubspot/contacts", "loja_c", "sync_succeeded")] is False
        # Passing checks are one evaluation for the whole run, failing ones one per integration.
        assert ("hubspot/contacts", None, "sync_succeeded") not in checks
        assert checks[("hubspot/deals", None, "error_rate_below_10pct")] is True
    for key in ("loja_a", "loja_b"):
        integration = store.integrations.get("hubspot", key)
        assert set(store.linked_records(integration, "contacts")) == set(sims[key].records("contacts"))
    # Each integration that was tried waits for its cadence before the next tick tries it again.
    assert due_integrations(store, "hubspot", ("contacts", "companies", "deals")) == []
    assert [i.key for i in due_integrations(store, "hubspot", ("contacts",), now=datetime.now(UTC) + timedelta(minutes=29))] == ["loja_a", "loja_b", "loja_c"]
    store.dispose()
