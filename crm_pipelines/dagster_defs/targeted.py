"""The job that syncs specific records of one integration by id (requested by the webhook sensors)."""

import dagster as dg
from pydantic import Field

from crm_pipelines.dagster_defs.budgets import provider_budget
from crm_pipelines.dagster_defs.imports import import_asset_key
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY, integration_for, step_client
from crm_pipelines.dagster_defs.job_records import finish_if_done, job_errors, job_failure, step_progress, stop_when_cancelled
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.sync.targeted import sync_ids
from crm_pipelines.webhooks.inbox import WebhookInbox


class SyncIdsConfig(dg.Config):
    """Which records to sync: the integration, and provider ids per entity (e.g. ``{"contacts": ["512", "513"]}``)."""

    integration: str = Field(default="default", description="Integration key (the partition of the provider's assets).")
    ids: dict[str, list[str]] = Field(default_factory=dict, description="Provider record ids per entity.")
    inbox_range: list[int] = Field(default_factory=list, description="First and last webhook inbox ids whose rows of this integration the run settles (set by the sensor).")


def sync_ids_job_name(provider: str) -> str:
    return f"{provider}_sync_ids"


def build_sync_ids_job(plugin: ProviderPlugin) -> dg.JobDefinition:
    @dg.op(name=f"{plugin.name}__sync_ids", required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY}, pool=f"{plugin.name}_api",
           retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL))
    def sync_by_id(context: dg.OpExecutionContext, config: SyncIdsConfig) -> None:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        integration = integration_for(store, plugin, config.integration)
        job = step_progress(context, db, kind="sync_ids", integration=integration, provider=plugin.name, entities=sorted(config.ids),
                            params={"ids": config.ids})
        source = step_client(context, store, plugin, integration)
        for entity, ids in sorted(config.ids.items()):
            if entity not in plugin.entities:
                raise job_failure(job, dg.Failure(f"{plugin.title} has no entity {entity!r}; expected one of {', '.join(plugin.entities)}", allow_retries=False))
            with stop_when_cancelled(context), job_errors(job), provider_budget(context, db), source.open_reader(logger=context.log, mapping=store.mapping_for(integration)) as (reader, stats):
                figures = sync_ids(reader, store, integration, entity, ids, stats=stats, logger=context.log)
            job.entity_done(entity, figures["fetched"], created=figures["created"], updated=figures["updated"], rejected=figures["failed"])
            # An observation (not a materialization of the whole partition): these records changed now, by id.
            context.log_event(dg.AssetObservation(asset_key=import_asset_key(plugin.name, entity), partition=integration.key,
                                                  metadata={"synced_by_id": True, **figures}))
        if config.inbox_range:
            WebhookInbox(store.engine).mark_processed_range(plugin.name, config.inbox_range[0], config.inbox_range[-1], integration_id=integration.id)
        finish_if_done(job)

    @dg.job(name=sync_ids_job_name(plugin.name), description=f"Sync specific records of one {plugin.title} integration by id (webhook-triggered).",
            tags={"crm/provider": plugin.name}, executor_def=dg.in_process_executor)
    def _job():
        sync_by_id()

    return _job
