"""Import assets: one per provider and entity (``hubspot/contacts``, ...), a partition per integration.

A run of a partition syncs that integration: from its last synced point to now (everything on
its first run), or the window given in the run config (a backfill of past windows). Its
materialization carries that run's figures, the integration's row count and the point it is now
synced through.
"""


from datetime import timedelta

import dagster as dg
from pydantic import Field

from crm_pipelines.core.errors import ConfigurationError, EntityUnavailable, ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.dagster_defs.budgets import provider_budget
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY, client_resource, integration_for
from crm_pipelines.dagster_defs.job_records import finish_if_done, job_failure, job_kind, page_reporter, run_entities, step_progress, stop_when_cancelled
from crm_pipelines.dagster_defs.partitions import integration_partitions, parse_moment
from crm_pipelines.integrations.model import Integration
from crm_pipelines.jobs.progress import JobProgress
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.mapping.compiled import default as default_mapping
from crm_pipelines.mapping.integration import has_mapping
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.check_names import ERROR_RATE_CHECK, MAX_ERROR_RATE, SYNC_CHECK
from crm_pipelines.sync.importer import ImportResult, plan_incremental, run_import

#: The schedule syncs every 30 minutes: warn after an hour without a successful import, fail after two.
IMPORT_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(hours=1))


class ImportConfig(dg.Config):
    """Run options for an import (the defaults suit the schedule)."""

    strategy: str = Field(default="auto", description="auto | list | search | bulk. auto: list for a full read, search otherwise; Salesforce and Shopify take their bulk API for a full read or backfill above the integration's bulk_threshold.")
    overlap_minutes: int = Field(default=5, ge=0, description="Read this much before the last synced point (search index lag).")
    full: bool = Field(default=False, description="Read every record again (as on the first sync).")
    window_start: str | None = Field(default=None, description="Re-read the changes of a past window from here (2026-11-30-10:00 or ISO 8601): a backfill after an outage.")
    window_end: str | None = Field(default=None, description="End of the window to re-read (default: now).")
    sweep_archived: str = Field(default="daily", description="When to read deleted records: always | daily (first run after 00:00 UTC) | full (full reads only).")


