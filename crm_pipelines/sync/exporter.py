"""Export local changes to a provider in batches (plain Python; the Dagster assets call it).

For each batch of changed local records:

1. unlinked records are matched to existing provider records (e-mail, domain, CPF/CNPJ) and
   linked instead of created;
2. linked records are sent as updates;
3. the rest are written to the intent outbox (committed), then created through the provider's
   idempotent upsert; their ids are saved and the intents removed in one transaction.

A record the provider rejects never fails its neighbours: per-record errors go to the reject
ledger, a batch refused as a whole is split in halves until the bad record is alone, and a
"already exists" conflict becomes a link. A run killed at any point leaves intents behind; the
next run first looks those records up by their idempotency key, so nothing is created twice.

An export of more than the integration's ``bulk_threshold`` records goes, when the writer offers
it (``bulk_write``), through the provider's bulk API: the same steps, with batches of
:data:`BULK_BATCH` records each sent as one bulk job (see docs/bulk.md). A job a killed run left
is found again by its id and settled (``settle_bulk``) before the intents are looked up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Protocol

from crm_pipelines.core.errors import RetryableError
from crm_pipelines.core.http import CallStats
from crm_pipelines.core.model import RecordError
from crm_pipelines.storage.store import LocalChange, LocalStore, Target
from crm_pipelines.sync.bulk import BulkJobMemory, BulkProgress, merged_metadata
from crm_pipelines.sync.overlap import WriteBehind, read_ahead

log = logging.getLogger(__name__)

#: A create whose outcome is unknown (timeout, reset, 5xx) is looked up by its idempotency key
#: before it is sent again; after this many tries in a row without progress the run fails and the
#: next one settles the batch from the intent outbox.
AMBIGUOUS_CREATE_RETRIES = 4
#: Seconds to let a request the client gave up on reach the provider before looking it up.
AMBIGUOUS_SETTLE_S = 5.0
#: Records per batch on the bulk path (each batch: one job for its updates, one for its creates).
BULK_BATCH = 50_000


class Writer(Protocol):
    """What a provider module supplies to write: batch size, record type, batch-refusal error, calls."""

    batch_size: int
    make_record: Callable[..., Any]
    Rejected: type[Exception]

    def match(self, entity: str, records: Sequence[Any]) -> dict[int, str]: ...

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]: ...

    def create(self, entity: str, records: Sequence[Any]) -> Any: ...

    def update(self, entity: str, records: Sequence[Any]) -> Any: ...

    def check(self, entity: str, fields: dict[str, Any]) -> str | None: ...


@dataclass
class ExportResult:
    provider: str
    entity: str
    dry_run: bool = False
    selected: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    linked: int = 0
    rejected: int = 0
    recovered: int = 0
    batches: int = 0
    api: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    would_create: int = 0
    would_update: int = 0
    bulk: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        sent = self.created + self.updated + self.rejected
        return {
            "selected": self.selected,
            "unchanged": self.unchanged,
            "created": self.created,
            "updated": self.updated,
            "linked": self.linked,
            "rejected": self.rejected,
            "recovered_after_crash": self.recovered,
            "batches": self.batches,
            "success_rate": round(1.0 if sent == 0 else (sent - self.rejected) / sent, 4),
            "api_calls": int(self.api.get("calls", 0)),
            "write_calls": int(self.api.get("by_kind", {}).get("write", 0)),
            "lookup_calls": int(self.api.get("by_kind", {}).get("match", 0)) + int(self.api.get("by_kind", {}).get("search", 0)),
            "rate_limited_429": int(self.api.get("rate_limited", 0)),
            "duration_s": round(self.duration_s, 3),
            "dry_run": self.dry_run,
            "would_create": self.would_create,
            "would_update": self.would_update,
            "bulk_api": bool(self.bulk),
            **self.bulk,
        }

    def summary(self) -> str:
        if self.dry_run:
            return f"{self.provider}/{self.entity} dry run: {self.selected} selected, would create {self.would_create}, would update {self.would_update}"
        return (
            f"{self.provider}/{self.entity} export: selected {self.selected}, created {self.created}, updated {self.updated}, "
            f"linked {self.linked}, rejected {self.rejected}, {self.api.get('calls', 0)} API calls, {self.duration_s:.1f}s"
        )


def _send_isolating_failures(send: Callable[[Sequence[Any]], Any], records: Sequence[Any], rejected_exc: type[Exception], results: list) -> list[tuple[Any, Exception]]:
    """Send ``records``; when the batch is refused as a whole, split it until the culprits are alone."""
    try:
        results.append(send(records))
        return []
    except rejected_exc as exc:
        if len(records) == 1:
            return [(records[0], exc)]
        middle = len(records) // 2
        return _send_isolating_failures(send, records[:middle], rejected_exc, results) + _send_isolating_failures(send, records[middle:], rejected_exc, results)


@dataclass
class ExportPlan:
    """What an export will send: (local id, external id or None, content hash) per changed record."""

    items: list[tuple[int, str | None, str]]
    recovered: int = 0
    unchanged: int = 0


def plan_export(writer: Writer, store: LocalStore, provider: Target, entity: str, *, only_new: bool = False, dry_run: bool = False,
                ids: Sequence[int] | None = None, logger: Any = None) -> ExportPlan:
    """Settle creates left in flight by a crash, then list the records to send (ids only; ``ids`` limits them)."""
    logger = logger or log
    provider = store.scope(provider)
    if not dry_run and hasattr(writer, "settle_bulk"):
        for memory in BulkJobMemory(store, provider, entity, "export").family():
            writer.settle_bulk(memory, BulkProgress(logger=logger))
    recovered = 0 if dry_run else _recover_intents(writer, store, provider, entity, logger)
    # Only ids and hashes are kept (memory stays small for millions of rows); fields are re-read per batch.
    items = [(c.local_id, c.external_id, c.digest) for c in store.export_candidates(provider, entity, only_new=only_new, ids=ids)]
    unchanged = 0 if only_new else max(store.count(entity, store_id=provider.store_id) - len(items), 0)
    return ExportPlan(items, recovered, unchanged)


def send_changes(
    writer: Writer,
    store: LocalStore,
    provider: Target,
    entity: str,
    items: Sequence[tuple[int, str | None, str]],
    *,
    stats: CallStats,
    batch_size: int = 100,
    logger: Any = None,
    label: str = "",
    progress: Callable[[int, int], None] | None = None,
    bulk: bool | None = None,
    slot: str = "",
) -> ExportResult:
    """Send the given changes in batches.

    The database work overlaps the provider calls: the next batch's rows are read while the
    current one is sent, and what a batch's answers say (links, hashes, intents done, rejects) is
    committed while the next one is sent (see :mod:`crm_pipelines.sync.overlap`).

    ``bulk`` takes the writer's bulk path (None: when there are more items than the integration's
    ``bulk_threshold``); ``slot`` tells parallel slices of one export apart (each remembers its job).
    """
    logger = logger or log
    provider = store.scope(provider)
    started = time.monotonic()
    if bulk is None:
        bulk = bulk_chosen(writer, provider, len(items))
    bulk_writes = None
    if bulk and hasattr(writer, "bulk_write"):
        memory = BulkJobMemory(store, provider, entity, "export" + (f":{slot}" if slot else ""))
        writer = bulk_writes = BulkWrites(writer, memory, BulkProgress(logger=logger))
        batch_size = bulk_writes.batch_size
        logger.info("%s/%s%s: %d records to send through the bulk API", provider, entity, label, len(items))
    batch_size = max(1, min(batch_size, writer.batch_size))
    result = ExportResult(str(provider), entity, selected=len(items))
    total_batches = (len(items) + batch_size - 1) // batch_size
    chunks = (items[index * batch_size : (index + 1) * batch_size] for index in range(total_batches))
    loaded = read_ahead((store.load_changes(entity, chunk, provider=provider) for chunk in chunks), depth=1)
    with WriteBehind(store) as behind, closing(loaded):
        for index, batch in enumerate(loaded):
            _export_batch(writer, behind, provider, entity, batch, result)
            result.batches += 1
            done = min((index + 1) * batch_size, len(items))
            if progress is not None:
                progress(done, len(items))
            elapsed = time.monotonic() - started
            eta = elapsed / done * (len(items) - done) if done else 0.0
            if index == 0 or (index + 1) % 10 == 0 or index + 1 == total_batches:
                logger.info("%s/%s%s: batch %d/%d, %d of %d records, %d created, %d updated, %d linked, %d rejected, ETA %.0fs",
                            provider, entity, label, index + 1, total_batches, done, len(items), result.created, result.updated, result.linked, result.rejected, eta)
    result.duration_s = time.monotonic() - started
    result.api = stats.snapshot()
    if bulk_writes is not None:
        result.bulk = bulk_writes.progress.metadata()
    return result


def bulk_chosen(writer: Writer, integration: Any, count: int) -> bool:
    """Whether ``count`` records go through the writer's bulk path: it has one and they are above the threshold."""
    threshold = integration.settings.bulk_threshold
    return hasattr(writer, "bulk_write") and threshold is not None and count > threshold


