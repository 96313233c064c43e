"""Run one import or export outside Dagster (the command line, benchmarks, scripts).

The same plain functions the assets call, with the integration's resource built from its
connection (the default store's from the provider's environment variables) and, by default, the
API budgets shared through the local database, so a sync started here and the runs Dagster
launches draw from one budget per provider account.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime
from collections.abc import Callable, Sequence
from typing import Any

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.ratelimit import shared_budgets
from crm_pipelines.integrations.model import Integration
from crm_pipelines.providers.registry import ProviderPlugin, plugin
from crm_pipelines.storage.leases import ExportLease, cli_owner
from crm_pipelines.storage.quota import QuotaBudgets
from crm_pipelines.storage.store import LocalStore, Target
from crm_pipelines.sync.exporter import ExportResult, export_entity
from crm_pipelines.sync.importer import ImportResult, plan_incremental, run_import
from crm_pipelines.sync.targeted import sync_ids

log = logging.getLogger(__name__)


def provider_plugin(name: str, entity: str | None = None) -> ProviderPlugin:
    try:
        found = plugin(name)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None
    if entity is not None and entity not in found.entities:
        raise ConfigurationError(f"{found.title} has no entity {entity!r}; expected one of {', '.join(found.entities)}")
    return found


def target_of(store: LocalStore, target: Target, entity: str | None = None) -> tuple[Integration, ProviderPlugin]:
    """The integration a call works on and its provider's plugin (with a clear error for a wrong entity)."""
    integration = store.scope(target if isinstance(target, Integration) else provider_plugin(target).name)
    return integration, provider_plugin(integration.provider, entity)


def open_resource(store: LocalStore, integration: Integration) -> Any:
    """The integration's resource, configured (secrets resolved here, never logged)."""
    return store.integrations.resource(integration)


def _budgets(store: LocalStore, shared: bool, priority: str, stack: ExitStack) -> None:
    stack.enter_context(shared_budgets(QuotaBudgets(store.engine) if shared else None, priority))


def import_now(
    provider: Target,
    entity: str,
    store: LocalStore,
    *,
    full: bool = False,
    since: datetime | None = None,
    strategy: str = "auto",
    priority: str = "normal",
    shared: bool = True,
    progress: Callable[[int], None] | None = None,
    logger: Any = None,
) -> ImportResult:
    """Import what changed since the last synced point (or everything with ``full``) up to now."""
    integration, _ = target_of(store, provider, entity)
    logger = logger or log
    window = plan_incremental(store.sync_state(integration, entity), full=full, since=since)
    with ExitStack() as stack:
        _budgets(store, shared, priority, stack)
        resource = open_resource(store, integration)
        reader, stats = stack.enter_context(resource.open_reader(strategy=strategy, logger=logger, mapping=store.mapping_for(integration)))
        return run_import(reader, store, integration, entity, window, stats=stats, sweep_archived=window.is_full, progress=progress, logger=logger)


def export_now(
    provider: Target,
    entity: str,
    store: LocalStore,
    *,
    batch_size: int = 100,
    only_new: bool = False,
    dry_run: bool = False,
    priority: str = "normal",
    shared: bool = True,
    ids: Sequence[int] | None = None,
    retry_rejected: bool = False,
    progress: Callable[[int, int], None] | None = None,
    logger: Any = None,
    lease_wait_s: float | None = None,
) -> ExportResult:
    """Export the changed records, holding the integration's and entity's lease (waiting up to ``lease_wait_s`` for it)."""
    integration, _ = target_of(store, provider, entity)
    logger = logger or log
    with ExitStack() as stack:
        _budgets(store, shared, priority, stack)
        resource = open_resource(store, integration)
        writer, stats = stack.enter_context(resource.open_writer(mapping=store.mapping_for(integration)))
        unavailable = writer.unavailable(entity) if hasattr(writer, "unavailable") else None
        if unavailable:
            raise ConfigurationError(unavailable)
        lease = None
        if not dry_run:
            lease = ExportLease(store.engine, integration, entity, cli_owner())
            lease.acquire(lease_wait_s, logger=logger)
            stack.enter_context(lease)
        return export_entity(writer, store, integration, entity, stats=stats, batch_size=batch_size, only_new=only_new, dry_run=dry_run,
                             ids=ids, retry_rejected=retry_rejected, progress=progress, logger=logger, lease=lease)


def sync_ids_now(provider: Target, entity: str, store: LocalStore, ids: list[str], *, priority: str = "high", shared: bool = True, logger: Any = None) -> dict[str, Any]:
    """Read specific records by provider id and apply them (what the webhook sensors request)."""
    integration, _ = target_of(store, provider, entity)
    with ExitStack() as stack:
        _budgets(store, shared, priority, stack)
        reader, stats = stack.enter_context(open_resource(store, integration).open_reader(logger=logger or log, mapping=store.mapping_for(integration)))
        return sync_ids(reader, store, integration, entity, ids, stats=stats, logger=logger or log)


def retry_rejects(provider: Target, entity: str, store: LocalStore, *, direction: str, shared: bool = True, logger: Any = None) -> dict[str, Any]:
    """Try the open rejects of one integration and entity again: imports re-read by id, exports re-sent."""
    integration, _ = target_of(store, provider, entity)
    open_refs = [r["record_ref"] for r in store.open_rejects(integration, entity, direction)]
    if not open_refs:
        return {"retried": 0, "still_rejected": 0}
    if direction == "import":
        sync_ids_now(integration, entity, store, open_refs, shared=shared, logger=logger)
    else:
        ids = [int(ref) for ref in open_refs if str(ref).isdigit()]
        export_now(integration, entity, store, ids=ids, retry_rejected=True, shared=shared, logger=logger)
    still = len(store.open_rejects(integration, entity, direction))
    return {"retried": len(open_refs), "still_rejected": still}


__all__ = ["export_now", "import_now", "open_resource", "provider_plugin", "retry_rejects", "sync_ids_now", "target_of"]
