"""Export assets: local changes pushed to a provider (``hubspot/contacts_export``, ...).

Each export asset is a small graph: ``select`` settles creates left in flight by a crash and
lists the changed records, fanning them out in slices (5,000 records by default, so a million
records make 200 steps, not 10,000); ``send`` writes one slice in 100-record batches and is
retried on its own; ``summarize`` adds up the figures as the materialization's metadata.
"""

import dagster as dg
from pydantic import Field

from crm_pipelines.dagster_defs.budgets import provider_budget
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY, integration_for, step_client
from crm_pipelines.dagster_defs.job_records import finish_if_done, job_errors, run_entities, step_progress, stop_when_cancelled
from crm_pipelines.dagster_defs.partitions import integration_partitions
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.storage.leases import ExportLease, run_owner
from crm_pipelines.sync.exporter import BULK_BATCH, ExportResult, bulk_chosen, combine, dry_run_result, plan_export, send_changes


class ExportConfig(dg.Config):
    """Run options of an export (the CLI's --batch-size, --only-new, --dry-run)."""

    batch_size: int = Field(default=100, ge=1, le=100, description="Records per bulk write (the provider's maximum is 100).")
    only_new: bool = Field(default=False, description="Send only records never exported to this provider (apenas-novos).")
    dry_run: bool = Field(default=False, description="Report what would be sent without sending anything.")
    slice_size: int = Field(default=5000, ge=100, description="Records per send step (each step is retried on its own).")


def local_table_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["local", entity])


def local_table_specs(plugins) -> list[dg.AssetSpec]:
    """The local tables, written by the company's own applications and by every provider's imports."""
    from crm_pipelines.dagster_defs.imports import import_asset_key

    entities = sorted({e for p in plugins for e in p.entities})
    return [
        dg.AssetSpec(
            local_table_key(e), group_name="local", kinds={"sql"},
            description=f"The local `{e}` table: every store's canonical records (column store_id), written by the company's applications and by imports.",
            deps=[import_asset_key(p.name, e) for p in plugins if e in p.entities],
        )
        for e in entities
    ]