def import_asset_key(provider: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([provider, entity])


def _should_sweep(mode: str, store: LocalStore, integration: Integration, entity: str, window) -> bool:
    if window.is_full or mode == "always":
        return True
    if mode != "daily":
        return False
    last = store.sync_state(integration, entity).last_run_at
    return last is None or last.date() < window.upper.date()


def import_once(context, store: LocalStore, plugin: ProviderPlugin, integration: Integration, entity: str, config: ImportConfig, db,
                logger=None, job: JobProgress | None = None) -> ImportResult:
    """Sync one entity of one integration as a step asks (plain Python under the Dagster layer).

    ``logger`` (default: the step's) receives the sync's progress lines; ``job`` the progress of
    the run's job, every few seconds.
    """
    logger = logger or context.log
    since = parse_moment(config.window_start) if config.window_start else None
    until = parse_moment(config.window_end) if config.window_end else None
    window = plan_incremental(store.sync_state(integration, entity), full=config.full, since=since, until=until,
                              overlap=timedelta(minutes=config.overlap_minutes))
    source = client_resource(context, store, plugin, integration)
    with provider_budget(context, db), source.open_reader(strategy=config.strategy, logger=logger, mapping=store.mapping_for(integration)) as (reader, stats):
        result = run_import(
            reader, store, integration, entity, window,
            stats=stats,
            sweep_archived=_should_sweep(config.sweep_archived, store, integration, entity, window),
            run_id=context.run.run_id,
            progress=job and page_reporter(job, reader, store, integration, entity, window.is_full),
            interrupt=job and job.interrupt,
            logger=logger,
        )
    if job is not None:
        job.entity_done(entity, result.fetched, created=result.outcome.created, updated=result.outcome.updated, rejected=result.failed)
    return result


def stop_on_provider_error(exc: Exception) -> dg.Failure:
    """The step's failure for a provider error: retried only when retrying can help."""
    if isinstance(exc, QuotaExhausted):
        return dg.Failure(description=str(exc), allow_retries=False)
    if isinstance(exc, RetryableError):
        return dg.Failure(description=f"{exc} (gave up after retries; the step will be retried)")
    return dg.Failure(description=str(exc), allow_retries=False)


def column_schema(mapping: CompiledMapping, entity: str) -> dg.TableSchema:
    """The local table's columns as the mapping fills them (custom fields as ``custom.KEY``), for the UI."""
    return dg.TableSchema(columns=[dg.TableColumn(name, kind, description=text) for name, kind, text in mapping.columns(entity)])


def _schema_metadata(mapping: CompiledMapping | None, entity: str) -> dict:
    return {"dagster/column_schema": column_schema(mapping, entity)} if mapping is not None else {}


def import_metadata(store: LocalStore, integration: Integration, entity: str, result: ImportResult) -> dict:
    metadata = result.metadata() | _schema_metadata(store.mapping_for(integration), entity)
    state = store.sync_state(integration, entity)
    metadata["synced_through"] = state.synced_through.isoformat(timespec="seconds") if state.synced_through else "never"
    metadata["store"] = integration.store_key
    metadata["dagster/row_count"] = store.linked_count(integration, entity)
    return metadata


def error_rate_check(result: ImportResult, partition: str | None = None) -> dg.AssetCheckResult:
    error_rate = result.failed / result.fetched if result.fetched else 0.0
    return dg.AssetCheckResult(
        check_name=ERROR_RATE_CHECK,
        passed=error_rate <= MAX_ERROR_RATE,
        metadata={"integration": result.provider, "error_rate": round(error_rate, 4), "failed": result.failed, "fetched": result.fetched},
        description=None if error_rate <= MAX_ERROR_RATE else f"{result.failed} of {result.fetched} records rejected; see: crm-pipelines rejects list",
    )


def build_import_asset(plugin: ProviderPlugin, entity: str) -> dg.AssetsDefinition:
    key = import_asset_key(plugin.name, entity)
    partitions = integration_partitions(plugin.name)

    @dg.asset(
        key=key,
        group_name=plugin.name,
        description=f"{plugin.title} {entity} imported into the local `{entity}` table; one partition per integration (store account).",
        partitions_def=partitions,
        pool=f"{plugin.name}_api",
        kinds={plugin.name, "python"},
        tags={"crm/provider": plugin.name, "crm/direction": "import"},
        required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
        check_specs=[
            # Not partitioned (partitioned checks are a preview feature): each evaluation names its integration.
            dg.AssetCheckSpec(ERROR_RATE_CHECK, asset=key, description=f"At most {MAX_ERROR_RATE:.0%} of the records read were rejected."),
            dg.AssetCheckSpec(SYNC_CHECK, asset=key, description="The integration's last sync of this entity went through (else the provider's error)."),
        ],
        freshness_policy=IMPORT_FRESHNESS,
        metadata=_schema_metadata(default_mapping(plugin.name) if has_mapping(plugin.name) else None, entity),
    )
    def _import(context: dg.AssetExecutionContext, config: ImportConfig) -> dg.MaterializeResult:
        with stop_when_cancelled(context):
            return import_step(context, config)

    def import_step(context: dg.AssetExecutionContext, config: ImportConfig) -> dg.MaterializeResult:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        job = None
        try:
            integration = integration_for(store, plugin, context.partition_key)
            job = step_progress(context, db, kind=job_kind(context, config), integration=integration, provider=plugin.name,
                                entities=run_entities(context, plugin.name, plugin.entities), params=config.model_dump(exclude_defaults=True))
            result = import_once(context, store, plugin, integration, entity, config, db, job=job)
        except ConfigurationError as exc:
            raise job_failure(job, dg.Failure(description=str(exc), allow_retries=False)) from None
        except ValueError as exc:
            raise job_failure(job, dg.Failure(description=f"bad run config: {exc}", allow_retries=False)) from None
        except EntityUnavailable as exc:
            context.log.warning("skipped: %s", exc)
            job.entity_done(entity, 0)
            finish_if_done(job)
            return dg.MaterializeResult(
                metadata={"skipped": str(exc), "fetched": 0, "store": integration.store_key, "dagster/row_count": 0},
                check_results=[dg.AssetCheckResult(check_name=ERROR_RATE_CHECK, passed=True, metadata={"skipped": str(exc)}),
                               dg.AssetCheckResult(check_name=SYNC_CHECK, passed=True, metadata={"skipped": str(exc)})],
            )
        except ProviderError as exc:
            raise job_failure(job, stop_on_provider_error(exc)) from None
        except dg.Failure as exc:
            raise job_failure(job, exc)
        finish_if_done(job)
        return dg.MaterializeResult(metadata=import_metadata(store, integration, entity, result),
                                    check_results=[error_rate_check(result), dg.AssetCheckResult(check_name=SYNC_CHECK, passed=True)])

    return _import


def build_import_assets(plugin: ProviderPlugin) -> list[dg.AssetsDefinition]:
    return [build_import_asset(plugin, entity) for entity in plugin.entities]


def build_count_check(plugin: ProviderPlugin, entity: str) -> dg.AssetChecksDefinition:
    """For every active integration: live local records linked to it == the provider's own count."""

    @dg.asset_check(
        asset=import_asset_key(plugin.name, entity),
        name="count_matches_provider",
        description=f"For each active {plugin.title} integration, the local {entity} linked to it are as many as {plugin.title} reports.",
        required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY},
        pool=f"{plugin.name}_api",
    )
    def _count(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        rows, behind = [], []
        for integration in store.integrations.list(provider=plugin.name, active_only=True):
            try:
                with provider_budget(context, db), client_resource(context, store, plugin, integration).open_reader(logger=context.log, mapping=store.mapping_for(integration)) as (reader, _stats):
                    remote = reader.total(entity)
            except EntityUnavailable as exc:
                rows.append({"integration": integration.key, "provider_count": None, "local_count": None, "difference": 0, "note": f"skipped: {exc}"})
                continue
            except (ProviderError, ConfigurationError) as exc:
                message = str(exc)
                rows.append({"integration": integration.key, "provider_count": None, "local_count": None, "difference": 0, "note": message[:200]})
                behind.append(f"{integration.key}: not checked ({message[:120]})")
                continue
            local = store.linked_count(integration, entity)
            rows.append({"integration": integration.key, "provider_count": remote, "local_count": local, "difference": local - remote, "note": ""})
            if local != remote:
                behind.append(f"{integration.key}: {abs(local - remote)} {'more' if local > remote else 'fewer'} locally")
        table = dg.MetadataValue.table(
            records=[dg.TableRecord({k: ("" if v is None else v) for k, v in r.items()}) for r in rows],
            schema=dg.TableSchema(columns=[dg.TableColumn("integration"), dg.TableColumn("provider_count", "int"), dg.TableColumn("local_count", "int"),
                                           dg.TableColumn("difference", "int"), dg.TableColumn("note")]),
        )
        return dg.AssetCheckResult(
            passed=not behind,
            metadata={"integrations": table, "difference": sum(r["difference"] for r in rows)},
            description=None if not behind else "; ".join(behind) + " (run a full sync of those integrations)",
        )

    return _count
