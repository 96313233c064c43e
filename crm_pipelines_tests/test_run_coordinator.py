"""Runs launched from anywhere (asset pages, backfills, sensors) carry the provider, integration and priority tags."""

from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from crm_pipelines.dagster_defs.coordinator import CrmRunCoordinator, crm_tags

ROOT = Path(__file__).resolve().parents[1]


def run(tags=None, keys=()):
    return DagsterRun(job_name="__ASSET_JOB", run_id="r1", tags=tags or {}, asset_selection=frozenset(dg.AssetKey(k) for k in keys) or None)


def test_a_backfill_from_an_asset_page_gets_provider_integration_and_low_priority():
    tags = crm_tags(run({"dagster/partition": "loja_b", "dagster/backfill": "bf1"}, [["hubspot", "contacts"], ["hubspot", "deals"]]))
    assert tags == {"crm/provider": "hubspot", "crm/integration": "loja_b", "dagster/priority": "-5"}


def test_webhook_runs_go_first_and_tags_already_set_are_kept():
    assert crm_tags(run({"crm/trigger": "webhook", "crm/provider": "bling", "dagster/partition": "x"}))["dagster/priority"] == "10"
    assert crm_tags(run({"crm/trigger": "schedule", "crm/provider": "bling", "crm/integration": "x"})) == {"dagster/priority": "5"}
    assert crm_tags(run({"dagster/priority": "3", "crm/provider": "bling", "crm/integration": "x"})) == {}
    assert crm_tags(run({}, [["pipedrive", "contacts_export"]]))["dagster/priority"] == "-5"
    assert crm_tags(run({}, [["local", "contacts"]])) == {"dagster/priority": "0"}


def test_the_instance_uses_the_coordinator_from_the_project_settings(tmp_path):
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert isinstance(instance.run_coordinator, CrmRunCoordinator)
    production = (ROOT / "deploy" / "production" / "dagster.yaml").read_text()
    assert "CrmRunCoordinator" in production and "free_slots_after_run_end_seconds" in production