def export_asset_key(provider: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([provider, f"{entity}_export"])


def build_export_asset(plugin: ProviderPlugin, entity: str) -> dg.AssetsDefinition:
    prefix = f"{plugin.name}__{entity}_export"
    resource_keys = {plugin.resource_key, DB_RESOURCE_KEY}

    @dg.op(name=f"{prefix}__select", ins={"start_after": dg.In(dg.Nothing)}, out=dg.DynamicOut(list), required_resource_keys=resource_keys, pool=f"{plugin.name}_api")
    def select(context: dg.OpExecutionContext, config: ExportConfig):
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        integration = integration_for(store, plugin, context.partition_key)
        job = export_job(context, db, integration, config)
        if not integration.settings.export_enabled:
            reason = f"exports to {integration.label} are off (settings export_enabled=false)"
            context.log.warning("skipped: %s", reason)
            yield dg.DynamicOutput([("skipped", reason)], mapping_key="skipped")
            return
        with job_errors(job), provider_budget(context, db), step_client(context, store, plugin, integration).open_writer(mapping=store.mapping_for(integration)) as (writer, _stats):
            unavailable = writer.unavailable(entity) if hasattr(writer, "unavailable") else None
            if unavailable:
                context.log.warning("skipped: %s", unavailable)
                yield dg.DynamicOutput([("skipped", unavailable)], mapping_key="skipped")
                return
            if config.dry_run:
                plan = plan_export(writer, store, integration, entity, only_new=config.only_new, dry_run=True, logger=context.log)
            else:
                with run_lease(context, store, integration, entity):
                    plan = plan_export(writer, store, integration, entity, only_new=config.only_new, logger=context.log, interrupt=job.interrupt)
        job.page(entity, 0, len(plan.items))
        job.flush()
        if config.dry_run:
            result = dry_run_result(integration, entity, plan)
            context.log.info("dry run: %d records would be sent (%d creates, %d updates); nothing sent", result.selected, result.would_create, result.would_update)
            yield dg.DynamicOutput([("dry_run", result.would_create, result.would_update, plan.unchanged)], mapping_key="dry_run")
            return
        # Above the integration's bulk threshold, slices are bulk jobs' worth (the provider's bulk API).
        bulk = bulk_chosen(writer, integration, len(plan.items))
        size, kind = (BULK_BATCH, "bulk_slice") if bulk else (config.slice_size, "slice")
        context.log.info("%d changed records to send in %sslices of %d (%d recovered after an interrupted run)", len(plan.items), "bulk API " if bulk else "", size, plan.recovered)
        yield dg.DynamicOutput([("plan", plan.recovered, plan.unchanged, plan.waiting)], mapping_key="plan")
        for index in range(0, len(plan.items), size):
            yield dg.DynamicOutput(plan.items[index : index + size], mapping_key=f"{kind}_{index // size}")

    @dg.op(
        name=f"{prefix}__send",
        required_resource_keys=resource_keys,
        pool=f"{plugin.name}_api",
        retry_policy=dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    )
    def send(context: dg.OpExecutionContext, config: ExportConfig, items: list) -> dict:
        if items and items[0][0] == "dry_run":
            _, would_create, would_update, unchanged = items[0]
            return {"dry_run": True, "would_create": would_create, "would_update": would_update, "selected": would_create + would_update, "unchanged": unchanged}
        if items and items[0][0] == "skipped":
            return {"skipped": items[0][1]}
        if items and items[0][0] == "plan":
            return {"recovered": items[0][1], "unchanged": items[0][2], "waiting": items[0][3]}
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        integration = integration_for(store, plugin, context.partition_key)
        batch_size = min(config.batch_size, integration.settings.batch_size or config.batch_size)
        job = export_job(context, db, integration, config)
        with stop_when_cancelled(context), job_errors(job), provider_budget(context, db), \
                step_client(context, store, plugin, integration).open_writer(mapping=store.mapping_for(integration)) as (writer, stats), \
                run_lease(context, store, integration, entity) as lease:
            # Records already sent by an earlier attempt of this step (or another export) no longer differ: skip them.
            items = list(store.export_items(integration, entity, ids=[i[0] for i in items]))
            key = context.get_mapping_key() or ""
            result = send_changes(writer, store, integration, entity, items, stats=stats, batch_size=batch_size, logger=context.log, label=f" [{key}]",
                                  bulk=key.startswith("bulk_slice"), slot=key, progress=lambda done, total: job.page(entity, done), interrupt=job.interrupt,
                                  lease=lease)
        return _as_dict(result)

    def export_job(context, db, integration, config: ExportConfig | None = None):
        return step_progress(context, db, kind="export", integration=integration, provider=plugin.name,
                             entities=run_entities(context, plugin.name, plugin.entities, suffix="_export"),
                             params=config.model_dump(exclude_defaults=True) if config else None)

    @dg.op(name=f"{prefix}__summarize", required_resource_keys={DB_RESOURCE_KEY})
    def summarize(context: dg.OpExecutionContext, parts: list) -> dg.Output:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        integration = integration_for(store, plugin, context.partition_key)
        if not any("skipped" in p or p.get("dry_run") for p in parts):
            run_lease(context, store, integration, entity).release()
        job = export_job(context, db, integration)
        skipped = [p["skipped"] for p in parts if "skipped" in p]
        if skipped:
            context.log.warning("skipped: %s", skipped[0])
            job.entity_done(entity, 0)
            finish_if_done(job)
            return dg.Output(value={"skipped": skipped[0]}, metadata={"skipped": skipped[0], "selected": 0, "created": 0, "updated": 0})
        results = [ExportResult(plugin.name, entity, **{k: v for k, v in p.items() if k not in ("api",)}) for p in parts]
        for result, part in zip(results, parts):
            result.api = part.get("api", {})
        total = combine(results, plugin.name, entity)
        total.dry_run = any(p.get("dry_run") for p in parts)
        context.log.info("%s", total.summary())
        job.entity_done(entity, total.selected, created=total.created, updated=total.updated, rejected=total.rejected)
        finish_if_done(job)
        metadata = total.metadata()
        return dg.Output(value=metadata, metadata=metadata)

    @dg.config_mapping
    def one_config(config: ExportConfig) -> dict:
        """One set of options for the whole export, handed to both ops that use it."""
        values = {"config": config.model_dump()}
        return {f"{prefix}__select": values, f"{prefix}__send": values}

    @dg.graph_asset(
        name=f"{entity}_export",
        config=one_config,
        key_prefix=[plugin.name],
        group_name=plugin.name,
        partitions_def=integration_partitions(plugin.name),
        description=f"The store's local {entity} changed since their last export, sent to its {plugin.title} integration in bulk writes; one partition per integration.",
        ins={"local": dg.AssetIn(local_table_key(entity), dagster_type=dg.Nothing)},
        kinds={plugin.name, "python"},
        tags={"crm/provider": plugin.name, "crm/direction": "export"},
    )
    def _export(local):
        return summarize(select(start_after=local).map(send).collect())

    return _export


def run_lease(context: dg.OpExecutionContext, store, integration, entity: str) -> ExportLease:
    """The export lease of this run: its steps share it; the summarize step releases it (an abandoned run's expires)."""
    return ExportLease(store.engine, integration, entity, run_owner(context.run_id), release=False)


def _as_dict(result: ExportResult) -> dict:
    return {
        "selected": result.selected, "created": result.created, "updated": result.updated, "linked": result.linked,
        "rejected": result.rejected, "recovered": result.recovered, "waiting": result.waiting, "batches": result.batches,
        "duration_s": result.duration_s, "api": result.api, "bulk": result.bulk,
    }


def build_export_assets(plugin: ProviderPlugin) -> list[dg.AssetsDefinition]:
    return [build_export_asset(plugin, entity) for entity in plugin.entities]
