"""Import assets: one partitioned asset per provider and entity (``hubspot/contacts``, ...)."""


from datetime import timedelta

import dagster as dg
from pydantic import Field

from crm_pipelines.core.errors import EntityUnavailable, ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.dagster_defs.budgets import provider_budget
from crm_pipelines.dagster_defs.partitions import SYNC_PARTITIONS, sync_start
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.sync.importer import plan_window, run_import

DB_RESOURCE_KEY = "crm_db"
ERROR_RATE_CHECK = "error_rate_below_10pct"
MAX_ERROR_RATE = 0.10
#: The schedule runs every 30 minutes: warn after an hour without a successful import, fail after two.
IMPORT_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(hours=1))


class ImportConfig(dg.Config):
    """Run options for an import (defaults suit the 30-minute schedule and backfills)."""

    strategy: str = Field(default="auto", description="auto | list | search. auto: list for the initial sync, search otherwise.")
    overlap_minutes: int = Field(default=5, ge=0, description="Read this much before the window start (search index lag).")
    catch_up: bool = Field(default=True, description="Reach back to the last synced point when a gap is found.")
    sweep_archived: str = Field(default="daily", description="When to read deleted records: always | daily (window starting 00:00 UTC) | full (initial sync only).")


def _should_sweep(mode: str, window_start, window_end) -> bool:
    if mode == "always":
        return True
    if mode == "daily":
        midnight = window_start.replace(hour=0, minute=0, second=0, microsecond=0)
        return window_start == midnight or (window_end - window_start) >= timedelta(days=1) or midnight + timedelta(days=1) < window_end
    return False


def import_asset_key(provider: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([provider, entity])


def build_import_asset(plugin: ProviderPlugin, entity: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=import_asset_key(plugin.name, entity),
        group_name=plugin.name,
        description=f"{plugin.title} {entity} imported into the local `{entity}` table, by 30-minute modification window.",
        partitions_def=SYNC_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=f"{plugin.name}_api",
        kinds={plugin.name, "python"},
        tags={"crm/provider": plugin.name, "crm/direction": "import"},
        required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
        check_specs=[dg.AssetCheckSpec(ERROR_RATE_CHECK, asset=import_asset_key(plugin.name, entity), description=f"At most {MAX_ERROR_RATE:.0%} of the records read were rejected.")],
        freshness_policy=IMPORT_FRESHNESS,
    )
    def _import(context: dg.AssetExecutionContext, config: ImportConfig) -> dg.MaterializeResult:
        window = context.partition_time_window
        db = getattr(context.resources, DB_RESOURCE_KEY)
        source = getattr(context.resources, plugin.resource_key)
        store = db.store()
        plan = plan_window(
            store.sync_state(plugin.name, entity),
            window.start,
            window.end,
            first_start=sync_start(),
            overlap=timedelta(minutes=config.overlap_minutes),
            catch_up=config.catch_up,
        )
        try:
            with provider_budget(context, db) as priority, source.open_reader(strategy=config.strategy, logger=context.log) as (reader, stats):
                result = run_import(
                    reader, store, plugin.name, entity, plan,
                    stats=stats,
                    sweep_archived=_should_sweep(config.sweep_archived, window.start, window.end),
                    run_id=context.run.run_id,
                    logger=context.log,
                )
        except EntityUnavailable as exc:
            context.log.warning("skipped: %s", exc)
            return dg.MaterializeResult(
                metadata={"skipped": str(exc), "fetched": 0, "dagster/row_count": store.count(entity)},
                check_results=[dg.AssetCheckResult(check_name=ERROR_RATE_CHECK, passed=True, metadata={"skipped": str(exc)})],
            )
        except QuotaExhausted as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        except RetryableError as exc:
            raise dg.Failure(description=f"{exc} (gave up after retries; the step will be retried)") from None
        except ProviderError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        metadata = result.metadata()
        metadata["api_priority"] = priority
        metadata["dagster/row_count"] = store.count(entity)
        metadata["database"] = db.display_url()
        error_rate = result.failed / result.fetched if result.fetched else 0.0
        check = dg.AssetCheckResult(
            check_name=ERROR_RATE_CHECK,
            passed=error_rate <= MAX_ERROR_RATE,
            metadata={"error_rate": round(error_rate, 4), "failed": result.failed, "fetched": result.fetched},
            description=None if error_rate <= MAX_ERROR_RATE else f"{result.failed} of {result.fetched} records rejected; see the rejects table",
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return _import


def build_import_assets(plugin: ProviderPlugin) -> list[dg.AssetsDefinition]:
    return [build_import_asset(plugin, entity) for entity in plugin.entities]


def build_count_check(plugin: ProviderPlugin, entity: str) -> dg.AssetChecksDefinition:
    """Local live records linked to the provider == the provider's own count of live records."""

    @dg.asset_check(
        asset=import_asset_key(plugin.name, entity),
        name="count_matches_provider",
        description=f"The local {entity} linked to {plugin.title} are as many as {plugin.title} reports.",
        required_resource_keys={plugin.resource_key, DB_RESOURCE_KEY},
        pool=f"{plugin.name}_api",
    )
    def _count(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        db = getattr(context.resources, DB_RESOURCE_KEY)
        store = db.store()
        try:
            with provider_budget(context, db), getattr(context.resources, plugin.resource_key).open_reader(logger=context.log) as (reader, _stats):
                remote = reader.total(entity)
        except EntityUnavailable as exc:
            return dg.AssetCheckResult(passed=True, metadata={"skipped": str(exc)}, description=f"skipped: {exc}")
        local = len(store.linked_records(plugin.name, entity))
        return dg.AssetCheckResult(
            passed=local == remote,
            metadata={"provider_count": remote, "local_count": local, "difference": local - remote},
            description=None if local == remote else f"{abs(local - remote)} records {'more' if local > remote else 'fewer'} locally; run a backfill or the initial sync",
        )

    return _count