class BulkWrites:
    """A writer's bulk path seen as a writer: each create or update call is one bulk job."""

    batch_size = BULK_BATCH

    def __init__(self, writer: Any, memory: BulkJobMemory, progress: BulkProgress) -> None:
        self.writer, self.memory, self.progress = writer, memory, progress
        self.make_record, self.Rejected = writer.make_record, writer.Rejected
        self.match, self.find_by_keys, self.check = writer.match, writer.find_by_keys, writer.check

    def create(self, entity: str, records: Sequence[Any]) -> Any:
        return self.writer.bulk_write(entity, records, create=True, memory=self.memory, progress=self.progress)

    def update(self, entity: str, records: Sequence[Any]) -> Any:
        return self.writer.bulk_write(entity, records, create=False, memory=self.memory, progress=self.progress)


def export_entity(
    writer: Writer,
    store: LocalStore,
    provider: Target,
    entity: str,
    *,
    stats: CallStats,
    batch_size: int = 100,
    only_new: bool = False,
    dry_run: bool = False,
    ids: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    logger: logging.Logger | Any = None,
) -> ExportResult:
    """Plan and send in one go (the assets split the two across ops)."""
    logger = logger or log
    provider = store.scope(provider)
    started = time.monotonic()
    plan = plan_export(writer, store, provider, entity, only_new=only_new, dry_run=dry_run, ids=ids, logger=logger)
    logger.info("%s/%s: %d records to export%s", provider, entity, len(plan.items), " (dry run)" if dry_run else "")
    if dry_run:
        result = dry_run_result(provider, entity, plan)
    else:
        result = send_changes(writer, store, provider, entity, plan.items, stats=stats, batch_size=batch_size, progress=progress, logger=logger)
    result.recovered = plan.recovered
    result.unchanged = plan.unchanged
    result.duration_s = time.monotonic() - started
    result.api = stats.snapshot()
    logger.info("%s", result.summary())
    return result


