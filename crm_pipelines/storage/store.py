"""Reading and writing the local database in bulk.

Every write is a batch of at most 100 records in one transaction: links looked up with one
``IN`` query, changed rows updated with one executemany, new rows inserted with one multi-row
``INSERT ... RETURNING``. A batch either lands whole or not at all, so a crash or a retry never
leaves it half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crm_pipelines.core.model import FIELDS, MATCH_KEYS, RecordError, RemoteRecord, content_hash
from crm_pipelines.providers.registry import held_fields
from crm_pipelines.storage.conflicts import ConflictPolicy, Detected, open_conflict_ids
from crm_pipelines.storage.conflicts import record as record_conflicts
from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.migrate import upgrade
from crm_pipelines.storage.schema import ENTITY_TABLES, export_intents, external_links, rejects, sync_state

BATCH_SIZE = 100


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
    synced_through: datetime | None = None
    last_remote_update: datetime | None = None
    last_run_at: datetime | None = None
    last_run_id: str | None = None
    last_status: str | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalChange:
    """A local record to send: its canonical fields, their hash, and its provider id if linked."""

    local_id: int
    fields: dict[str, Any]
    digest: str
    external_id: str | None


def _newer(a: RemoteRecord, b: RemoteRecord) -> bool:
    if a.updated_at is None:
        return False
    return b.updated_at is None or a.updated_at >= b.updated_at


class LocalStore:
    """The local database as this project uses it."""

    #: Rows this store adds before it first refreshes PostgreSQL's planner statistics; the
    #: threshold then doubles (see :meth:`_refresh_statistics`).
    ANALYZE_AFTER_ROWS = 2_000

    def __init__(self, engine: Engine, *, conflict_policy: ConflictPolicy | None = None) -> None:
        self.engine = engine
        self.conflict_policy = conflict_policy or ConflictPolicy.from_env()
        self._rows_added = 0
        self._analyze_at = self.ANALYZE_AFTER_ROWS

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, conflict_policy: ConflictPolicy | None = None) -> LocalStore:
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
        return cls(engine, conflict_policy=conflict_policy)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- import side

    def apply_remote(self, provider: str, entity: str, records: Sequence[RemoteRecord]) -> ApplyOutcome:
        """Upsert provider records into the canonical table, in transactions of 100."""
        newest: dict[str, RemoteRecord] = {}
        for record in records:
            current = newest.get(record.external_id)
            if current is None or _newer(record, current):
                newest[record.external_id] = record
        total = ApplyOutcome()
        for chunk in chunked(list(newest.values()), BATCH_SIZE):
            for attempt in range(3):
                outcome = ApplyOutcome()
                try:
                    with self.engine.begin() as conn:
                        self._apply_chunk(conn, provider, entity, chunk, outcome)
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

    def _apply_chunk(self, conn, provider: str, entity: str, chunk: Sequence[RemoteRecord], outcome: ApplyOutcome) -> None:
        table = ENTITY_TABLES[entity]
        names = held_fields(provider, entity)
        now = utcnow()
        links = {
            row.external_id: row
            for row in conn.execute(
                select(
                    external_links.c.external_id,
                    external_links.c.local_id,
                    external_links.c.remote_updated_at,
                    external_links.c.remote_hash,
                    external_links.c.exported_hash,
                    external_links.c.archived_at,
                ).where(
                    external_links.c.provider == provider,
                    external_links.c.entity == entity,
                    external_links.c.external_id.in_([r.external_id for r in chunk]),
                )
            )
        }
        local_updates: list[dict[str, Any]] = []
        link_updates: list[dict[str, Any]] = []
        archived_local: list[dict[str, Any]] = []
        unlinked: list[tuple[RemoteRecord, str]] = []
        changed: list[tuple[RemoteRecord, str, Any]] = []

        for record in chunk:
            link = links.get(record.external_id)
            if record.archived:
                if link is not None and link.archived_at is None:
                    archived_local.append({"b_id": link.local_id, "b_now": now})
                    link_updates.append(self._link_row(record, link.remote_hash, now, archived_at=now))
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
                    link_updates.append(self._link_row(record, digest, now))
                continue
            changed.append((record, digest, link))

        kept_local = self._settle_conflicts(conn, provider, entity, changed, now, outcome)
        for record, digest, link in changed:
            if link.local_id not in kept_local:
                local_updates.append(self._local_row(names, record, link.local_id, now))
                outcome.updated += 1
            link_updates.append(self._link_row(record, digest, now))

        new_links: list[dict[str, Any]] = []
        if unlinked and MATCH_KEYS[entity]:
            matches = self._match_unlinked(conn, provider, entity, [r for r, _ in unlinked])
            remaining = []
            for record, digest in unlinked:
                local_id = matches.get(record.external_id)
                if local_id is None:
                    remaining.append((record, digest))
                    continue
                local_updates.append(self._local_row(names, record, local_id, now))
                new_links.append(self._new_link(provider, entity, record, local_id, digest, now))
                outcome.linked += 1
            unlinked = remaining

        if local_updates:
            conn.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values({name: bindparam(f"v_{name}") for name in names} | {"updated_at": bindparam("b_now"), "deleted_at": None}),
                local_updates,
            )
        if archived_local:
            conn.execute(
                update(table).where(table.c.id == bindparam("b_id"), table.c.deleted_at.is_(None)).values(deleted_at=bindparam("b_now"), updated_at=bindparam("b_now")),
                archived_local,
            )
        if link_updates:
            conn.execute(
                update(external_links)
                .where(
                    external_links.c.provider == provider,
                    external_links.c.entity == entity,
                    external_links.c.external_id == bindparam("b_ext"),
                )
                .values(
                    remote_updated_at=bindparam("b_rua"),
                    remote_hash=bindparam("b_hash"),
                    last_seen_at=bindparam("b_now"),
                    archived_at=bindparam("b_archived"),
                ),
                link_updates,
            )
        if unlinked:
            rows = [
                {name: record.fields.get(name) for name in FIELDS[entity]} | {"created_at": record.created_at or now, "updated_at": now}
                for record, _ in unlinked
            ]
            ids = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
            for (record, digest), local_id in zip(unlinked, ids):
                new_links.append(self._new_link(provider, entity, record, local_id, digest, now))
            outcome.created += len(ids)
        if new_links:
            conn.execute(insert(external_links), new_links)

    def _settle_conflicts(self, conn, provider: str, entity: str, changed: Sequence[tuple[RemoteRecord, str, Any]], now: datetime, outcome: ApplyOutcome) -> set[int]:
        """Find linked records also changed locally since their last sync; returns the local ids to keep."""
        if not changed:
            return set()
        table = ENTITY_TABLES[entity]
        names = held_fields(provider, entity)
        rows = {
            row.id: row
            for row in conn.execute(
                select(table.c.id, table.c.updated_at, *[table.c[n] for n in names]).where(
                    table.c.id.in_([link.local_id for _, _, link in changed]), table.c.deleted_at.is_(None)
                )
            )
        }
        strategy = self.conflict_policy.strategy_for(provider, entity)
        found: list[Detected] = []
        for record, digest, link in changed:
            row = rows.get(link.local_id)
            if row is None or link.archived_at is not None:
                continue
            local_fields = {n: getattr(row, n) for n in names}
            local_digest = content_hash(entity, local_fields, names)
            if local_digest in (link.remote_hash, link.exported_hash, digest):
                continue  # unchanged locally since the last sync (or already the same)
            found.append(Detected(link.local_id, record.external_id, local_fields, dict(record.fields), row.updated_at, record.updated_at, strategy))
        record_conflicts(conn, provider, entity, found, now)
        outcome.conflicts += len(found)
        return {d.local_id for d in found if d.decision != "provider"}

    @staticmethod
    def _local_row(names: Sequence[str], record: RemoteRecord, local_id: int, now: datetime) -> dict[str, Any]:
        row = {f"v_{name}": record.fields.get(name) for name in names}
        row["b_id"] = local_id
        row["b_now"] = now
        return row

    @staticmethod
    def _link_row(record: RemoteRecord, digest: str | None, now: datetime, archived_at: datetime | None = None) -> dict[str, Any]:
        return {"b_ext": record.external_id, "b_rua": record.updated_at, "b_hash": digest, "b_now": now, "b_archived": archived_at}

    @staticmethod
    def _new_link(provider: str, entity: str, record: RemoteRecord, local_id: int, digest: str, now: datetime) -> dict[str, Any]:
        return {
            "provider": provider,
            "entity": entity,
            "local_id": local_id,
            "external_id": record.external_id,
            "remote_updated_at": record.updated_at,
            "remote_hash": digest,
            "linked_at": now,
            "last_seen_at": now,
        }

    def _match_unlinked(self, conn, provider: str, entity: str, records: Sequence[RemoteRecord]) -> dict[str, int]:
        """Local records (not yet linked to this provider) that share an identity key with these."""
        table = ENTITY_TABLES[entity]
        # Correlated NOT EXISTS: one look-up in the (provider, entity, local_id) unique index per
        # candidate, where NOT IN (every link of the entity) costs a pass over all links per batch.
        already_linked = (
            select(external_links.c.id)
            .where(external_links.c.provider == provider, external_links.c.entity == entity, external_links.c.local_id == table.c.id)
            .exists()
        )
        matches: dict[str, int] = {}
        claimed: set[int] = set()
        for key in MATCH_KEYS[entity]:
            wanted: dict[Any, list[str]] = {}
            for record in records:
                value = record.fields.get(key)
                if value and record.external_id not in matches:
                    wanted.setdefault(value, []).append(record.external_id)
            if not wanted:
                continue
            rows = conn.execute(
                select(table.c.id, table.c[key])
                .where(table.c[key].in_(list(wanted)), table.c.deleted_at.is_(None), ~already_linked)
                .order_by(table.c.id)
            )
            for local_id, value in rows:
                if local_id in claimed:
                    continue
                for external_id in wanted.get(value, []):
                    if external_id not in matches:
                        matches[external_id] = local_id
                        claimed.add(local_id)
                        break
        return matches

    # ---------------------------------------------------------------- export side

    def export_candidates(self, provider: str, entity: str, *, only_new: bool = False, ids: Sequence[int] | None = None, scan_chunk: int = 2000) -> Iterable[LocalChange]:
        """Live local records whose content differs from what ``provider`` last had (streamed).

        ``ids`` restricts the scan to those local records.
        """
        if ids is not None:
            for start in range(0, len(ids), scan_chunk):
                yield from self._export_candidates(provider, entity, only_new=only_new, ids=sorted(ids[start : start + scan_chunk]), scan_chunk=scan_chunk)
            return
        yield from self._export_candidates(provider, entity, only_new=only_new, ids=None, scan_chunk=scan_chunk)

    def _export_candidates(self, provider: str, entity: str, *, only_new: bool, ids: Sequence[int] | None, scan_chunk: int) -> Iterable[LocalChange]:
        table = ENTITY_TABLES[entity]
        names = FIELDS[entity]
        held = held_fields(provider, entity)
        link = external_links
        query = (
            select(table.c.id, *[table.c[n] for n in names], link.c.external_id, link.c.exported_hash, link.c.remote_hash, link.c.archived_at)
            .select_from(table.outerjoin(link, and_(link.c.local_id == table.c.id, link.c.provider == provider, link.c.entity == entity)))
            .where(table.c.deleted_at.is_(None), table.c.id.not_in(open_conflict_ids(provider, entity)))
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
                fields = {n: getattr(row, n) for n in names}
                digest = content_hash(entity, fields, held)
                if digest in (row.exported_hash, row.remote_hash):
                    continue
                yield LocalChange(row.id, fields, digest, row.external_id)

    def load_changes(self, entity: str, items: Sequence[tuple[int, str | None, str]], *, provider: str | None = None) -> list[LocalChange]:
        """Current fields of the given (local id, external id, hash) candidates, in that order."""
        held = held_fields(provider, entity) if provider else FIELDS[entity]
        table = ENTITY_TABLES[entity]
        names = FIELDS[entity]
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(select(table.c.id, *[table.c[n] for n in names]).where(table.c.id.in_([i[0] for i in items])))}
        changes = []
        for local_id, external_id, _digest in items:
            row = rows.get(local_id)
            if row is None:
                continue  # deleted since the scan
            fields = {n: getattr(row, n) for n in names}
            changes.append(LocalChange(local_id, fields, content_hash(entity, fields, held), external_id))
        return changes

    def link_existing(self, provider: str, entity: str, pairs: dict[int, str]) -> dict[int, str]:
        """Link local records to provider records found by matching; returns the links made."""
        if not pairs:
            return {}
        now = utcnow()
        with self.engine.begin() as conn:
            taken = set(
                conn.execute(
                    select(external_links.c.external_id).where(
                        external_links.c.provider == provider,
                        external_links.c.entity == entity,
                        external_links.c.external_id.in_(list(pairs.values())),
                    )
                ).scalars()
            )
            made = {local_id: ext for local_id, ext in pairs.items() if ext not in taken}
            if made:
                conn.execute(
                    insert(external_links),
                    [
                        {"provider": provider, "entity": entity, "local_id": local_id, "external_id": ext, "linked_at": now, "last_seen_at": now}
                        for local_id, ext in made.items()
                    ],
                )
        return made

    def write_intents(self, provider: str, entity: str, intents: Sequence[tuple[int, str, str]]) -> None:
        """Record creates about to be sent, as (local id, idempotency key, content hash)."""
        if not intents:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(export_intents).where(export_intents.c.provider == provider, export_intents.c.entity == entity, export_intents.c.local_id.in_([i[0] for i in intents])))
            conn.execute(
                insert(export_intents),
                [{"provider": provider, "entity": entity, "local_id": lid, "idempotency_key": key, "content_hash": h, "created_at": now} for lid, key, h in intents],
            )

    def pending_intents(self, provider: str, entity: str) -> dict[int, str]:
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(export_intents.c.local_id, export_intents.c.idempotency_key).where(export_intents.c.provider == provider, export_intents.c.entity == entity)
                ).all()
            )

    def drop_intents(self, provider: str, entity: str, local_ids: Sequence[int]) -> None:
        if local_ids:
            with self.engine.begin() as conn:
                conn.execute(delete(export_intents).where(export_intents.c.provider == provider, export_intents.c.entity == entity, export_intents.c.local_id.in_(list(local_ids))))

    def save_exported(self, provider: str, entity: str, created: Sequence[tuple[int, str, str, Any]], updated: Sequence[tuple[int, str, Any]]) -> None:
        """In one transaction: links for created records (and their intents removed), hashes for updated ones.

        ``created``: (local id, external id, content hash, remote updatedAt);
        ``updated``: (local id, content hash, remote updatedAt).
        """
        now = utcnow()
        with self.engine.begin() as conn:
            if created:
                ids = [c[0] for c in created]
                existing = set(
                    conn.execute(
                        select(external_links.c.local_id).where(external_links.c.provider == provider, external_links.c.entity == entity, external_links.c.local_id.in_(ids))
                    ).scalars()
                )
                new_rows = [c for c in created if c[0] not in existing]
                if new_rows:
                    conn.execute(
                        insert(external_links),
                        [
                            {"provider": provider, "entity": entity, "local_id": lid, "external_id": ext, "remote_updated_at": rua,
                             "remote_hash": h, "exported_hash": h, "linked_at": now, "last_seen_at": now}
                            for lid, ext, h, rua in new_rows
                        ],
                    )
                updated = list(updated) + [(c[0], c[2], c[3]) for c in created if c[0] in existing]
                conn.execute(delete(export_intents).where(export_intents.c.provider == provider, export_intents.c.entity == entity, export_intents.c.local_id.in_(ids)))
            if updated:
                conn.execute(
                    update(external_links)
                    .where(external_links.c.provider == provider, external_links.c.entity == entity, external_links.c.local_id == bindparam("b_id"))
                    .values(exported_hash=bindparam("b_hash"), remote_hash=bindparam("b_hash"), remote_updated_at=bindparam("b_rua"), last_seen_at=bindparam("b_now")),
                    [{"b_id": lid, "b_hash": h, "b_rua": rua, "b_now": now} for lid, h, rua in updated],
                )

    # ---------------------------------------------------------------- rejects

    def record_rejects(self, provider: str, entity: str, direction: str, errors: Sequence[RecordError]) -> None:
        """Add records to the reject ledger, or bump their attempt count if already there."""
        if not errors:
            return
        now = utcnow()
        rows = [
            {
                "provider": provider,
                "entity": entity,
                "direction": direction,
                "record_ref": e.external_id,
                "category": e.category,
                "message": e.message[:4000],
                "attempts": 1,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for e in {e.external_id: e for e in errors}.values()
        ]
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with self.engine.begin() as conn:
            for chunk in chunked(rows, BATCH_SIZE):
                stmt = dialect_insert(rejects).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=["provider", "entity", "direction", "record_ref"],
                    set_={
                        "attempts": rejects.c.attempts + 1,
                        "category": stmt.excluded.category,
                        "message": stmt.excluded.message,
                        "last_seen_at": stmt.excluded.last_seen_at,
                        "resolved_at": None,
                    },
                )
                conn.execute(stmt)

    def resolve_rejects(self, provider: str, entity: str, direction: str, refs: Sequence[str]) -> int:
        """Mark ledger entries as resolved once their records went through."""
        if not refs:
            return 0
        resolved = 0
        with self.engine.begin() as conn:
            for chunk in chunked(list(refs), 500):
                resolved += conn.execute(
                    update(rejects)
                    .where(
                        rejects.c.provider == provider,
                        rejects.c.entity == entity,
                        rejects.c.direction == direction,
                        rejects.c.record_ref.in_(chunk),
                        rejects.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=utcnow())
                ).rowcount
        return resolved

    def open_rejects(self, provider: str | None = None, entity: str | None = None, direction: str | None = None) -> list[dict[str, Any]]:
        conditions = [rejects.c.resolved_at.is_(None)]
        for column, value in ((rejects.c.provider, provider), (rejects.c.entity, entity), (rejects.c.direction, direction)):
            if value is not None:
                conditions.append(column == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(rejects).where(and_(*conditions)).order_by(rejects.c.id))]

    # ---------------------------------------------------------------- sync state

    def sync_state(self, provider: str, entity: str) -> SyncState:
        with self.engine.connect() as conn:
            row = conn.execute(select(sync_state).where(sync_state.c.provider == provider, sync_state.c.entity == entity)).first()
        if row is None:
            return SyncState(provider, entity)
        data = dict(row._mapping)
        data["last_metrics"] = data.get("last_metrics") or {}
        return SyncState(**data)

    def save_sync_state(self, state: SyncState) -> None:
        values = asdict(state)
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(sync_state).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["provider", "entity"],
            set_={k: stmt.excluded[k] for k in values if k not in ("provider", "entity")},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # ---------------------------------------------------------------- reading

    def linked_records(self, provider: str, entity: str, *, include_deleted: bool = False) -> dict[str, dict[str, Any]]:
        """Local records linked to ``provider``, keyed by external id (used to reconcile)."""
        table = ENTITY_TABLES[entity]
        query = (
            select(external_links.c.external_id, external_links.c.archived_at, table)
            .join(table, table.c.id == external_links.c.local_id)
            .where(external_links.c.provider == provider, external_links.c.entity == entity)
        )
        if not include_deleted:
            query = query.where(table.c.deleted_at.is_(None), external_links.c.archived_at.is_(None))
        with self.engine.connect() as conn:
            return {row.external_id: dict(row._mapping) for row in conn.execute(query)}

    def unseen_links(self, provider: str, entity: str, seen: set[str]) -> list[str]:
        """External ids linked to live (not archived) records of ``provider`` that are not in ``seen``.

        Used after a complete scan of a provider without deletion events: these may be deleted.
        """
        query = select(external_links.c.external_id).where(
            external_links.c.provider == provider,
            external_links.c.entity == entity,
            external_links.c.archived_at.is_(None),
        )
        with self.engine.connect() as conn:
            return sorted((ext for ext in conn.execute(query).scalars() if ext not in seen), key=lambda e: (len(e), e))

    def count(self, entity: str, *, include_deleted: bool = False) -> int:
        table = ENTITY_TABLES[entity]
        query = select(func.count()).select_from(table)
        if not include_deleted:
            query = query.where(table.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()
