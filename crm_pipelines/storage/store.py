"""Reading and writing the local database in bulk.

An import is applied in chunks of up to :attr:`LocalStore.CHUNK_SIZE` records, each in one
transaction: the store decides what every record does (newer wins by modification time, content
hashes, conflicts, identity matches) and :mod:`crm_pipelines.storage.bulk` runs a handful of
set-based statements for the whole chunk (links looked up at once, new rows and links written at
once, changed ones updated at once). A chunk either lands whole or not at all, so a crash or a
retry never leaves it half-applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Row, String, and_, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crm_pipelines.core.hygiene import PHONE_FIELDS, Tidied, tidy, tidy_page
from crm_pipelines.core.model import FIELDS, MATCH_KEYS, Page, RecordError, RemoteRecord, content_hash
from crm_pipelines.core.normalize import normalize_phone, phone_digits
from crm_pipelines.integrations.model import Integration
from crm_pipelines.integrations.registry import IntegrationRegistry
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.mapping.integration import has_mapping, held_names, mapping_for
from crm_pipelines.mapping.spec import custom_key, is_custom
from crm_pipelines.providers.registry import person_name_in_one_field
from crm_pipelines.storage.bulk import LinkChange, LinkState, RowState, Scope, bulk_for
from crm_pipelines.storage.conflicts import ConflictPolicy, Detected, open_conflict_ids
from crm_pipelines.storage.conflicts import record as record_conflicts
from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.linking import merge_on_link
from crm_pipelines.storage.migrate import upgrade
from crm_pipelines.storage.schema import ENTITY_TABLES, export_intents, external_links, integrations, rejects, stores, sync_state
from crm_pipelines.storage.validate import ledger_ref

BATCH_SIZE = 100

#: What a store method is told to work on: an integration, or a provider name meaning the
#: default store's environment-configured integration of that provider (the single-store set-up).
Target = Integration | str


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def chunked(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class ApplyOutcome:
    """What applying remote records did to the local database."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0
    deleted: int = 0
    conflicts: int = 0

    def add(self, other: ApplyOutcome) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class SyncState:
    provider: str
    entity: str
    integration_id: int | None = None
    synced_through: datetime | None = None
    last_remote_update: datetime | None = None
    last_run_at: datetime | None = None
    last_run_id: str | None = None
    last_status: str | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Intent:
    """A create written to the outbox: whose export sent it, and when."""

    local_id: int
    key: str
    content_hash: str
    owner: str | None
    sent_at: datetime | None  # None: no request is on its way (the provider refused, or an old row)


@dataclass(frozen=True)
class LocalChange:
    """A local record to send: its canonical fields, their hash, and its provider id if linked."""

    local_id: int
    fields: dict[str, Any]
    digest: str
    external_id: str | None
    #: Why a value cannot be sent as it is stored (a phone that is not a number): the record is rejected.
    problem: str | None = None


class ExportItem(NamedTuple):
    """One record an export selected: its local id, its provider id if linked, and the hash of its
    content (None where the scan had no need to compute it)."""

    local_id: int
    external_id: str | None
    digest: str | None


def _still_sent(row: Row, digest: str, retry_rejected: bool) -> bool:
    """Whether a scanned record whose content hashes to ``digest`` is to be sent: the provider does not
    already hold that content, and it is not the content the provider refused (unless retried)."""
    if digest in (row.exported_hash, row.remote_hash):
        return False
    return retry_rejected or digest != row.rejected_hash


def _row_values(names: Sequence[str], columns: Sequence[str], row: Row) -> dict[str, Any]:
    return dict(zip(names, _named(names, columns, [getattr(row, c) for c in columns])))


def _joined(first: Any, last: Any) -> str:
    return " ".join(str(p).strip() for p in (first, last) if p and str(p).strip())


def _newer(a: RemoteRecord, b: RemoteRecord) -> bool:
    if a.updated_at is None:
        return False
    return b.updated_at is None or a.updated_at >= b.updated_at


def _columns(names: Sequence[str]) -> tuple[str, ...]:
    """The table columns holding ``names`` (``custom.KEY`` values live in the ``custom`` column)."""
    plain = tuple(n for n in names if not is_custom(n))
    return (*plain, "custom") if len(plain) < len(names) else plain


def _named(names: Sequence[str], columns: Sequence[str], values: Sequence[Any]) -> tuple:
    """Column values as ``names`` values."""
    if len(columns) == len(names):
        return tuple(values)
    by_column = dict(zip(columns, values))
    custom = by_column.get("custom") or {}
    return tuple(custom.get(custom_key(n)) if is_custom(n) else by_column[n] for n in names)


