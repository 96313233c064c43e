"""Export local changes to a provider in batches (plain Python; the Dagster assets call it).

For each batch of changed local records:

1. unlinked records are matched to existing provider records (e-mail, domain, CPF/CNPJ) and
   linked instead of created;
2. linked records are sent as updates;
3. the rest are written to the intent outbox (committed), then created through the provider's
   idempotent upsert; their ids are saved and the intents removed in one transaction.

A record the provider rejects never fails its neighbours: per-record errors go to the reject
ledger (with the content it was refused for: it waits for a change or ``rejects retry``), a batch
refused as a whole is split in halves until the bad record is alone, and a "already exists"
conflict becomes a link.

Exactly once (docs/exactly-once.md): an export holds the lease of its integration and entity
(:mod:`crm_pipelines.storage.leases`), so no other process sends the same records meanwhile.
Intents name the export that wrote them; before every batch, the batch's intents left by an
earlier attempt or a dead export are settled by idempotency key: found means linked, not found
means sent again only once the intent is older than :data:`LATE_CREATE_PATIENCE_S` (a create
the provider applies late is never sent twice within that time).

An export of more than the integration's ``bulk_threshold`` records goes, when the writer offers
it (``bulk_write``), through the provider's bulk API: the same steps, with batches of
:data:`BULK_BATCH` records each sent as one bulk job (see docs/bulk.md). A job a killed run left
is found again by its id and settled (``settle_bulk``) before the intents are looked up. A writer
that checks the provider's daily bulk allocations first (``bulk_allowance``) may send the export on
the regular path instead, saying why in the run's metadata (``bulk_fallback``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Protocol

from dataclasses import replace

from crm_pipelines.core.errors import QuotaExhausted, RetryableError
from crm_pipelines.core.http import CallStats
from crm_pipelines.core.model import RecordError
from crm_pipelines.storage.leases import ExportLease
from crm_pipelines.storage.store import ExportItem, Intent, LocalChange, LocalStore, Target, utcnow
from crm_pipelines.storage.validate import split_valid
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
#: Seconds a create whose outcome is unknown waits to be found by its idempotency key before it
#: may be sent again (each export looks it up again meanwhile).
LATE_CREATE_PATIENCE_S = float(os.environ.get("CRM_LATE_CREATE_PATIENCE_S", "600"))
#: Reject categories that may clear by themselves (the record is tried again by the next export).
TRANSIENT_REJECTS = frozenset({"CONFLICT"})


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
    waiting: int = 0
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
            "waiting_for_late_creates": self.waiting,
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
            "bulk_api": bool(self.bulk.get("bulk_job_id")),
            **self.bulk,
        }

    def summary(self) -> str:
        if self.dry_run:
            return f"{self.provider}/{self.entity} dry run: {self.selected} selected, would create {self.would_create}, would update {self.would_update}"
        return (
            f"{self.provider}/{self.entity} export: selected {self.selected}, created {self.created}, updated {self.updated}, "
            f"linked {self.linked}, rejected {self.rejected}{f', waiting {self.waiting}' if self.waiting else ''}, {self.api.get('calls', 0)} API calls, {self.duration_s:.1f}s"
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
    """What an export will send: (local id, external id or None, content hash or None) per changed record."""

    items: list[ExportItem]
    recovered: int = 0
    unchanged: int = 0
    waiting: int = 0


@dataclass
class Settled:
    """Intents looked up by idempotency key: linked (they landed), waiting (too recent to give up on), dropped."""

    linked: dict[int, str] = field(default_factory=dict)
    waiting: set[int] = field(default_factory=set)
    dropped: list[int] = field(default_factory=list)


def settle_intents(writer: Writer, store: LocalStore, provider: Target, entity: str, intents: Sequence[Intent], *, patience_s: float | None = None) -> Settled:
    """Look creates of unknown outcome up by idempotency key; link those that landed.

    One not found stays in the outbox (and its record is not sent) until it is older than the
    patience: the provider may still apply it.
    """
    settled = Settled()
    if not intents:
        return settled
    patience_s = LATE_CREATE_PATIENCE_S if patience_s is None else patience_s
    by_key = {i.key: i for i in intents}
    found = {key: ext for key, ext in writer.find_by_keys(entity, list(by_key)).items() if key in by_key}
    wanted = {by_key[key].local_id: ext for key, ext in found.items()}
    settled.linked = store.link_existing(provider, entity, wanted)
    # What landed is the content the intent was written for: recorded as exported (not sent again unless changed since).
    sent = {i.local_id: i.content_hash for i in intents}
    store.save_exported(provider, entity, [], [(lid, sent[lid], None) for lid, ext in settled.linked.items() if wanted.get(lid) == ext])
    now = utcnow()
    for intent in intents:
        if intent.key in found:
            continue
        if intent.sent_at is not None and patience_s > 0 and (now - intent.sent_at).total_seconds() < patience_s:
            settled.waiting.add(intent.local_id)
        else:
            settled.dropped.append(intent.local_id)
    store.drop_intents(provider, entity, [by_key[k].local_id for k in found] + settled.dropped)
    return settled


def plan_export(writer: Writer, store: LocalStore, provider: Target, entity: str, *, only_new: bool = False, dry_run: bool = False,
                ids: Sequence[int] | None = None, retry_rejected: bool = False, logger: Any = None,
                interrupt: Callable[[], None] | None = None) -> ExportPlan:
    """Settle creates left in flight by an export that is gone, then list the records to send (ids only; ``ids`` limits them).

    Call it holding the lease: every intent in the outbox then belongs to an export that no longer runs.
    """
    logger = logger or log
    provider = store.scope(provider)
    if not dry_run and hasattr(writer, "settle_bulk"):
        for memory in BulkJobMemory(store, provider, entity, "export").family():
            writer.settle_bulk(memory, BulkProgress(logger=logger, interrupt=interrupt))
    settled = Settled() if dry_run else _recover_intents(writer, store, provider, entity, logger)
    # Only ids and hashes are kept (memory stays small for millions of rows); fields are re-read per batch.
    items = [item for item in store.export_items(provider, entity, only_new=only_new, ids=ids, retry_rejected=retry_rejected)
             if item.local_id not in settled.waiting]
    unchanged = 0 if only_new else max(store.count(entity, store_id=provider.store_id) - len(items), 0)
    return ExportPlan(items, len(settled.linked), unchanged, len(settled.waiting))


def send_changes(
    writer: Writer,
    store: LocalStore,
    provider: Target,
    entity: str,
    items: Sequence[tuple[int, str | None, str | None]],
    *,
    stats: CallStats,
    batch_size: int = 100,
    logger: Any = None,
    label: str = "",
    progress: Callable[[int, int], None] | None = None,
    interrupt: Callable[[], None] | None = None,
    bulk: bool | None = None,
    slot: str = "",
    lease: ExportLease | None = None,
) -> ExportResult:
    """Send the given changes in batches (holding ``lease``, checked before every batch).

    The database work overlaps the provider calls: the next batch's rows are read while the
    current one is sent, and what a batch's answers say (links, hashes, intents done, rejects) is
    committed while the next one is sent (see :mod:`crm_pipelines.sync.overlap`).

    ``bulk`` takes the writer's bulk path (None: when there are more items than the integration's
    ``bulk_threshold``); ``slot`` tells parallel slices of one export apart (each remembers its job).
    ``progress`` hears each batch once its answers are queued for the database, and may raise to
    stop the export there (a cancelled run); ``interrupt`` may do the same while a bulk job is
    awaited (the job is remembered: the next export collects its results).
    """
    logger = logger or log
    provider = store.scope(provider)
    started = time.monotonic()
    if bulk is None:
        bulk = bulk_chosen(writer, provider, len(items))
    bulk_writes, bulk_progress = None, BulkProgress(logger=logger, interrupt=interrupt)
    if bulk and hasattr(writer, "bulk_allowance"):
        # The provider's daily bulk allocations are checked first: the regular path when the jobs do not fit.
        choice = writer.bulk_allowance(entity, len(items))
        if not choice.bulk:
            bulk = False
            bulk_progress.fall_back(choice.reason)
    if bulk and hasattr(writer, "bulk_write"):
        memory = BulkJobMemory(store, provider, entity, "export" + (f":{slot}" if slot else ""))
        writer = bulk_writes = BulkWrites(writer, memory, bulk_progress)
        batch_size = bulk_writes.batch_size
        logger.info("%s/%s%s: %d records to send through the bulk API", provider, entity, label, len(items))
    batch_size = max(1, min(batch_size, writer.batch_size))
    result = ExportResult(str(provider), entity, selected=len(items))
    total_batches = (len(items) + batch_size - 1) // batch_size
    chunks = (items[index * batch_size : (index + 1) * batch_size] for index in range(total_batches))
    loaded = read_ahead((_load_batch(store, provider, entity, chunk) for chunk in chunks), depth=1)
    owner = lease.owner if lease is not None else None
    with WriteBehind(store) as behind, closing(loaded):
        for index, next_batch in enumerate(loaded):
            if lease is not None:
                lease.check()
            behind.check()  # a failed write of the batches before stops the export (the batches sent meanwhile keep their intents)
            batch = _settle_batch_intents(writer, behind, provider, entity, next_batch, result)
            _export_batch(writer, behind, provider, entity, batch, result, owner=owner, lease=lease)
            result.batches += 1
            done = min((index + 1) * batch_size, len(items))
            if progress is not None:
                progress(done, len(items))
            elapsed = time.monotonic() - started
            eta = elapsed / done * (len(items) - done) if done else 0.0
            if index == 0 or (index + 1) % 10 == 0 or index + 1 == total_batches:
                logger.info("%s/%s%s: batch %d/%d, %d of %d records, %d created, %d updated, %d linked, %d rejected, ETA %.0fs",
                            provider, entity, label, index + 1, total_batches, done, len(items), result.created, result.updated, result.linked, result.rejected, eta)
    if result.waiting:
        logger.warning("%s/%s%s: %d creates of unknown outcome wait to be found at the provider; a later export looks them up again before sending",
                       provider, entity, label, result.waiting)
    result.duration_s = time.monotonic() - started
    result.api = stats.snapshot()
    if bulk_writes is not None or bulk_progress.fallback:
        result.bulk = bulk_progress.metadata()
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


@dataclass(frozen=True)
class LoadedBatch:
    """A batch's records as they are now, and the intents an earlier attempt or a dead export left for them."""

    changes: list[LocalChange]
    intents: list[Intent]


