"""Quality report assets: ``hubspot/contacts_quality`` and so on, a partition per integration.

Each materialization reads the local database only (no provider is called) and records the
integration's report (:mod:`crm_pipelines.quality`): its figures as numbers the UI plots over
time, a markdown summary, one table per finding, and checks that fail on the thresholds set in
the integration's ``quality`` settings. The daily schedule of each provider (stopped until turned
on) reports on every active integration.
"""

import dagster as dg
from pydantic import Field

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.dagster_defs.imports import import_asset_key
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.partitions import integration_partitions
from crm_pipelines.dagster_defs.schedules import provider_job
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.quality.checks import CHECKS, evaluate
from crm_pipelines.quality.model import QualityReport
from crm_pipelines.quality.reports import QualityReporter

QUALITY_CRON = "0 6 * * *"


class QualityConfig(dg.Config):
    """Run options of a report; unset ones come from the integration's quality settings."""

    stale_after_hours: float | None = Field(default=None, gt=0, description="Report local changes not synced for longer than this (default: the integration's, else 24).")
    examples: int | None = Field(default=None, ge=0, le=1000, description="Example records listed per finding (default: the integration's, else 10).")


def quality_asset_key(provider: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([provider, f"{entity}_quality"])


def frame_metadata(frame) -> dg.TableMetadataValue:
    """A small pandas frame as a table the UI shows."""
    types = {"int64": "int", "float64": "float", "bool": "bool"}
    schema = dg.TableSchema(columns=[dg.TableColumn(str(name), types.get(str(dtype), "string")) for name, dtype in frame.dtypes.items()])
    records = [dg.TableRecord({str(k): ("" if v is None else v) for k, v in row.items()}) for row in frame.astype(object).to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def quality_metadata(report: QualityReport) -> dict:
    metadata: dict = {"summary": dg.MetadataValue.md(report.markdown()), "store": report.store, "dagster/row_count": report.records,
                      "report_seconds": round(report.seconds, 3)}
    metadata |= report.figures()
    metadata |= {f"table/{kind}": frame_metadata(frame) for kind, frame in report.frames().items()}
    return metadata


def build_quality_asset(plugin: ProviderPlugin, entity: str) -> dg.AssetsDefinition:
    key = quality_asset_key(plugin.name, entity)

    @dg.asset(
        key=key,
        group_name=plugin.name,
        description=f"Data quality of the {plugin.title} integration's {entity} in the local database: completeness, invalid values, duplicates, "
                    "orphans, stale records and differences with the store's other integrations. Reads the local database only.",
        partitions_def=integration_partitions(plugin.name),
        deps=[import_asset_key(plugin.name, entity)],
        kinds={"sql", "pandas"},
        tags={"crm/provider": plugin.name, "crm/direction": "report"},
        required_resource_keys={DB_RESOURCE_KEY},
        # Not partitioned (partitioned checks are a preview feature): each evaluation names its integration.
        check_specs=[dg.AssetCheckSpec(name, asset=key, description=description) for name, description in CHECKS.items()],
    )
    def _quality(context: dg.AssetExecutionContext, config: QualityConfig) -> dg.MaterializeResult:
        store = getattr(context.resources, DB_RESOURCE_KEY).store()
        try:
            integration = store.integrations.get(plugin.name, context.partition_key)
        except ConfigurationError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        overrides = config.model_dump(exclude_none=True)
        thresholds = integration.settings.quality.model_copy(update=overrides)
        report = QualityReporter(store).report(integration, entity, thresholds)
        context.log.info("%s %s: %d records reported in %.1f s", integration.label, entity, report.records, report.seconds)
        checks = [dg.AssetCheckResult(check_name=o.name, passed=o.passed, description=o.description,
                                      metadata={"integration": integration.label, **o.figures}) for o in evaluate(report, thresholds)]
        return dg.MaterializeResult(metadata=quality_metadata(report), check_results=checks)

    return _quality


def build_quality_assets(plugin: ProviderPlugin) -> list[dg.AssetsDefinition]:
    return [build_quality_asset(plugin, entity) for entity in plugin.entities]


def quality_job_name(provider: str) -> str:
    return f"{provider}_quality"


def build_quality_job(plugin: ProviderPlugin) -> dg.JobDefinition:
    return provider_job(
        plugin, quality_job_name(plugin.name),
        dg.AssetSelection.assets(*[quality_asset_key(plugin.name, e) for e in plugin.entities]),
        f"Report the data quality of one {plugin.title} integration (the partition) from the local database.",
        direction="report",
    )


def build_quality_schedule(plugin: ProviderPlugin, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"{plugin.name}_quality_daily", cron_schedule=QUALITY_CRON, job=job, required_resource_keys={DB_RESOURCE_KEY},
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Every day at 06:00 UTC, the quality report of each active {plugin.title} integration (turn it on to plot the figures over time).")
    def _daily(context: dg.ScheduleEvaluationContext):
        store = getattr(context.resources, DB_RESOURCE_KEY).store()
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        requests = [dg.RunRequest(run_key=f"{i.key}-{day}", partition_key=i.key) for i in store.integrations.list(provider=plugin.name, active_only=True)]
        return requests or dg.SkipReason(f"no active {plugin.title} integration")

    return _daily


__all__ = ["QualityConfig", "build_quality_assets", "build_quality_job", "build_quality_schedule", "quality_asset_key", "quality_metadata"]
