"""Asset checks on the HubSpot imports: error rate and count reconciled with the provider."""

import dagster as dg
import httpx

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

TOKEN = "checks-token"
KEY = dg.AssetKey(["hubspot", "contacts"])


def resources(sim, url):
    return {"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=url)}


def checks_of(result):
    return {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_import_job_runs_the_error_rate_check_not_the_count_check(start_hubspot_sim, sqlite_url):
    sim = start_hubspot_sim(seed=20, contacts=20, companies=5, deals=5, tokens=(TOKEN,))
    with instance_with_integrations() as instance:
        result = defs.resolve_job_def("hubspot_import").execute_in_process(
            instance=instance, partition_key=DEFAULT, resources=resources(sim, sqlite_url))
    evaluated = [(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name) for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert sorted(evaluated) == [(f"hubspot/{e}", name) for e in ("companies", "contacts", "deals") for name in ("error_rate_below_10pct", "sync_succeeded")]
    assert all(checks_of(result)[name].passed for name in {"error_rate_below_10pct"})


def test_error_rate_check_fails_above_10_percent(start_hubspot_sim, sqlite_url):
    sim = start_hubspot_sim(seed=21, contacts=50, companies=0, deals=0, tokens=(TOKEN,))
    for record_id in sorted(sim.records("contacts"), key=int)[:6]:  # 12% invalid
        httpx.patch(f"{sim.base_url}/crm/v3/objects/contacts/{record_id}", json={"properties": {"cpf_cnpj": "111.222.333-44"}},
                    headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    with instance_with_integrations() as instance:
        result = dg.materialize([defs.get_assets_def(KEY)], resources=resources(sim, sqlite_url), partition_key=DEFAULT, instance=instance)
    check = checks_of(result)["error_rate_below_10pct"]
    assert check.passed is False
    assert check.metadata["failed"].value == 6 and check.metadata["error_rate"].value == 0.12


def test_count_check_passes_when_reconciled_and_fails_when_behind(start_hubspot_sim, sqlite_url):
    sim = start_hubspot_sim(seed=22, contacts=80, companies=0, deals=0, tokens=(TOKEN,))
    check_def = next(c for c in defs.asset_checks if any(k.name == "count_matches_provider" and k.asset_key == KEY for k in c.check_keys))
    with instance_with_integrations() as instance:
        dg.materialize([defs.get_assets_def(KEY)], resources=resources(sim, sqlite_url), partition_key=DEFAULT, instance=instance)
        ok = dg.materialize([defs.get_assets_def(KEY), check_def], resources=resources(sim, sqlite_url), instance=instance, selection=dg.AssetSelection.checks(check_def))
        sim.create("contacts", 3)
        behind = dg.materialize([defs.get_assets_def(KEY), check_def], resources=resources(sim, sqlite_url), instance=instance, selection=dg.AssetSelection.checks(check_def))
    assert checks_of(ok)["count_matches_provider"].passed is True
    result = checks_of(behind)["count_matches_provider"]
    assert result.passed is False and result.metadata["difference"].value == -3