def _load_batch(store: LocalStore, provider: Target, entity: str, items: Sequence[tuple[int, str | None, str | None]]) -> LoadedBatch:
    """Read while the batch before is sent: its records and their intents (only this export, holding the lease, writes
    intents of its records, and each record is in one batch, so what is read stays true until the batch's turn)."""
    changes = store.load_changes(entity, items, provider=provider)
    return LoadedBatch(changes, store.intents(provider, entity, [c.local_id for c in changes]) if changes else [])


def _settle_batch_intents(writer: Writer, store, provider, entity: str, loaded: LoadedBatch, result: ExportResult) -> list[LocalChange]:
    """Intents of this batch's records left by an earlier attempt or a dead export: settled before anything is sent."""
    batch, intents = loaded.changes, loaded.intents
    if not intents:
        return list(batch)
    settled = settle_intents(writer, store, provider, entity, intents)
    result.recovered += len(settled.linked)
    result.waiting += len(settled.waiting)
    sent = {i.local_id: i.content_hash for i in intents}
    return [replace(c, external_id=settled.linked.get(c.local_id, c.external_id)) for c in batch
            if c.local_id not in settled.waiting and not (c.local_id in settled.linked and sent[c.local_id] == c.digest)]


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
    retry_rejected: bool = False,
    progress: Callable[[int, int], None] | None = None,
    interrupt: Callable[[], None] | None = None,
    logger: logging.Logger | Any = None,
    lease: ExportLease | None = None,
) -> ExportResult:
    """Plan and send in one go (the assets split the two across ops)."""
    logger = logger or log
    provider = store.scope(provider)
    started = time.monotonic()
    plan = plan_export(writer, store, provider, entity, only_new=only_new, dry_run=dry_run, ids=ids, retry_rejected=retry_rejected, logger=logger,
                       interrupt=interrupt)
    logger.info("%s/%s: %d records to export%s", provider, entity, len(plan.items), " (dry run)" if dry_run else "")
    if dry_run:
        result = dry_run_result(provider, entity, plan)
    else:
        result = send_changes(writer, store, provider, entity, plan.items, stats=stats, batch_size=batch_size, progress=progress, interrupt=interrupt,
                              logger=logger, lease=lease)
    result.recovered += plan.recovered
    result.waiting += plan.waiting
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
        for name in ("selected", "unchanged", "created", "updated", "linked", "rejected", "recovered", "waiting", "batches", "would_create", "would_update"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.duration_s = max(total.duration_s, r.duration_s)
        calls["calls"] += r.api.get("calls", 0)
        calls["rate_limited"] += r.api.get("rate_limited", 0)
        for kind, n in r.api.get("by_kind", {}).items():
            calls["by_kind"][kind] = calls["by_kind"].get(kind, 0) + n
    total.api = calls
    total.bulk = merged_metadata([r.bulk for r in results if r.bulk])
    return total


def _recover_intents(writer: Writer, store: LocalStore, provider: Target, entity: str, logger) -> Settled:
    """Creates that may have reached the provider before an export stopped: link those that did."""
    pending = store.intents(provider, entity)
    if not pending:
        return Settled()
    settled = settle_intents(writer, store, provider, entity, pending)
    logger.info("%s/%s: %d creates were in flight when a previous export stopped; %d had reached the provider and are now linked, %d are "
                "still looked for (not sent again yet)", provider, entity, len(pending), len(settled.linked), len(settled.waiting))
    return settled


@dataclass
class _Creates:
    """What creating a batch came to: failures to reject, records waiting on an unknown outcome, an error to raise once saved."""

    failures: list = field(default_factory=list)
    waiting: set[int] = field(default_factory=set)
    unsent: set[int] = field(default_factory=set)
    error: BaseException | None = None


def _create_settling_unknown_outcomes(writer, entity, to_create, rejected_exc, outcomes: list, created_rows: list, digests, lease: ExportLease | None) -> _Creates:
    """Create ``to_create``; when a create's outcome is unknown, link what landed and never send the rest again before its time.

    A refusal of the provider (429, spent quota) stops the batch: the creates answered by then are
    saved, the others keep their intents marked as not in flight (the next attempt finds those
    that landed by key and sends the rest at once). After
    an error answer (5xx) the batch is looked up and what did not land is sent again, up to
    :data:`AMBIGUOUS_CREATE_RETRIES` times in a row without progress. A create with no answer
    (timeout, reset) may still reach the provider: what is not found waits (its intent stays) and
    is never sent again before :data:`LATE_CREATE_PATIENCE_S`.
    """
    pending = list(to_create)
    done = _Creates()
    tries_left = AMBIGUOUS_CREATE_RETRIES
    while True:
        before = len(pending)
        try:
            if lease is not None:
                lease.check()
            done.failures += _send_isolating_failures(lambda rs: writer.create(entity, rs), pending, rejected_exc, outcomes)
            return done
        except (RetryableError, QuotaExhausted) as exc:
            refused = isinstance(exc, QuotaExhausted) or exc.rate_limited
            settled = {lid for wr in outcomes for lid in (*wr.written, *wr.rejected, *wr.conflicts)} | {r.local_id for r, _ in done.failures}
            pending = [r for r in pending if r.local_id not in settled]
            if refused:  # nothing is on its way: the next attempt finds what landed and sends the rest at once
                done.unsent = {r.local_id for r in pending}
                done.error = exc
                return done
            if exc.status is None:  # no answer (timeout, reset): the request may still be on its way
                time.sleep(AMBIGUOUS_SETTLE_S)
            keys = {f"{entity}:{r.local_id}": r.local_id for r in pending}
            found = writer.find_by_keys(entity, list(keys)) if keys else {}
            for key, external_id in found.items():
                if key in keys:
                    created_rows.append((keys[key], external_id, digests[keys[key]], None))
            landed = {keys[k] for k in found if k in keys}
            pending = [r for r in pending if r.local_id not in landed]
            if not pending:
                return done
            if exc.status is None and LATE_CREATE_PATIENCE_S > 0:
                log.warning("%s: %d creates of unknown outcome not found yet; they are looked up again later, not sent again now", entity, len(pending))
                done.waiting = {r.local_id for r in pending}
                return done
            log.warning("%s: a create's outcome is unknown (%s); %d not found by idempotency key are sent again", entity, exc, len(pending))
            if len(pending) >= before:  # no progress since the last try
                tries_left -= 1
                if tries_left < 0:
                    raise


def _reject_rows(failures, rejects: list[RecordError]) -> None:
    rejects.extend(RecordError(str(r.local_id), getattr(e, "category", "REJECTED"), getattr(e, "message", str(e))) for r, e in failures)


def _export_batch(writer, store, provider, entity, batch: Sequence[LocalChange], result: ExportResult, *, owner: str | None = None,
                  lease: ExportLease | None = None) -> None:
    outgoing, rejected_exc = writer.make_record, writer.Rejected
    all_digests = {c.local_id: c.digest for c in batch}
    storable, rejects = split_valid(entity, batch)  # values the local schema cannot hold (written by another application)
    sendable = []
    for change in storable:
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
        found = writer.match(entity, [outgoing(c.local_id, c.fields) for c in unlinked])
        matched = store.link_existing(provider, entity, found) if found else {}  # none found: no need to wait for the queued writes
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
    creates = _Creates()
    if to_update:
        outcomes: list = []
        failures = _send_isolating_failures(lambda rs: writer.update(entity, rs), to_update, rejected_exc, outcomes)
        apply(outcomes, created=False)
        _reject_rows(failures, rejects)
    if to_create:
        store.write_intents(provider, entity, [(r.local_id, f"{entity}:{r.local_id}", digests[r.local_id]) for r in to_create], owner=owner,
                            awaited=not getattr(writer, "creates_are_upserts", False))
        outcomes = []
        try:
            creates = _create_settling_unknown_outcomes(writer, entity, to_create, rejected_exc, outcomes, created_rows, digests, lease)
        except BaseException:  # landed creates are saved whatever stops the batch; the rest keep their intents
            apply(outcomes, created=True)
            store.save_exported(provider, entity, created_rows, updated_rows)
            raise
        apply(outcomes, created=True)
        _reject_rows(creates.failures, rejects)
    if conflicts and creates.error is None:
        # "Already exists": link to the existing record and send this one as an update to it.
        linked = store.link_existing(provider, entity, conflicts)
        result.linked += len(linked)
        retry = [outgoing(lid, next(c.fields for c in batch if c.local_id == lid), ext) for lid, ext in linked.items()]
        if retry:
            outcomes = []
            failures = _send_isolating_failures(lambda rs: writer.update(entity, rs), retry, rejected_exc, outcomes)
            apply(outcomes, created=False)
            _reject_rows(failures, rejects)
        for lid in set(conflicts) - set(linked):
            rejects.append(RecordError(str(lid), "CONFLICT", f"provider record {conflicts[lid]} already exists and is linked to another local record"))

    store.save_exported(provider, entity, created_rows, updated_rows)
    created_ids = {c[0] for c in created_rows}
    kept = created_ids | creates.waiting | creates.unsent
    failed_creates = [r.local_id for r in to_create if r.local_id not in kept]
    store.drop_intents(provider, entity, failed_creates)
    if creates.unsent:
        store.mark_intents_not_in_flight(provider, entity, sorted(creates.unsent))
    if rejects:
        hashes = {r.external_id: all_digests[int(r.external_id)] for r in rejects if r.category not in TRANSIENT_REJECTS and r.external_id.isdigit()}
        store.record_rejects(provider, entity, "export", rejects, hashes=hashes)
    written = [str(c[0]) for c in created_rows] + [str(u[0]) for u in updated_rows]
    store.resolve_rejects(provider, entity, "export", written)
    result.created += len(created_rows)
    result.updated += len(updated_rows)
    result.rejected += len({r.external_id for r in rejects})
    result.waiting += len(creates.waiting)
    if creates.error is not None:
        raise creates.error
