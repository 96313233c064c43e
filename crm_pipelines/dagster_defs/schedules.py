"""Jobs and the 30-minute incremental schedule of each provider."""

import os

import dagster as dg

from crm_pipelines.dagster_defs.imports import ERROR_RATE_CHECK, import_asset_key
from crm_pipelines.dagster_defs.partitions import closed_window_key
from crm_pipelines.providers.registry import ProviderPlugin


def import_job_name(provider: str) -> str:
    return f"{provider}_import"


def build_import_job(plugin: ProviderPlugin):
    keys = [import_asset_key(plugin.name, e) for e in plugin.entities]
    return dg.define_asset_job(
        import_job_name(plugin.name),
        # The error-rate check comes with every run; the count check costs a provider call and runs on its own.
        selection=dg.AssetSelection.assets(*keys).without_checks() | dg.AssetSelection.checks(*[dg.AssetCheckKey(k, ERROR_RATE_CHECK) for k in keys]),
        description=f"Import {plugin.title} {', '.join(plugin.entities)} for a window (one run for all entities).",
        tags={"crm/provider": plugin.name},
    )


def export_job_name(provider: str) -> str:
    return f"{provider}_export"


def build_export_job(plugin: ProviderPlugin):
    from crm_pipelines.dagster_defs.exports import export_asset_key

    return dg.define_asset_job(
        export_job_name(plugin.name),
        selection=dg.AssetSelection.assets(*[export_asset_key(plugin.name, e) for e in plugin.entities]),
        description=f"Send local changes of {', '.join(plugin.entities)} to {plugin.title}.",
        tags={"crm/provider": plugin.name},
    )


#: Every 30 minutes, as the partitions. A tighter cadence (``CRM_INCREMENTAL_CRON="*/10 * * * *"``)
#: re-runs the last closed window until the next one closes; the run key makes each window one run.
INCREMENTAL_CRON = os.environ.get("CRM_INCREMENTAL_CRON", "*/30 * * * *")


def build_incremental_schedule(plugin: ProviderPlugin, job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{plugin.name}_incremental",
        cron_schedule=INCREMENTAL_CRON,
        job=job,
        execution_timezone="UTC",
        description=f"Every 30 minutes, import the {plugin.title} changes of the window that just closed.",
    )
    def _incremental(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = closed_window_key(context.scheduled_execution_time)
        return dg.RunRequest(partition_key=key, run_key=f"{plugin.name}:{key}", tags={"crm/trigger": "schedule"})

    return _incremental