def dry_run_result(provider: Target, entity: str, plan: ExportPlan) -> ExportResult:
    result = ExportResult(str(provider), entity, dry_run=True, selected=len(plan.items), unchanged=plan.unchanged)
    result.would_update = sum(1 for _, external_id, _ in plan.items if external_id)
    result.would_create = result.selected - result.would_update
    return result


def combine(results: Sequence[ExportResult], provider: str, entity: str) -> ExportResult:
    total = ExportResult(provider, entity)
    calls: dict[str, Any] = {"calls": 0, "rate_limited": 0, "by_kind": {}}
    for r in results:
        for name in ("selected", "unchanged", "created", "updated", "linked", "rejected", "recovered", "batches", "would_create", "would_update"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.duration_s = max(total.duration_s, r.duration_s)
        calls["calls"] += r.api.get("calls", 0)
        calls["rate_limited"] += r.api.get("rate_limited", 0)
        for kind, n in r.api.get("by_kind", {}).items():
            calls["by_kind"][kind] = calls["by_kind"].get(kind, 0) + n
    total.api = calls
    total.bulk = merged_metadata([r.bulk for r in results if r.bulk])
    return total


def _recover_intents(writer: Writer, store: LocalStore, provider: Target, entity: str, logger) -> int:
    """Creates that may have reached the provider before a crash: link those that did."""
    pending = store.pending_intents(provider, entity)
    if not pending:
        return 0
    found = writer.find_by_keys(entity, list(pending.values()))
    by_key = {key: local_id for local_id, key in pending.items()}
    linked = store.link_existing(provider, entity, {by_key[key]: ext for key, ext in found.items() if key in by_key})
    store.drop_intents(provider, entity, list(pending))
    logger.info("%s/%s: %d creates were in flight when a previous run stopped; %d had reached the provider and are now linked",
                provider, entity, len(pending), len(linked))
    return len(linked)


def _create_settling_unknown_outcomes(writer, entity, to_create, rejected_exc, outcomes: list, created_rows: list, digests) -> list:
    """Create ``to_create``; when a create's outcome is unknown, link what landed and send only the rest again."""
    pending = list(to_create)
    failures: list = []
    tries_left = AMBIGUOUS_CREATE_RETRIES
    while True:
        before = len(pending)
        try:
            failures += _send_isolating_failures(lambda rs: writer.create(entity, rs), pending, rejected_exc, outcomes)
            return failures
        except RetryableError as exc:
            if exc.rate_limited or tries_left <= 0:
                raise
            log.warning("%s: a create's outcome is unknown (%s); looking the batch up by idempotency key before sending again", entity, exc)
            if exc.status is None:  # no answer (timeout, reset): the request may still be on its way
                time.sleep(AMBIGUOUS_SETTLE_S)
            settled = {lid for wr in outcomes for lid in (*wr.written, *wr.rejected, *wr.conflicts)} | {r.local_id for r, _ in failures}
            pending = [r for r in pending if r.local_id not in settled]
            keys = {f"{entity}:{r.local_id}": r.local_id for r in pending}
            found = writer.find_by_keys(entity, list(keys)) if keys else {}
            for key, external_id in found.items():
                if key in keys:
                    created_rows.append((keys[key], external_id, digests[keys[key]], None))
            landed = {keys[k] for k in found if k in keys}
            pending = [r for r in pending if r.local_id not in landed]
            if not pending:
                return failures
            if len(pending) >= before:  # no progress since the last try
                tries_left -= 1


def _export_batch(writer, store, provider, entity, batch: Sequence[LocalChange], result: ExportResult) -> None:
    outgoing, rejected_exc = writer.make_record, writer.Rejected
    rejects: list[RecordError] = []
    sendable = []
    for change in batch:
        problem = change.problem or writer.check(entity, change.fields)
        if problem:
            rejects.append(RecordError(str(change.local_id), "INVALID_FIELD", problem))
        else:
            sendable.append(change)
    batch = sendable
    digests = {c.local_id: c.digest for c in batch}
    external = {c.local_id: c.external_id for c in batch if c.external_id}
    unlinked = [c for c in batch if not c.external_id]
    if unlinked:
        matched = store.link_existing(provider, entity, writer.match(entity, [outgoing(c.local_id, c.fields) for c in unlinked]))
        external.update(matched)
        result.linked += len(matched)

    to_update = [outgoing(c.local_id, c.fields, external[c.local_id]) for c in batch if c.local_id in external]
    to_create = [outgoing(c.local_id, c.fields) for c in batch if c.local_id not in external]

    created_rows, updated_rows = [], []

    def apply(write_results, created: bool):
        for wr in write_results:
            for local_id, (ext, rua, _new) in wr.written.items():
                if created:
                    created_rows.append((local_id, ext, digests[local_id], rua))
                else:
                    updated_rows.append((local_id, digests[local_id], rua))
            for local_id, (category, message) in wr.rejected.items():
                rejects.append(RecordError(str(local_id), category, message))
            for local_id, existing in wr.conflicts.items():
                conflicts[local_id] = existing

    conflicts: dict[int, str] = {}
    if to_update:
        outcomes: list = []
        failures = _send_isolating_failures(lambda rs: writer.update(entity, rs), to_update, rejected_exc, outcomes)
        apply(outcomes, created=False)
        rejects.extend(RecordError(str(r.local_id), getattr(e, "category", "REJECTED"), getattr(e, "message", str(e))) for r, e in failures)
    if to_create:
        store.write_intents(provider, entity, [(r.local_id, f"{entity}:{r.local_id}", digests[r.local_id]) for r in to_create])
        outcomes = []
        failures = _create_settling_unknown_outcomes(writer, entity, to_create, rejected_exc, outcomes, created_rows, digests)
        apply(outcomes, created=True)
        rejects.extend(RecordError(str(r.local_id), getattr(e, "category", "REJECTED"), getattr(e, "message", str(e))) for r, e in failures)
    if conflicts:
        # "Already exists": link to the existing record and send this one as an update to it.
        linked = store.link_existing(provider, entity, conflicts)
        result.linked += len(linked)
        retry = [outgoing(lid, next(c.fields for c in batch if c.local_id == lid), ext) for lid, ext in linked.items()]
        if retry:
            outcomes = []
            failures = _send_isolating_failures(lambda rs: writer.update(entity, rs), retry, rejected_exc, outcomes)
            apply(outcomes, created=False)
            rejects.extend(RecordError(str(r.local_id), getattr(e, "category", "REJECTED"), getattr(e, "message", str(e))) for r, e in failures)
        for lid in set(conflicts) - set(linked):
            rejects.append(RecordError(str(lid), "CONFLICT", f"provider record {conflicts[lid]} already exists and is linked to another local record"))

    store.save_exported(provider, entity, created_rows, updated_rows)
    created_ids = {c[0] for c in created_rows}
    failed_creates = [r.local_id for r in to_create if r.local_id not in created_ids]
    store.drop_intents(provider, entity, failed_creates)
    if rejects:
        store.record_rejects(provider, entity, "export", rejects)
    written = [str(c[0]) for c in created_rows] + [str(u[0]) for u in updated_rows]
    store.resolve_rejects(provider, entity, "export", written)
    result.created += len(created_rows)
    result.updated += len(updated_rows)
    result.rejected += len({r.external_id for r in rejects})
