"""Import one provider entity for a time window into the local database (plain Python).

The Dagster assets call :func:`plan_window` and :func:`run_import`; tests and benchmarks call
them directly. The window a run reads is wider than its partition on purpose:

* it starts ``overlap`` earlier, so a record written just before the previous run but not yet
  visible in the provider's search index (HubSpot's is eventually consistent) is still found;
* the first partition reaches back to the beginning of time, so the initial sync (a backfill of
  every partition in one run) also brings records last modified before the start date;
* with ``catch_up`` (default), a run that finds the entity last synced before its window start
  (the scheduler was down, a run failed) reaches back to that point, so no outage leaves a gap
  even before anyone launches a backfill.

Records are de-duplicated by id and compared by modification time and content hash, so the
overlaps cost reads, never duplicates or stale overwrites.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from crm_pipelines.core.http import CallStats
from crm_pipelines.core.model import Page
from crm_pipelines.storage.store import ApplyOutcome, LocalStore, SyncState, Target
from crm_pipelines.storage.validate import checked_page
from crm_pipelines.sync.bulk import BulkContext, BulkJobMemory
from crm_pipelines.sync.checkpoint import Checkpoint, ReadCheckpoint
from crm_pipelines.sync.overlap import ReadAhead, read_ahead

log = logging.getLogger(__name__)


class ChangeReader(Protocol):
    """What a provider module supplies to read its changes."""

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages changed in the window; ``resume`` (a page's :attr:`Page.resume`) continues a full read after that page."""
        ...

    def archived(self, entity: str, since: datetime | None = None) -> Iterator[Page]: ...

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]: ...

    def total(self, entity: str) -> int: ...


@dataclass(frozen=True)
class ImportWindow:
    """The partition window asked for, and the one actually read."""

    start: datetime
    end: datetime
    lower: datetime | None
    upper: datetime
    reason: str = "partition"
    #: A past window asked for again: like a full sync, it may go through the provider's bulk API.
    backfill: bool = False

    @property
    def is_full(self) -> bool:
        return self.lower is None


def plan_window(
    state: SyncState,
    start: datetime,
    end: datetime,
    *,
    first_start: datetime,
    now: datetime | None = None,
    overlap: timedelta = timedelta(minutes=5),
    catch_up: bool = True,
) -> ImportWindow:
    """Decide what to read for the partition range ``[start, end)``."""
    now = now or datetime.now(timezone.utc)
    if start <= first_start:
        # A full read returns every record as it is now, so it covers up to now.
        return ImportWindow(start, end, None, now, "first partition: every record, as of now")
    upper = min(end, now)
    lower = start - overlap
    reason = f"partition, with {int(overlap.total_seconds() // 60)} min overlap"
    if catch_up and state.synced_through is not None and state.synced_through < start:
        lower = state.synced_through - overlap
        reason = f"catching up from {state.synced_through.isoformat()} (last synced point)"
    return ImportWindow(start, end, lower, upper, reason)


