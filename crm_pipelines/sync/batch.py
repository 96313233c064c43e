"""Syncing many integrations of one provider in one process (what each schedule tick does).

A deployment with hundreds of stores cannot afford a process per store every 30 minutes: a
Dagster run costs seconds of CPU before its first request. The schedule's run therefore takes
every due integration of its provider and syncs them here, a few at a time (each draws from its
own account's budget, so different accounts go in parallel and integrations on one account share
it), with failures kept per integration: a store with a wrong token fails alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from crm_pipelines.core.errors import ConfigurationError, EntityUnavailable, ProviderError
from crm_pipelines.core.ratelimit import in_context
from crm_pipelines.integrations.model import Integration
from crm_pipelines.integrations.registry import env_configured
from crm_pipelines.storage.schema import sync_state
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.importer import ImportResult

log = logging.getLogger(__name__)


@dataclass
class IntegrationRun:
    """What syncing one integration's entities did: a result, a skip or an error per entity."""

    integration: Integration
    results: dict[str, ImportResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.errors)


def last_runs(store: LocalStore, provider: str) -> dict[int, datetime | None]:
    """The oldest last-run time over each integration's entities (None: an entity never ran)."""
    query = (
        select(sync_state.c.integration_id, func.count(), func.min(sync_state.c.last_run_at))
        .where(sync_state.c.provider == provider)
        .group_by(sync_state.c.integration_id)
    )
    with store.engine.connect() as conn:
        return {row[0]: row[2] for row in conn.execute(query)}


def due_integrations(store: LocalStore, provider: str, entities: Sequence[str], *, now: datetime | None = None, slack: timedelta = timedelta(minutes=2)) -> list[Integration]:
    """Active integrations of ``provider`` whose cadence has elapsed since their last run.

    ``slack`` lets a tick that comes a little early (runs take time) still sync an integration on
    a cadence equal to the schedule's.
    """
    now = now or datetime.now(timezone.utc)
    last = last_runs(store, provider)
    due = []
    registered = store.integrations.list(provider=provider)
    active = [i for i in registered if i.active]
    if not registered and env_configured(provider):
        # An installation configured by environment variables: its default integration.
        active = [store.integrations.default_for(provider)]
    for integration in active:
        previous = last.get(integration.id)
        if previous is None or now - previous >= timedelta(minutes=integration.settings.cadence_minutes) - slack:
            due.append(integration)
    return due


def sync_integrations(
    integrations: Sequence[Integration],
    entities: Sequence[str],
    sync_one: Callable[[Integration, str], ImportResult],
    *,
    max_workers: int = 4,
    logger: logging.Logger | Any = None,
) -> Iterator[IntegrationRun]:
    """Sync every entity of each integration; yields each integration's run as it finishes.

    Entities of one integration go in order (one account's budget); integrations go
    ``max_workers`` at a time. An error stops that integration's remaining entities, not the others.
    Closing the iterator early leaves the integrations not yet started alone.
    """
    logger = logger or log

    def run(integration: Integration) -> IntegrationRun:
        outcome = IntegrationRun(integration)
        for entity in entities:
            try:
                outcome.results[entity] = sync_one(integration, entity)
            except EntityUnavailable as exc:
                outcome.skipped[entity] = str(exc)
            except (ProviderError, ConfigurationError) as exc:
                outcome.errors[entity] = str(exc)
                break
            except Exception as exc:  # noqa: BLE001 - one store's failure must not stop the others
                outcome.errors[entity] = f"{type(exc).__name__}: {exc}"
                break
        return outcome

    if not integrations:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(integrations))), thread_name_prefix="integration")
    try:
        futures = {pool.submit(in_context(run), integration): integration for integration in integrations}
        for future in as_completed(futures):
            yield future.result()
    finally:
        # A caller that stops early (its run was cancelled) waits for the integrations in flight,
        # and the others never start.
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["IntegrationRun", "due_integrations", "last_runs", "sync_integrations"]
