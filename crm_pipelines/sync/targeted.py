"""Sync specific records by id (what a webhook says changed), without waiting for the schedule.

The records are read as they are now and applied with the same rules as the windowed import:
a version older than the stored one is ignored, an unchanged one is not rewritten, so a record
changed by a webhook and by the schedule is applied once, the newer version winning.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from crm_pipelines.core.http import CallStats
from crm_pipelines.storage.store import ApplyOutcome, LocalStore, Target
from crm_pipelines.storage.validate import checked_page
from crm_pipelines.sync.importer import ChangeReader

log = logging.getLogger(__name__)


def sync_ids(
    reader: ChangeReader,
    store: LocalStore,
    provider: Target,
    entity: str,
    ids: list[str],
    *,
    stats: CallStats,
    logger: logging.Logger | Any = None,
) -> dict[str, Any]:
    """Read ``ids`` from the provider and apply them; returns figures for metadata."""
    logger = logger or log
    started = time.monotonic()
    provider = store.scope(provider)
    outcome = ApplyOutcome()
    fetched = failed = 0
    unique = sorted(set(ids), key=lambda i: (len(i), i))
    for page in reader.by_ids(entity, unique):
        page = checked_page(entity, page)
        page = store.tidy_page(provider, entity, page)
        fetched += len(page.records) + len(page.errors)
        outcome.add(store.apply_remote(provider, entity, page.records))
        if page.errors:
            failed += len(page.errors)
            store.record_rejects(provider, entity, "import", page.errors)
        store.resolve_rejects(provider, entity, "import", [r.external_id for r in page.records])
    figures = {
        "requested": len(unique),
        "fetched": fetched,
        "created": outcome.created,
        "updated": outcome.updated,
        "linked": outcome.linked,
        "unchanged": outcome.unchanged,
        "deleted": outcome.deleted,
        "conflicts": outcome.conflicts,
        "failed": failed,
        "api_calls": stats.snapshot()["calls"],
        "duration_s": round(time.monotonic() - started, 3),
    }
    logger.info("%s/%s: synced %d records by id: %s", provider, entity, len(unique), figures)
    return figures