def plan_incremental(
    state: SyncState,
    *,
    now: datetime | None = None,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    overlap: timedelta = timedelta(minutes=5),
) -> ImportWindow:
    """What one run of an integration reads.

    * never synced, or ``full``: every record, as of now (the initial sync);
    * ``since`` (and ``until``): that window of the past, re-read (a backfill after an outage);
    * otherwise: from the last synced point (less ``overlap`` for the search index's lag) to now,
      so a run that comes late, or after failures, catches up with no gap.
    """
    now = now or datetime.now(timezone.utc)
    if full or (since is None and state.synced_through is None):
        return ImportWindow(now, now, None, now, "every record, as of now" + ("" if full else " (first sync)"))
    minutes = int(overlap.total_seconds() // 60)
    if since is not None:
        upper = min(until or now, now)
        if upper <= since:
            raise ValueError(f"the window to read ends ({upper.isoformat()}) before it starts ({since.isoformat()})")
        return ImportWindow(since, upper, since - overlap, upper, f"requested window, with {minutes} min overlap", backfill=True)
    synced = state.synced_through
    return ImportWindow(synced, now, synced - overlap, now, f"changes since the last synced point {synced.isoformat(timespec='seconds')}, with {minutes} min overlap")


@dataclass
class ImportResult:
    provider: str
    entity: str
    window: ImportWindow
    strategy: str = ""
    fetched: int = 0
    failed: int = 0
    outcome: ApplyOutcome = field(default_factory=ApplyOutcome)
    api: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    sweep_archived: bool = False
    bulk: dict[str, Any] = field(default_factory=dict)
    #: Records a failed full read had applied before this run went on from its checkpoint (0: read from the start).
    resumed_after: int = 0

    def metadata(self) -> dict[str, Any]:
        """Flat, numeric-where-possible values for the Dagster UI (plotted over time)."""
        processed = self.fetched
        success_rate = 1.0 if processed == 0 else (processed - self.failed) / processed
        return {
            "fetched": self.fetched,
            "created": self.outcome.created,
            "updated": self.outcome.updated,
            "linked": self.outcome.linked,
            "unchanged": self.outcome.unchanged,
            "deleted": self.outcome.deleted,
            "conflicts": self.outcome.conflicts,
            "failed": self.failed,
            "success_rate": round(success_rate, 4),
            "api_calls": int(self.api.get("calls", 0)),
            "rate_limited_429": int(self.api.get("rate_limited", 0)),
            "retries": int(self.api.get("retries", 0)),
            "limiter_wait_s": float(self.api.get("limiter_wait_s", 0.0)),
            "duration_s": round(self.duration_s, 3),
            "records_per_s": round(self.fetched / self.duration_s, 1) if self.duration_s > 0 else 0.0,
            "strategy": self.strategy,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "read_from": self.window.lower.isoformat() if self.window.lower else "beginning",
            "read_until": self.window.upper.isoformat(),
            "window_reason": self.window.reason,
            "swept_archived": self.sweep_archived,
            "resumed_after_records": self.resumed_after,
            **self.bulk,
        }

    def summary(self) -> str:
        o = self.outcome
        return (
            f"{self.provider}/{self.entity}: processed {self.fetched}, created {o.created}, updated {o.updated}, "
            f"linked {o.linked}, unchanged {o.unchanged}, deleted {o.deleted}, conflicts {o.conflicts}, errors {self.failed}, "
            f"{self.duration_s:.1f}s, {self.api.get('calls', 0)} API calls ({self.strategy})"
        )


def run_import(
    reader: ChangeReader,
    store: LocalStore,
    provider: Target,
    entity: str,
    window: ImportWindow,
    *,
    stats: CallStats,
    sweep_archived: bool = False,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
    interrupt: Callable[[], None] | None = None,
    logger: logging.Logger | Any = None,
) -> ImportResult:
    """Read the window's changes page by page and upsert them; then advance the sync state.

    ``progress`` hears the count read after each page is applied (its rejects recorded, its
    checkpoint saved). It may raise to stop the read there, as a cancelled run does: the window is
    not marked synced, and a full read goes on from its checkpoint next time. ``interrupt`` may do
    the same while a provider bulk job is awaited (the next run takes the job up again)."""
    logger = logger or log
    started = time.monotonic()
    provider = store.scope(provider)
    result = ImportResult(str(provider), entity, window, sweep_archived=sweep_archived or window.is_full)
    state = store.sync_state(provider, entity)
    open_rejects = {r["record_ref"] for r in store.open_rejects(provider, entity, "import")}
    last_remote = state.last_remote_update
    logger.info(
        "%s/%s: reading changes from %s to %s (%s)",
        provider, entity, window.lower.isoformat() if window.lower else "the beginning", window.upper.isoformat(), window.reason,
    )
    jobs = BulkJobMemory(store, provider, entity, "import")
    checkpoints = ReadCheckpoint(store, provider, entity)
    resumed = checkpoints.load() if window.is_full else None
    if resumed is not None:
        # The failed run's pages are applied: read on from there, synced through when it began.
        window = replace(window, upper=resumed.read_until, reason=f"{window.reason}; going on after the {resumed.records} records "
                         f"a failed run read from {resumed.read_until.isoformat(timespec='seconds')}")
        result.window, result.resumed_after = window, resumed.records
        logger.info("%s/%s: a full read stopped after %d records; reading on from there", provider, entity, resumed.records)
    # A resumed scan is not one complete snapshot: the next complete scan settles deletions.
    snapshot = bool(getattr(reader, "complete_snapshot", False)) and resumed is None
    if hasattr(reader, "prepare_bulk"):
        reader.prepare_bulk(BulkContext(jobs, eligible=window.is_full or window.backfill, threshold=provider.settings.bulk_threshold,
                                        interrupt=interrupt))
    seen: set[str] = set()
    read_records = resumed.records if resumed else 0
    try:
        changes = reader.changes(entity, window.lower, window.upper, resume=resumed.resume) if resumed else reader.changes(entity, window.lower, window.upper)
        with closing(read_ahead(changes)) as pages:
            for page in gathered(pages):
                page = checked_page(entity, page)
                page = store.tidy_page(provider, entity, page)
                if snapshot:
                    seen.update(r.external_id for r in page.records)
                    seen.update(e.external_id for e in page.errors)
                result.fetched += len(page.records) + len(page.errors)
                result.outcome.add(store.apply_remote(provider, entity, page.records))
                if page.errors:
                    result.failed += len(page.errors)
                    store.record_rejects(provider, entity, "import", page.errors)
                    for error in page.errors[:5]:
                        logger.warning("%s/%s record %s rejected: %s", provider, entity, error.external_id, error.message)
                if open_rejects:
                    fixed = [r.external_id for r in page.records if r.external_id in open_rejects]
                    if fixed:
                        store.resolve_rejects(provider, entity, "import", fixed)
                        open_rejects.difference_update(fixed)
                for record in page.records:
                    if record.updated_at and (last_remote is None or record.updated_at > last_remote):
                        last_remote = record.updated_at
                read_records += len(page.records) + len(page.errors)
                if window.is_full and page.resume is not None:
                    checkpoints.save(Checkpoint(page.resume, window.upper, read_records))
                if progress is not None:  # last: the page is applied, its rejects and checkpoint kept
                    progress(result.fetched)
        result.strategy = getattr(getattr(reader, "progress", None), "strategy", "") or ""
        result.bulk = _bulk_figures(reader)
        if snapshot:
            # The scan read every record and finished: linked records it did not return may be gone.
            result.outcome.add(_settle_unseen(reader, store, provider, entity, seen, logger))
        if result.sweep_archived:
            for page in reader.archived(entity):
                result.outcome.add(store.apply_remote(provider, entity, checked_page(entity, page).records))
        elif window.lower is not None and entity in getattr(reader, "deletions_since", ()):
            # Deletions this provider lists cheaply by time arrive with every run, not once a day.
            for page in reader.archived(entity, since=window.lower):
                result.outcome.add(store.apply_remote(provider, entity, checked_page(entity, page).records))
    except Exception as exc:
        result.duration_s = time.monotonic() - started
        result.api = stats.snapshot()
        state.last_run_at = datetime.now(timezone.utc)
        state.last_run_id = run_id
        state.last_status = "failed"
        result.bulk = _bulk_figures(reader)
        # A bulk job still running on the provider's side stays remembered for the next run.
        state.last_metrics = {"error": str(exc)[:500], **_json_safe(result.metadata()), **jobs.pending(), **checkpoints.pending()}
        store.save_sync_state(state)
        raise
    result.duration_s = time.monotonic() - started
    result.api = stats.snapshot()
    # A bulk job's records are those of its creation: the sync is read through then, not later.
    read_until = getattr(reader, "read_until", None)
    upper = min(window.upper, read_until) if read_until is not None else window.upper
    if window.is_full or state.synced_through is None or window.lower <= state.synced_through:
        state.synced_through = max(filter(None, [state.synced_through, upper]))
    state.last_remote_update = last_remote
    state.last_run_at = datetime.now(timezone.utc)
    state.last_run_id = run_id
    state.last_status = "success"
    state.last_metrics = _json_safe(result.metadata())
    store.save_sync_state(state)
    logger.info("%s", result.summary())
    return result


#: Most records applied in one transaction when pages are waiting (see :func:`gathered`).
APPLY_RECORDS = 1_000


def gathered(pages: ReadAhead[Page], limit: int | None = None) -> Iterator[Page]:
    """Pages joined with those already waiting behind them, up to ``limit`` (:data:`APPLY_RECORDS`) records.

    Never waits for a page: when the network is the slower side every page is applied as it
    comes; when the database is, pages pile up and go in larger transactions (a commit per
    page would cost more than the page's rows on SQLite).
    """
    limit = limit or APPLY_RECORDS
    for page in pages:
        if len(page.records) + len(page.errors) >= limit:
            yield page
            continue
        joined = Page(list(page.records), list(page.errors), page.resume)
        while len(joined.records) + len(joined.errors) < limit:
            more = pages.ready()
            if more is None:
                break
            joined.records += more.records
            joined.errors += more.errors
            joined.resume = more.resume
        yield joined


def _settle_unseen(reader: ChangeReader, store: LocalStore, provider: Target, entity: str, seen: set[str], logger) -> ApplyOutcome:
    """After a complete scan: re-read linked records it did not return; those gone are archived.

    Reading them again by id (instead of archiving at once) keeps a record skipped by paging that
    shifted mid-scan from being deleted locally; the reader returns the gone ones as archived.
    """
    outcome = ApplyOutcome()
    missing = store.unseen_links(provider, entity, seen)
    if not missing:
        return outcome
    logger.info("%s/%s: %d linked records absent from the complete scan; checking them one by one", provider, entity, len(missing))
    for page in reader.by_ids(entity, missing):
        page = checked_page(entity, page)
        page = store.tidy_page(provider, entity, page)
        outcome.add(store.apply_remote(provider, entity, page.records))
        if page.errors:
            store.record_rejects(provider, entity, "import", page.errors)
    return outcome


def _bulk_figures(reader: ChangeReader) -> dict[str, Any]:
    progress = getattr(reader, "bulk_progress", None)
    return progress.metadata() if progress is not None else {}


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in values.items()}


__all__ = ["ChangeReader", "ImportResult", "ImportWindow", "ReadAhead", "gathered", "plan_incremental", "plan_window", "read_ahead", "run_import"]