def _e164_or_none(value: Any, region: str) -> str | None:
    try:
        return normalize_phone(value, region)
    except ValueError:
        return None


def _custom_of(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The ``custom`` column value of a record's fields (its non-blank ``custom.KEY`` values)."""
    found = {custom_key(n): v for n, v in fields.items() if is_custom(n) and v is not None}
    return found or None


class LocalStore:
    """The local database as this project uses it."""

    #: Rows this store adds before it first refreshes PostgreSQL's planner statistics; the
    #: threshold then doubles (see :meth:`_refresh_statistics`).
    ANALYZE_AFTER_ROWS = 2_000
    #: Records applied in one transaction.
    CHUNK_SIZE = 1_000

    def __init__(self, engine: Engine, *, conflict_policy: ConflictPolicy | None = None) -> None:
        self.engine = engine
        self.bulk = bulk_for(engine.dialect)
        self.conflict_policy = conflict_policy or ConflictPolicy.from_env()
        self.integrations = IntegrationRegistry(engine)
        self._rows_added = 0
        self._analyze_at = self.ANALYZE_AFTER_ROWS
        self._regions: dict[int, str] = {}

    def scope(self, target: Target) -> Integration:
        """The integration a call works on (a provider name means the default store's integration)."""
        return target if isinstance(target, Integration) else self.integrations.default_for(target)

    def phone_region(self, target: Target) -> str:
        """The region phone numbers without a country code belong to: the integration's store's (BR by default)."""
        store_id = self.scope(target).store_id
        if store_id not in self._regions:
            with self.engine.connect() as conn:
                region = conn.execute(select(stores.c.phone_region).where(stores.c.id == store_id)).scalar()
            self._regions[store_id] = region or "BR"
        return self._regions[store_id]

    def mapping_for(self, target: Target) -> CompiledMapping | None:
        """The field mapping the integration's readers and writers use (None: the provider maps in code)."""
        integration = self.scope(target)
        if not has_mapping(integration.provider):
            return None
        return mapping_for(integration, self.phone_region(integration))

    def tidy_page(self, target: Target, entity: str, page: Page) -> Page:
        """A provider page with phones in E.164 and names tidied (:mod:`crm_pipelines.core.hygiene`)."""
        return tidy_page(entity, page, self.phone_region(target))

    def _tidy(self, integration: Integration, entity: str, fields: dict[str, Any]) -> Tidied:
        return tidy(entity, fields, self.phone_region(integration))

    def _scope(self, target: Target, entity: str) -> Scope:
        return Scope.of(self.scope(target), entity)

    def _rows(self, conn, entity: str, names: Sequence[str], ids: Sequence[int], *, live_only: bool = True) -> dict[int, RowState]:
        """Rows by id with their ``names`` values (custom ones read out of the ``custom`` column)."""
        columns = _columns(names)
        rows = self.bulk.rows(conn, ENTITY_TABLES[entity], columns, ids, live_only=live_only)
        if columns == tuple(names):
            return rows
        return {i: RowState(row.local_id, row.updated_at, _named(names, columns, row.values)) for i, row in rows.items()}

    def _update_rows(self, conn, entity: str, names: Sequence[str], updates: Sequence[tuple[int, Sequence[Any]]], now: datetime) -> None:
        """Write ``names`` values; custom ones are merged into each row's ``custom`` column (other keys kept)."""
        table = ENTITY_TABLES[entity]
        columns = _columns(names)
        if not updates:
            return
        if columns == tuple(names):
            self.bulk.update_rows(conn, table, tuple(names), updates, now)
            return
        current = self.bulk.rows(conn, table, ("custom",), [local_id for local_id, _ in updates], live_only=False)
        rows = []
        for local_id, values in updates:
            row = current.get(local_id)
            custom = dict(row.values[0] or {}) if row is not None else {}
            plain = []
            for name, value in zip(names, values):
                if not is_custom(name):
                    plain.append(value)
                elif value is None:
                    custom.pop(custom_key(name), None)
                else:
                    custom[custom_key(name)] = value
            rows.append((local_id, (*plain, custom or None)))
        self.bulk.update_rows(conn, table, columns, rows, now)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, conflict_policy: ConflictPolicy | None = None) -> LocalStore:
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
        return cls(engine, conflict_policy=conflict_policy)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- import side

    def apply_remote(self, target: Target, entity: str, records: Sequence[RemoteRecord]) -> ApplyOutcome:
        """Upsert one integration's records into its store's table, in transactions of up to :attr:`CHUNK_SIZE`."""
        integration = self.scope(target)
        scope = Scope.of(integration, entity)
        newest: dict[str, RemoteRecord] = {}
        for record in records:
            current = newest.get(record.external_id)
            if current is None or _newer(record, current):
                newest[record.external_id] = record
        total = ApplyOutcome()
        for chunk in chunked(list(newest.values()), self.CHUNK_SIZE):
            for attempt in range(3):
                outcome = ApplyOutcome()
                try:
                    with self.engine.begin() as conn:
                        self._apply_chunk(conn, integration, scope, chunk, outcome)
                    break
                except IntegrityError:
                    # Another run linked some of these records at the same moment: read again.
                    if attempt == 2:
                        raise
            total.add(outcome)
        self._rows_added += total.created + total.linked
        if self._rows_added >= self._analyze_at:
            self._refresh_statistics(entity)
        return total

    def _refresh_statistics(self, entity: str) -> None:
        """ANALYZE the tables a bulk import is filling (PostgreSQL only), each time they double.

        Without statistics, PostgreSQL plans the per-batch look-ups of an initial sync for
        near-empty tables (a scan of the entity's links or rows instead of the unique index on
        ``external_id`` or the e-mail index), and each batch costs more as the tables grow.
        Autovacuum analyzes too, but only after a good share of the table has changed.
        """
        self._analyze_at = max(self._analyze_at * 2, self._rows_added * 2)
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {ENTITY_TABLES[entity].name}, {external_links.name}")

    def _apply_chunk(self, conn, integration: Integration, scope: Scope, chunk: Sequence[RemoteRecord], outcome: ApplyOutcome) -> None:
        """Decide what each record does, then write the chunk with one statement per kind of change."""
        bulk, entity = self.bulk, scope.entity
        table = ENTITY_TABLES[entity]
        names = held_names(integration, entity)
        now = utcnow()
        bulk.start_write(conn)
        bulk.commit_unawaited(conn)
        links = bulk.links(conn, scope, [r.external_id for r in chunk])
        local_updates: list[tuple[int, tuple]] = []
        link_updates: list[LinkChange] = []
        archived_local: list[int] = []
        unlinked: list[tuple[RemoteRecord, str]] = []
        changed: list[tuple[RemoteRecord, str, LinkState]] = []

        for record in chunk:
            link = links.get(record.external_id)
            if record.archived:
                if link is not None and link.archived_at is None:
                    archived_local.append(link.local_id)
                    link_updates.append(LinkChange(record.external_id, record.updated_at, link.remote_hash, archived_at=now))
                    outcome.deleted += 1
                else:
                    outcome.unchanged += 1
                continue
            digest = content_hash(entity, record.fields, names)
            if link is None:
                unlinked.append((record, digest))
                continue
            stale = link.remote_updated_at is not None and record.updated_at is not None and record.updated_at < link.remote_updated_at
            if stale or (digest == link.remote_hash and link.archived_at is None):
                outcome.unchanged += 1
                if not stale and record.updated_at and record.updated_at != link.remote_updated_at:
                    link_updates.append(LinkChange(record.external_id, record.updated_at, digest))
                continue
            changed.append((record, digest, link))

        if changed and entity == "contacts" and person_name_in_one_field(scope.provider):
            changed = self._keep_local_name_split(conn, scope, names, changed, outcome, link_updates)
        kept_local = self._settle_conflicts(conn, integration, scope, changed, now, outcome)
        for record, digest, link in changed:
            if link.local_id not in kept_local:
                local_updates.append((link.local_id, tuple(record.fields.get(n) for n in names)))
                outcome.updated += 1
            link_updates.append(LinkChange(record.external_id, record.updated_at, digest))

        new_links: list[tuple] = []
        if unlinked and self._match_keys(integration, entity):
            matches = self._match_unlinked(conn, integration, scope, [r for r, _ in unlinked])
            found = [(record, digest, matches[record.external_id]) for record, digest in unlinked if record.external_id in matches]
            local_updates += self._settle_links(conn, integration, scope, found, now, outcome)
            new_links += [(local_id, record.external_id, record.updated_at, digest, None, now, now) for record, digest, local_id in found]
            outcome.linked += len(found)
            unlinked = [(record, digest) for record, digest in unlinked if record.external_id not in matches]

        self._update_rows(conn, entity, names, local_updates, now)
        bulk.archive_rows(conn, table, archived_local, now)
        bulk.update_links(conn, scope, link_updates, now)
        if unlinked:
            fields = FIELDS[entity]
            rows = [(*[record.fields.get(name) for name in fields], _custom_of(record.fields), record.created_at or now, now) for record, _ in unlinked]
            ids = bulk.insert_rows(conn, scope, table, (*fields, "custom", "created_at", "updated_at"), rows)
            for (record, digest), local_id in zip(unlinked, ids):
                new_links.append((local_id, record.external_id, record.updated_at, digest, None, now, now))
            outcome.created += len(ids)
        bulk.insert_links(conn, scope, new_links)

    def _keep_local_name_split(self, conn, scope: Scope, names: Sequence[str], changed: list, outcome: ApplyOutcome, link_updates: list) -> list:
        """A provider holding one name field splits it its own way: the same words keep the local first/last split."""
        if not {"first_name", "last_name"} <= set(names):
            return changed
        rows = self.bulk.rows(conn, ENTITY_TABLES[scope.entity], ("first_name", "last_name"), [link.local_id for _, _, link in changed])
        kept = []
        for record, digest, link in changed:
            row = rows.get(link.local_id)
            remote = (record.fields.get("first_name"), record.fields.get("last_name"))
            if row is not None and remote != tuple(row.values) and _joined(*remote) == _joined(*row.values):
                record = replace(record, fields={**record.fields, "first_name": row.values[0], "last_name": row.values[1]})
                digest = content_hash(scope.entity, record.fields, names)
                if digest == link.remote_hash and link.archived_at is None:
                    outcome.unchanged += 1
                    if record.updated_at and record.updated_at != link.remote_updated_at:
                        link_updates.append(LinkChange(record.external_id, record.updated_at, digest))
                    continue
            kept.append((record, digest, link))
        return kept

    def _settle_conflicts(self, conn, integration: Integration, scope: Scope, changed: Sequence[tuple[RemoteRecord, str, LinkState]], now: datetime,
                          outcome: ApplyOutcome) -> set[int]:
        """Find linked records also changed locally since their last sync; returns the local ids to keep."""
        if not changed:
            return set()
        provider, entity = scope.provider, scope.entity
        names = held_names(integration, entity)
        rows = self._rows(conn, entity, names, [link.local_id for _, _, link in changed])
        strategy = self._strategy(integration, entity)
        found: list[Detected] = []
        for record, digest, link in changed:
            row = rows.get(link.local_id)
            if row is None or link.archived_at is not None:
                continue
            local_fields = dict(zip(names, row.values))
            local_digest = content_hash(entity, self._tidy(integration, entity, local_fields).fields, names)
            if local_digest in (link.remote_hash, link.exported_hash, digest):
                continue  # unchanged locally since the last sync (or already the same)
            found.append(Detected(link.local_id, record.external_id, local_fields, dict(record.fields), row.updated_at, record.updated_at, strategy))
        record_conflicts(conn, integration, entity, found, now)
        outcome.conflicts += len(found)
        return {d.local_id for d in found if d.decision != "provider"}

    def _settle_links(self, conn, integration: Integration, scope: Scope, found: Sequence[tuple[RemoteRecord, str, int]], now: datetime,
                      outcome: ApplyOutcome) -> list[tuple[int, tuple]]:
        """Local records just matched by identity: linking only links, then each held field is
        settled by :func:`~crm_pipelines.storage.linking.merge_on_link`; returns the rows to update."""
        if not found:
            return []
        names = held_names(integration, scope.entity)
        rows = self._rows(conn, scope.entity, names, [local_id for _, _, local_id in found])
        strategy = self._strategy(integration, scope.entity)
        updates: list[tuple[int, tuple]] = []
        detected: list[Detected] = []
        for record, _digest, local_id in found:
            row = rows[local_id]
            local = dict(zip(names, row.values))
            merge = merge_on_link(names, local, record.fields, strategy=strategy, local_id=local_id, external_id=record.external_id,
                                  local_updated_at=row.updated_at, remote_updated_at=record.updated_at,
                                  local_tidied=self._tidy(integration, scope.entity, local).fields)
            if merge.changed:
                updates.append((local_id, merge.values))
            if merge.conflict is not None:
                detected.append(merge.conflict)
        record_conflicts(conn, integration, scope.entity, detected, now)
        outcome.conflicts += len(detected)
        return updates

    def _strategy(self, integration: Integration, entity: str) -> str:
        """The conflict strategy of this integration and entity (its settings, else the policy)."""
        return integration.conflict_strategy(entity) or self.conflict_policy.strategy_for(integration.provider, entity)

    @staticmethod
    def _match_keys(integration: Integration, entity: str) -> tuple[str, ...]:
        """Identity keys of ``entity``, in order; the phone (E.164) last where the integration enables it."""
        keys = MATCH_KEYS[entity]
        if integration.settings.match_by_phone and entity in PHONE_FIELDS and "phone" in PHONE_FIELDS[entity]:
            keys = (*keys, "phone")
        return keys

    def _match_unlinked(self, conn, integration: Integration, scope: Scope, records: Sequence[RemoteRecord]) -> dict[str, int]:
        """The store's local records (not yet linked in ``scope``) that share an identity key with these.

        Keys are tried in order (e-mail before CPF/CNPJ, the phone last when enabled); a record
        matched by one key is not looked for by the next, and a local record is claimed by one
        provider record only. Local phones are compared in E.164, however they were written.
        """
        keys = self._match_keys(integration, scope.entity)
        wanted = {key: list({record.fields[key] for record in records if record.fields.get(key)}) for key in keys}
        if "phone" in wanted:
            wanted["phone"] = sorted({digits for e164 in wanted["phone"] for digits in phone_digits(e164)})
        candidates = self.bulk.unlinked_matches(conn, scope, ENTITY_TABLES[scope.entity], wanted, punctuation_free=("phone",))
        if "phone" in candidates:
            region = self.phone_region(integration)
            candidates["phone"] = [(local_id, _e164_or_none(value, region)) for local_id, value in candidates["phone"]]
        matches: dict[str, int] = {}
        claimed: set[int] = set()
        for key in keys:
            waiting: dict[Any, list[str]] = {}
            for record in records:
                value = record.fields.get(key)
                if value and record.external_id not in matches:
                    waiting.setdefault(value, []).append(record.external_id)
            for local_id, value in candidates.get(key, ()):
                if local_id in claimed:
                    continue
                for external_id in waiting.get(value, []):
                    if external_id not in matches:
                        matches[external_id] = local_id
                        claimed.add(local_id)
                        break
        return matches

    # ---------------------------------------------------------------- export side

    def export_candidates(self, target: Target, entity: str, *, only_new: bool = False, ids: Sequence[int] | None = None, scan_chunk: int = 2000,
                          retry_rejected: bool = False) -> Iterable[LocalChange]:
        """Live local records of the integration's store whose content differs from what it last had (streamed).

        ``ids`` restricts the scan to those local records. A record the provider rejected waits
        for a change of its content unless ``retry_rejected``.
        """
        integration = self.scope(target)
        for row, values, held in self._candidate_rows(integration, entity, only_new=only_new, ids=ids, scan_chunk=scan_chunk):
            tidied = self._tidy(integration, entity, values())
            digest = content_hash(entity, tidied.fields, held)
            if _still_sent(row, digest, retry_rejected):
                yield LocalChange(row.id, tidied.fields, digest, row.external_id, tidied.problem)

    def export_items(self, target: Target, entity: str, *, only_new: bool = False, ids: Sequence[int] | None = None, scan_chunk: int = 2000,
                     retry_rejected: bool = False) -> Iterable[ExportItem]:
        """What :meth:`export_candidates` selects, as (local id, provider id, hash) keys for :meth:`load_changes`.

        A record never sent, never read from the provider and never rejected is selected whatever
        its content: it is not tidied and hashed here (its hash is None), only once its batch is
        loaded. The others are, to leave out those whose content the provider already has.
        """
        integration = self.scope(target)
        for row, values, held in self._candidate_rows(integration, entity, only_new=only_new, ids=ids, scan_chunk=scan_chunk):
            if row.exported_hash is None and row.remote_hash is None and row.rejected_hash is None:
                yield ExportItem(row.id, row.external_id, None)
                continue
            digest = content_hash(entity, self._tidy(integration, entity, values()).fields, held)
            if _still_sent(row, digest, retry_rejected):
                yield ExportItem(row.id, row.external_id, digest)

    def _candidate_rows(self, integration: Integration, entity: str, *, only_new: bool, ids: Sequence[int] | None,
                        scan_chunk: int) -> Iterator[tuple[Row, Callable[[], dict[str, Any]], tuple[str, ...]]]:
        """Live, unarchived rows of the export scan with their links and open rejects, each with a
        function reading its field values, and the names the integration's mapping holds."""
        if ids is not None:
            for start in range(0, len(ids), scan_chunk):
                yield from self._candidate_chunks(integration, entity, only_new=only_new, ids=sorted(ids[start : start + scan_chunk]), scan_chunk=scan_chunk)
            return
        yield from self._candidate_chunks(integration, entity, only_new=only_new, ids=None, scan_chunk=scan_chunk)

    def _candidate_chunks(self, integration: Integration, entity: str, *, only_new: bool, ids: Sequence[int] | None,
                          scan_chunk: int) -> Iterator[tuple[Row, Callable[[], dict[str, Any]], tuple[str, ...]]]:
        table = ENTITY_TABLES[entity]
        held = held_names(integration, entity, "export")
        names = (*FIELDS[entity], *(n for n in held if is_custom(n)))
        columns = _columns(names)
        link = external_links
        refused = and_(rejects.c.integration_id == integration.id, rejects.c.entity == entity, rejects.c.direction == "export",
                       rejects.c.resolved_at.is_(None), rejects.c.record_ref == cast(table.c.id, String))
        query = (
            select(table.c.id, *[table.c[n] for n in columns], link.c.external_id, link.c.exported_hash, link.c.remote_hash, link.c.archived_at,
                   rejects.c.content_hash.label("rejected_hash"))
            .select_from(table.outerjoin(link, and_(link.c.local_id == table.c.id, link.c.integration_id == integration.id, link.c.entity == entity))
                         .outerjoin(rejects, refused))
            .where(table.c.store_id == integration.store_id, table.c.deleted_at.is_(None), table.c.id.not_in(open_conflict_ids(integration, entity)))
            .order_by(table.c.id)
        )
        if only_new:
            query = query.where(link.c.external_id.is_(None))
        if ids is not None:
            query = query.where(table.c.id.in_(list(ids)))
        last_id = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(query.where(table.c.id > last_id).limit(scan_chunk)).all()
            if not rows:
                return
            last_id = rows[-1].id
            for row in rows:
                if row.archived_at is not None:
                    continue  # deleted at the provider: not re-created behind the user's back
                yield row, partial(_row_values, names, columns, row), held

    def load_changes(self, entity: str, items: Sequence[tuple[int, str | None, str | None]], *, provider: Target | None = None) -> list[LocalChange]:
        """Current fields of the given (local id, external id, hash) candidates, in that order.

        With a provider, links are re-read too: a record linked since the scan is sent as an
        update, and one whose content was exported meanwhile is left out.
        """
        integration = self.scope(provider) if provider is not None else None
        held = held_names(integration, entity, "export") if integration else FIELDS[entity]
        names = (*FIELDS[entity], *(n for n in held if is_custom(n)))
        ids = [i[0] for i in items]
        with self.engine.connect() as conn:
            rows = self._rows(conn, entity, names, ids, live_only=False)
            links = self._link_states(conn, integration, entity, ids) if integration is not None else None
        changes = []
        for local_id, external_id, _digest in items:
            row = rows.get(local_id)
            if row is None:
                continue  # deleted since the scan
            tidied = tidy(entity, dict(zip(names, row.values)), self.phone_region(integration) if integration else "BR")
            digest = content_hash(entity, tidied.fields, held)
            if links is not None:
                external_id, exported, remote = links.get(local_id, (None, None, None))
                if digest in (exported, remote):
                    continue  # already sent (by an earlier attempt or another export)
            changes.append(LocalChange(local_id, tidied.fields, digest, external_id, tidied.problem))
        return changes

    @staticmethod
    def _link_states(conn: Connection, integration: Integration, entity: str, local_ids: Sequence[int]) -> dict[int, tuple[str, str | None, str | None]]:
        link = external_links
        found = {}
        for chunk in chunked(list(local_ids), BATCH_SIZE):
            query = select(link.c.local_id, link.c.external_id, link.c.exported_hash, link.c.remote_hash).where(
                link.c.integration_id == integration.id, link.c.entity == entity, link.c.local_id.in_(list(chunk)))
            found.update({r.local_id: (r.external_id, r.exported_hash, r.remote_hash) for r in conn.execute(query)})
        return found

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that writes (on SQLite it holds the write lock from its start)."""
        with self.engine.begin() as conn:
            self.bulk.start_write(conn)
            yield conn

    def link_existing(self, target: Target, entity: str, pairs: dict[int, str]) -> dict[int, str]:
        """Link local records to provider records found by matching; returns the links made."""
        if not pairs:
            return {}
        scope, now = self._scope(target, entity), utcnow()
        with self._writing() as conn:
            taken = self.bulk.taken_external_ids(conn, scope, list(pairs.values()))
            already = self.bulk.linked_local_ids(conn, scope, list(pairs))
            made = {local_id: ext for local_id, ext in pairs.items() if ext not in taken and local_id not in already}
            self.bulk.insert_links(conn, scope, [(local_id, ext, None, None, None, now, now) for local_id, ext in made.items()])
            if already:  # linked meanwhile (by this match or an earlier export): the link that exists counts
                made.update(self.bulk.local_links(conn, scope, list(already)))
        return made

    def write_intents(self, target: Target, entity: str, intents: Sequence[tuple[int, str, str]], *, owner: str | None = None,
                      awaited: bool = True) -> None:
        """Record creates about to be sent by ``owner``, as (local id, idempotency key, content hash).

        ``awaited=False`` lets the commit return before it reaches the disk: for creates the provider
        itself keys by their idempotency key (an upsert), which a database server crash that loses
        the intents cannot duplicate. The next awaited commit makes them durable too.
        """
        if not intents:
            return
        keys, now = self._scope(target, entity).link_keys, utcnow()
        with self._writing() as conn:
            if not awaited:
                self.bulk.commit_unawaited(conn)
            self.bulk.delete_in(conn, export_intents, keys, "local_id", [i[0] for i in intents])
            columns = (*keys, "local_id", "idempotency_key", "content_hash", "created_at", "owner", "sent_at")
            self.bulk.insert(conn, export_intents, columns, [(*keys.values(), lid, key, h, now, owner, now) for lid, key, h in intents])

    def intents(self, target: Target, entity: str, local_ids: Sequence[int] | None = None) -> list[Intent]:
        """Creates in flight (or interrupted) of one integration and entity; ``local_ids`` limits them."""
        integration = self.scope(target)
        query = select(export_intents.c.local_id, export_intents.c.idempotency_key, export_intents.c.content_hash, export_intents.c.owner,
                       export_intents.c.sent_at).where(
            export_intents.c.integration_id == integration.id, export_intents.c.entity == entity)
        found: list[Intent] = []
        with self.engine.connect() as conn:
            if local_ids is None:
                return [Intent(r.local_id, r.idempotency_key, r.content_hash, r.owner, r.sent_at) for r in conn.execute(query)]
            for chunk in chunked(sorted(set(local_ids)), BATCH_SIZE):
                rows = conn.execute(query.where(export_intents.c.local_id.in_(list(chunk))))
                found += [Intent(r.local_id, r.idempotency_key, r.content_hash, r.owner, r.sent_at) for r in rows]
        return found

    def mark_intents_not_in_flight(self, target: Target, entity: str, local_ids: Sequence[int]) -> None:
        """Intents whose create the provider refused (429, quota): looked up by the next attempt, never waited for."""
        if local_ids:
            with self._writing() as conn:
                self.bulk.set_in(conn, export_intents, self._scope(target, entity).link_keys, "local_id", list(local_ids), {"sent_at": None})

    def pending_intents(self, target: Target, entity: str) -> dict[int, str]:
        return {i.local_id: i.key for i in self.intents(target, entity)}

    def drop_intents(self, target: Target, entity: str, local_ids: Sequence[int]) -> None:
        if local_ids:
            with self._writing() as conn:
                self.bulk.delete_in(conn, export_intents, self._scope(target, entity).link_keys, "local_id", list(local_ids))

    def save_exported(self, target: Target, entity: str, created: Sequence[tuple[int, str, str, Any]], updated: Sequence[tuple[int, str, Any]]) -> None:
        """In one transaction: links for created records (and their intents removed), hashes for updated ones.

        ``created``: (local id, external id, content hash, remote updatedAt);
        ``updated``: (local id, content hash, remote updatedAt).
        """
        if not created and not updated:
            return
        scope, now, bulk = self._scope(target, entity), utcnow(), self.bulk
        with self._writing() as conn:
            if created:
                ids = [c[0] for c in created]
                existing = bulk.linked_local_ids(conn, scope, ids)
                bulk.insert_links(conn, scope, [(lid, ext, rua, h, h, now, now) for lid, ext, h, rua in created if lid not in existing])
                updated = list(updated) + [(c[0], c[2], c[3]) for c in created if c[0] in existing]
                bulk.delete_in(conn, export_intents, scope.link_keys, "local_id", ids)
            if updated:
                bulk.update_exported(conn, scope, updated, now)

    # ---------------------------------------------------------------- rejects

    def record_rejects(self, target: Target, entity: str, direction: str, errors: Sequence[RecordError], *, hashes: dict[str, str] | None = None) -> None:
        """Add records to the reject ledger, or bump their attempt count if already there.

        ``hashes`` (record ref -> content hash) marks export rejects that wait for a change of
        their record's content (or ``rejects retry``) before they are sent again.
        """
        hashes = hashes or {}
        if not errors:
            return
        integration = self.scope(target)
        now = utcnow()
        rows = [
            {
                "integration_id": integration.id,
                "provider": integration.provider,
                "entity": entity,
                "direction": direction,
                "record_ref": ledger_ref(e.external_id),
                "category": e.category,
                "message": e.message.replace("\x00", "\\x00")[:4000],
                "attempts": 1,
                "first_seen_at": now,
                "last_seen_at": now,
                "content_hash": hashes.get(e.external_id),
            }
            for e in {ledger_ref(e.external_id): e for e in errors}.values()
        ]
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with self.engine.begin() as conn:
            for chunk in chunked(rows, BATCH_SIZE):
                stmt = dialect_insert(rejects).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=["integration_id", "entity", "direction", "record_ref"],
                    set_={
                        "attempts": rejects.c.attempts + 1,
                        "category": stmt.excluded.category,
                        "message": stmt.excluded.message,
                        "last_seen_at": stmt.excluded.last_seen_at,
                        "content_hash": stmt.excluded.content_hash,
                        "resolved_at": None,
                    },
                )
                conn.execute(stmt)

    def resolve_rejects(self, target: Target, entity: str, direction: str, refs: Sequence[str]) -> int:
        """Mark ledger entries as resolved once their records went through."""
        if not refs:
            return 0
        keys = self._scope(target, entity).link_keys | {"direction": direction}
        with self._writing() as conn:
            return self.bulk.set_in(conn, rejects, keys, "record_ref", list(refs), {"resolved_at": utcnow()}, only_if="resolved_at IS NULL")

    def open_rejects(self, target: Target | None = None, entity: str | None = None, direction: str | None = None, *, store_id: int | None = None) -> list[dict[str, Any]]:
        """Open ledger entries of one integration (or every one; ``store_id`` limits them to a store's integrations)."""
        conditions = [rejects.c.resolved_at.is_(None)]
        if target is not None:
            conditions.append(rejects.c.integration_id == self.scope(target).id)
        if store_id is not None:
            conditions.append(rejects.c.integration_id.in_(select(integrations.c.id).where(integrations.c.store_id == store_id)))
        for column, value in ((rejects.c.entity, entity), (rejects.c.direction, direction)):
            if value is not None:
                conditions.append(column == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(rejects).where(and_(*conditions)).order_by(rejects.c.id))]

    # ---------------------------------------------------------------- sync state

    def sync_state(self, target: Target, entity: str) -> SyncState:
        integration = self.scope(target)
        with self.engine.connect() as conn:
            row = conn.execute(select(sync_state).where(sync_state.c.integration_id == integration.id, sync_state.c.entity == entity)).first()
        if row is None:
            return SyncState(integration.provider, entity, integration.id)
        data = dict(row._mapping)
        data["last_metrics"] = data.get("last_metrics") or {}
        return SyncState(**data)

    def save_sync_state(self, state: SyncState) -> None:
        if state.integration_id is None:
            state.integration_id = self.scope(state.provider).id
        values = asdict(state)
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(sync_state).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["integration_id", "entity"],
            set_={k: stmt.excluded[k] for k in values if k not in ("integration_id", "entity")},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # ---------------------------------------------------------------- reading

    def linked_records(self, target: Target, entity: str, *, include_deleted: bool = False) -> dict[str, dict[str, Any]]:
        """Local records linked to the integration, keyed by external id (used to reconcile)."""
        integration = self.scope(target)
        table = ENTITY_TABLES[entity]
        query = (
            select(external_links.c.external_id, external_links.c.archived_at, table)
            .join(table, table.c.id == external_links.c.local_id)
            .where(external_links.c.integration_id == integration.id, external_links.c.entity == entity)
        )
        if not include_deleted:
            query = query.where(table.c.deleted_at.is_(None), external_links.c.archived_at.is_(None))
        with self.engine.connect() as conn:
            return {row.external_id: dict(row._mapping) for row in conn.execute(query)}

    def linked_count(self, target: Target, entity: str) -> int:
        """Live local records linked to the integration (its row count in the UI)."""
        integration = self.scope(target)
        table = ENTITY_TABLES[entity]
        query = (
            select(func.count())
            .select_from(external_links.join(table, table.c.id == external_links.c.local_id))
            .where(external_links.c.integration_id == integration.id, external_links.c.entity == entity,
                   external_links.c.archived_at.is_(None), table.c.deleted_at.is_(None))
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def unseen_links(self, target: Target, entity: str, seen: set[str]) -> list[str]:
        """External ids linked to live (not archived) records of the integration that are not in ``seen``.

        Used after a complete scan of a provider without deletion events: these may be deleted.
        """
        query = select(external_links.c.external_id).where(
            external_links.c.integration_id == self.scope(target).id,
            external_links.c.entity == entity,
            external_links.c.archived_at.is_(None),
        )
        with self.engine.connect() as conn:
            return sorted((ext for ext in conn.execute(query).scalars() if ext not in seen), key=lambda e: (len(e), e))

    def count(self, entity: str, *, include_deleted: bool = False, store_id: int | None = None) -> int:
        table = ENTITY_TABLES[entity]
        query = select(func.count()).select_from(table)
        if store_id is not None:
            query = query.where(table.c.store_id == store_id)
        if not include_deleted:
            query = query.where(table.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()
