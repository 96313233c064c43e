"""Every step that calls a provider draws from the account's budget shared in the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from crm_pipelines.core.ratelimit import shared_budgets


def run_priority(tags: dict[str, str]) -> str:
    """high for webhook-triggered and scheduled runs, low for backfills, normal otherwise."""
    if tags.get("dagster/backfill"):
        return "low"
    if tags.get("crm/trigger") in ("webhook", "schedule"):
        return "high"
    return tags.get("crm/priority", "normal")


@contextmanager
def provider_budget(context: dg.OpExecutionContext | dg.AssetExecutionContext | dg.AssetCheckExecutionContext, db) -> Iterator[str]:
    """Clients opened inside take their limiters from the shared budgets; yields the priority."""
    priority = run_priority(dict(context.run.tags))
    backend = db.budgets() if db.shared_api_budgets else None
    with shared_budgets(backend, priority):
        yield priority
