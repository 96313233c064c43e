"""The quality report asset: one integration's report as UI metadata (figures, tables, markdown) and threshold checks."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.partitions import integration_partitions_name
from crm_pipelines.dagster_defs.quality import build_quality_asset
from crm_pipelines.providers.registry import plugin
from crm_pipelines.quality.checks import CHECKS
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers import planted as p


def _materialize(url: str, partition: str, run_config: dict | None = None):
    asset = build_quality_asset(plugin("hubspot"), "contacts")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(integration_partitions_name("hubspot"), ["loja_a", "loja_b"])
        result = dg.materialize([asset], partition_key=partition, instance=instance, run_config=run_config,
                                resources={DB_RESOURCE_KEY: LocalDatabaseResource(url=url)}, raise_on_error=False)
        events = result.get_asset_materialization_events()
        metadata = {k: v for k, v in events[0].event_specific_data.materialization.metadata.items()} if events else {}
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        return result, metadata, checks


def test_the_quality_asset_shows_the_report_and_fails_checks_over_thresholds(sqlite_url):
    store = LocalStore.open(sqlite_url)
    p.plant(store, 8_000)
    store.dispose()

    result, metadata, checks = _materialize(sqlite_url, "loja_a")
    assert result.success
    figures = {k: v.value for k, v in metadata.items()}
    assert (figures["records"], figures["invalid/phone"], figures["orphans"], figures["stale"], figures["provider_differences"]) == (7_970, 200, 30, 20, 3)
    assert figures["duplicate_groups/email"] == figures["duplicate_groups/document"] == 50
    assert figures["dagster/row_count"] == 7_970
    assert isinstance(metadata["orphans"], dg.IntMetadataValue) and isinstance(metadata["completeness/company_name"], dg.FloatMetadataValue)
    orphans = metadata["table/orphans"]
    assert isinstance(orphans, dg.TableMetadataValue)
    assert [r.data["local_id"] for r in orphans.records] == list(p.ORPHANS)[:10]
    assert [c.name for c in orphans.schema.columns] == ["local_id", "external_id", "deleted_there_at"]
    assert "| orphans (deleted at the provider, live here) | 30 |" in metadata["summary"].value

    assert set(checks) == set(CHECKS)
    assert {name for name, c in checks.items() if not c.passed} == {"valid_values", "few_duplicates", "no_orphans", "not_stale"}
    assert "30 live records were deleted at the provider" in checks["no_orphans"].description
    assert checks["providers_agree"].passed and checks["complete_fields"].passed

    # Thresholds come from the integration's settings; the run config overrides the stale threshold.
    store = LocalStore.open(sqlite_url)
    store.integrations.update(store.integrations.get("hubspot", "loja_a"), settings={"quality": {"max_orphans": 30, "max_provider_differences": 2}})
    store.dispose()
    config = {"ops": {"hubspot__contacts_quality": {"config": {"stale_after_hours": 24 * 5}}}}
    result, metadata, checks = _materialize(sqlite_url, "loja_a", config)
    assert result.success and metadata["stale"].value == 0
    assert checks["no_orphans"].passed and checks["not_stale"].passed and not checks["providers_agree"].passed


def test_an_unknown_partition_fails_with_its_reason(sqlite_url):
    LocalStore.open(sqlite_url).dispose()
    result, _metadata, _checks = _materialize(sqlite_url, "loja_b")
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "loja_b" in failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data.description)
