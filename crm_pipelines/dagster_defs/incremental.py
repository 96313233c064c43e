"""The incremental schedule of each provider: one run per tick syncs every due integration.

A run per integration would cost each store a process start (seconds of CPU) every 30 minutes;
one run per provider and tick syncs all its due integrations a few at a time
(:mod:`crm_pipelines.sync.batch`) and records, for each, the materialization of its partition of
every import asset, with that integration's figures, and its error-rate check. An integration
whose sync fails gets a failed ``sync_succeeded`` check with the provider's message on its
partition; the others are recorded as usual, and the run fails at the end naming the failures,
so the alert names them too.
"""


import logging
import os

import dagster as dg
from pydantic import Field

from crm_pipelines.dagster_defs.imports import (
    ImportConfig,
    error_rate_check,
    import_asset_key,
    import_metadata,
    import_once,
)
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.job_records import interrupt_if_cancelled, step_progress
from crm_pipelines.dagster_defs.partitions import integration_partitions_name, window_key
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.sync.batch import due_integrations, sync_integrations
from crm_pipelines.sync.check_names import ERROR_RATE_CHECK, SYNC_CHECK

log = logging.getLogger(__name__)

#: Every 30 minutes by default; an integration's ``cadence_minutes`` can only be a multiple of it.
INCREMENTAL_CRON = os.environ.get("CRM_INCREMENTAL_CRON", "*/30 * * * *")


class IncrementalConfig(dg.Config):
    """Which integrations a tick syncs (default: every active one whose cadence has come)."""

    integrations: list[str] = Field(default_factory=list, description="Integration keys to sync now, due or not (default: the due ones).")
    max_parallel: int = Field(default=4, ge=1, le=32, description="Integrations synced at once (each within its own account's budget).")


def incremental_job_name(provider: str) -> str:
    return f"{provider}_incremental"


def _check_event(plugin: ProviderPlugin, entity: str, partition: str | None, name: str, passed: bool, description: str | None, metadata: dict) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=import_asset_key(plugin.name, entity), check_name=name, passed=passed, partition=partition,
        metadata=metadata, description=description, severity=dg.AssetCheckSeverity.ERROR,
    )


def build_incremental_job(plugin: ProviderPlugin) -> dg.JobDefinition:
    @dg.op(name=f"{plugin.name}__sync_due_integrations", required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY}, pool=f"{plugin.name}_api")
    def sync_due(context: dg.OpExecutionContext, config: IncrementalConfig) -> dict:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        if config.integrations:
            chosen = [store.integrations.get(plugin.name, key) for key in config.integrations]
        else:
            chosen = due_integrations(store, plugin.name, plugin.entities)
        known = set(context.instance.get_dynamic_partitions(integration_partitions_name(plugin.name)))
        missing = sorted({i.key for i in chosen} - known)
        if missing:
            context.instance.add_dynamic_partitions(integration_partitions_name(plugin.name), missing)
        context.log.info("%d %s integrations to sync: %s", len(chosen), plugin.title, ", ".join(i.key for i in chosen) or "none")
        job = step_progress(context, db, kind="sync", integration=None, provider=plugin.name, entities=plugin.entities,
                            params={"integrations": [i.key for i in chosen]})
        import_config = ImportConfig()
        failures: list[str] = []
        figures = {"integrations": len(chosen), "failed": 0, "fetched": 0, "created": 0, "updated": 0}

        def sync_one(integration, entity):
            # Each integration's progress lines go to the run's captured logs, not one event each:
            # the events a tick writes are what it costs per integration.
            return import_once(context, store, plugin, integration, entity, import_config, db, logger=log)

        failed_checks: set[tuple[str, str]] = set()
        for done in sync_integrations(chosen, plugin.entities, sync_one, max_workers=config.max_parallel, logger=log):
            partition = done.integration.key
            for entity, result in done.results.items():
                context.log_event(dg.AssetMaterialization(asset_key=import_asset_key(plugin.name, entity), partition=partition,
                                                          metadata=import_metadata(store, done.integration, entity, result)))
                check = error_rate_check(result)
                if not check.passed:
                    failed_checks.add((entity, ERROR_RATE_CHECK))
                    context.log_event(_check_event(plugin, entity, partition, ERROR_RATE_CHECK, False, check.description, check.metadata))
                figures["fetched"] += result.fetched
                figures["created"] += result.outcome.created
                figures["updated"] += result.outcome.updated
            for entity, reason in done.skipped.items():
                log.warning("%s %s skipped: %s", done.integration.label, entity, reason)
            for entity, message in done.errors.items():
                context.log.error("%s %s failed: %s", done.integration.label, entity, message)
                failed_checks.add((entity, SYNC_CHECK))
                context.log_event(_check_event(plugin, entity, partition, SYNC_CHECK, False, message, {"error": message}))
            if done.failed:
                failures.append(f"{done.integration.label}: {next(iter(done.errors.values()))}")
            interrupt_if_cancelled(context)  # a cancelled tick starts no further integration
        # One passing evaluation per check the tick did not fail (not one per integration).
        for entity in plugin.entities:
            for name in (ERROR_RATE_CHECK, SYNC_CHECK):
                if (entity, name) not in failed_checks and chosen:
                    context.log_event(_check_event(plugin, entity, None, name, True, f"{len(chosen)} integrations synced by this run", {"integrations": len(chosen)}))
        figures["failed"] = len(failures)
        context.log.info("%d %s integrations synced, %d failed: %d records read, %d created, %d updated",
                         len(chosen) - len(failures), plugin.title, len(failures), figures["fetched"], figures["created"], figures["updated"])
        job.jobs.update(job.job.id, processed=figures["fetched"], created=figures["created"], updated=figures["updated"])
        if failures:
            description = f"{len(failures)} of {len(chosen)} {plugin.title} integrations failed; the others were synced. " + " | ".join(failures)
            job.jobs.finish(job.job.id, "failed", error=description)
            raise dg.Failure(description=description, metadata=figures, allow_retries=False)
        job.jobs.finish(job.job.id, "succeeded")
        return figures

    @dg.job(
        name=incremental_job_name(plugin.name),
        description=f"Sync every due {plugin.title} integration (the schedule's run; one per tick).",
        tags={"crm/provider": plugin.name, "crm/trigger": "schedule", "dagster/priority": "5"},
        executor_def=dg.in_process_executor,
    )
    def _job():
        sync_due()

    return _job


def build_incremental_schedule(plugin: ProviderPlugin, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{plugin.name}_incremental",
        cron_schedule=INCREMENTAL_CRON,
        job=job,
        execution_timezone="UTC",
        description=f"Every 30 minutes, sync each active {plugin.title} integration whose cadence has come (one run for all).",
    )
    def _incremental(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = window_key(context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{plugin.name}:{key}", tags={"crm/trigger": "schedule", "crm/window": key})

    return _incremental


__all__ = ["INCREMENTAL_CRON", "IncrementalConfig", "build_incremental_job", "build_incremental_schedule", "incremental_job_name"]
