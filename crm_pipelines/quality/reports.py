"""Building the reports of one integration and entity from the local database (SQLAlchemy Core).

Every figure is counted by the database; Python reads only what SQL flags: values its checks do
not accept (confirmed with the same functions hygiene uses), the members of duplicate groups,
candidates for staleness and the records shared with other integrations whose sync state
differs (their content compared as the export compares it). Everything is scoped to the
integration's store: no query reads another store's records.

How the importer's bookkeeping gives each finding:

* a record deleted at the provider keeps its link with ``archived_at`` set (and the local row is
  marked deleted); a local row still live with such a link is an **orphan**: the export leaves
  it alone so as not to re-create what someone deleted;
* every sync of a record (read from the provider, or sent to it) sets its link's
  ``last_seen_at`` to the moment the local row was written; a local row changed after that
  (``updated_at`` later) whose content differs from what the integration last had is waiting for
  an export, and **stale** once that change is older than the threshold;
* two integrations of a store linked to the same local row **disagree** when one of them has
  the record deleted, holds an older version or has an open conflict, and another does not.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.sql import ColumnElement

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import MATCH_KEYS, check_entity
from crm_pipelines.core.normalize import checked_email, normalize_document, normalize_domain, normalize_email, normalize_phone
from crm_pipelines.integrations.model import Integration
from crm_pipelines.providers.registry import held_fields
from crm_pipelines.quality import sql_checks
from crm_pipelines.quality.model import (
    Completeness,
    DuplicateGroup,
    Duplicates,
    FieldCompleteness,
    InvalidValue,
    InvalidValues,
    KeyDuplicates,
    Orphan,
    Orphans,
    ProviderDifference,
    ProviderDifferences,
    ProviderState,
    QualityReport,
    StaleRecord,
    StaleRecords,
)
from crm_pipelines.quality.thresholds import QualityThresholds
from crm_pipelines.storage.schema import ENTITY_TABLES, conflicts, external_links, integrations
from crm_pipelines.storage.store import LocalStore, chunked

IN_STEP, BEHIND, DELETED, CONFLICT = "in step", "behind", "deleted there", "conflict"

def _valid_document(value: str) -> bool:
    try:
        return normalize_document(value) is not None
    except ValueError:
        return False


#: Per identity key: the SQL expression records are grouped by, and whether a group's value is a real key.
DUPLICATE_KEYS: dict[str, tuple[Callable, Callable[[str], bool]]] = {
    "email": (sql_checks.email_group, lambda value: normalize_email(value) is not None),
    "document": (lambda column: func.nullif(sql_checks.document_digits(column), ""), _valid_document),
    "domain": (sql_checks.domain_key, lambda value: bool(normalize_domain(value))),
}


def _python_check(field: str, region: str) -> Callable[[Any], Any]:
    """The hygiene function that decides a value SQL did not accept (raises ``ValueError`` when invalid)."""
    if field == "email":
        return checked_email
    if field == "phone":
        return lambda value: normalize_phone(value, region)
    return normalize_document


class QualityReporter:
    """Reports of one store's integrations, read from the local database only."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.engine = store.engine

    def report(self, integration: Integration, entity: str, thresholds: QualityThresholds | None = None, *, now: datetime | None = None) -> QualityReport:
        check_entity(entity)
        thresholds = thresholds or integration.settings.quality
        now = now or datetime.now(timezone.utc)
        started = time.monotonic()
        scope = _Scope(integration, entity, thresholds.examples)
        cutoff = now - timedelta(hours=thresholds.stale_after_hours)
        region = self.store.phone_region(integration)
        with self.engine.connect() as conn:
            _settings_for_reports(conn)
            scan = self._scan(conn, scope, region, cutoff)
            invalid = self._invalid(conn, scope, region, scan.doubtful)
            duplicates = self._duplicates(conn, scope)
            orphans = self._orphans(conn, scope, cutoff)
            stale = self._stale(conn, scope, thresholds.stale_after_hours, cutoff, scan, orphans)
            differences = self._differences(conn, scope)
        notes = () if integration.settings.export_enabled else ("export is off for this integration: local records never sent to it are not counted as stale",)
        return QualityReport(integration.label, integration.store_key, entity, now, scan.completeness, invalid, duplicates, orphans.report, stale, differences,
                             seconds=time.monotonic() - started, notes=notes)

    # ------------------------------------------------------------------ one pass over the linked records

    def _scan(self, conn, scope: _Scope, region: str, cutoff: datetime) -> _Scan:
        """Completeness, the ids whose values SQL doubts and the stale candidates, in one aggregate query."""
        t, link = scope.table, external_links
        checked = [name for name in ("email", "phone", "document") if name in scope.held]
        accepted = {"email": sql_checks.email_ok, "phone": lambda c: sql_checks.phone_ok(c, region), "document": sql_checks.document_ok}
        doubtful = [sql_checks.doubtful(t.c[name], accepted[name](t.c[name])) for name in checked]
        changed = and_(t.c.updated_at > link.c.last_seen_at, t.c.updated_at < cutoff)
        # Two queries PostgreSQL can run in parallel workers: the counts, then the few rows flagged.
        counts = [func.count(), func.count(case((t.c.created_at < cutoff, 1))), *[func.count(_present(t.c[name])) for name in scope.held]]
        records, old, *filled = conn.execute(select(*counts).select_from(scope.linked()).where(*scope.live())).one()
        flags = [changed.label("changed"), *[condition.label(name) for name, condition in zip(checked, doubtful)]]
        candidates: list[int] = []
        doubted: dict[str, list[int]] = {name: [] for name in checked}
        for row in conn.execute(select(t.c.id, *flags).select_from(scope.linked()).where(*scope.live(), or_(changed, *doubtful))):
            if row.changed:
                candidates.append(row.id)
            for name in checked:
                if row._mapping[name]:
                    doubted[name].append(row.id)
        completeness = Completeness(records, tuple(FieldCompleteness(name, int(n or 0), records) for name, n in zip(scope.held, filled)))
        return _Scan(completeness, old, candidates, doubted)

    # ------------------------------------------------------------------ invalid values

    def _invalid(self, conn, scope: _Scope, region: str, doubtful: dict[str, list[int]]) -> InvalidValues:
        t = scope.table
        counts = {name: 0 for name in doubtful}
        examples: list[InvalidValue] = []
        bad_records: set[int] = set()
        for name, ids in doubtful.items():
            check = _python_check(name, region)
            for chunk in chunked(sorted(ids), 1000):
                for local_id, value in conn.execute(select(t.c.id, t.c[name]).where(t.c.id.in_(list(chunk))).order_by(t.c.id)):
                    try:
                        check(value)
                    except ValueError as exc:
                        counts[name] += 1
                        bad_records.add(local_id)
                        examples.append(InvalidValue(local_id, name, str(value), str(exc)))
        examples.sort(key=lambda e: e.local_id)
        return InvalidValues(counts, len(bad_records), tuple(examples[: scope.examples]))

    # ------------------------------------------------------------------ duplicates

    def _duplicates(self, conn, scope: _Scope) -> Duplicates:
        return Duplicates(tuple(self._key_duplicates(conn, scope, key) for key in MATCH_KEYS[scope.entity]))

    def _key_duplicates(self, conn, scope: _Scope, key: str) -> KeyDuplicates:
        """Groups of the store's live records sharing ``key``, counted when one of them is linked to the integration.

        One grouping pass gives each group's size and first and last id (a pair needs nothing
        more); only larger groups are read again, by their keys.
        """
        t, link = scope.table, external_links
        group_of, is_key = DUPLICATE_KEYS[key]
        value = group_of(t.c[key])
        store_rows = (t.c.store_id == scope.store_id, t.c.deleted_at.is_(None))
        grouped = select(t.c.id, value.label("k")).where(*store_rows).subquery()
        shared = (select(grouped.c.k, func.count().label("n"), func.min(grouped.c.id).label("first"), func.max(grouped.c.id).label("last"))
                  .group_by(grouped.c.k).having(func.count() > 1))
        groups: dict[str, list[int]] = {}
        larger: list[str] = []
        for row in conn.execute(shared):
            if row.k is None or not is_key(row.k):
                continue
            groups[row.k] = [row.first, row.last]
            if row.n > 2:
                larger.append(row.k)
        for chunk in chunked(larger, 1000):
            for row in conn.execute(select(grouped.c.id, grouped.c.k).where(grouped.c.k.in_(list(chunk))).order_by(grouped.c.id)):
                if row.id not in groups[row.k]:
                    groups[row.k].append(row.id)
        ids = sorted({i for members in groups.values() for i in members})
        mine: set[int] = set()
        for chunk in chunked(ids, 1000):
            mine.update(conn.execute(select(link.c.local_id).where(link.c.integration_id == scope.integration.id, link.c.entity == scope.entity,
                                                                   link.c.archived_at.is_(None), link.c.local_id.in_(list(chunk)))).scalars())
        found = sorted((sorted(members), k) for k, members in groups.items() if mine.intersection(members))
        examples = tuple(DuplicateGroup(key, k, tuple(members)) for members, k in found[: scope.examples])
        return KeyDuplicates(key, len(found), sum(len(members) for members, _ in found), examples)

    # ------------------------------------------------------------------ orphans

    def _orphans(self, conn, scope: _Scope, cutoff: datetime) -> _OrphanCount:
        t, link = scope.table, external_links
        where = (*scope.link_of(t.c.id), link.c.archived_at.is_not(None), t.c.store_id == scope.store_id, t.c.deleted_at.is_(None))
        joined = link.join(t, t.c.id == link.c.local_id)
        count, old = conn.execute(select(func.count(), func.count(case((t.c.created_at < cutoff, 1)))).select_from(joined).where(*where)).one()
        rows = conn.execute(select(t.c.id, link.c.external_id, link.c.archived_at).select_from(joined).where(*where).order_by(t.c.id).limit(scope.examples))
        return _OrphanCount(Orphans(count, tuple(Orphan(r.id, r.external_id, r.archived_at) for r in rows)), old)

    # ------------------------------------------------------------------ stale records

    def _stale(self, conn, scope: _Scope, hours: float, cutoff: datetime, scan: _Scan, orphans: _OrphanCount) -> StaleRecords:
        """Linked records changed before ``cutoff`` and not synced since, and (when the integration exports) old records never linked.

        The never-linked ones are counted by difference (the store's old live rows less those
        linked, live or deleted there), so no anti-join runs unless there are some to list.
        """
        t, link = scope.table, external_links
        waiting = sorted(self._waiting_export(scope.integration, scope.entity, scan.stale_candidates))
        examples: list[StaleRecord] = []
        for chunk in chunked(waiting[: scope.examples], 1000):
            rows = conn.execute(select(t.c.id, link.c.external_id, t.c.updated_at, link.c.last_seen_at).select_from(scope.linked())
                                .where(*scope.live(), t.c.id.in_(list(chunk))).order_by(t.c.id))
            examples += [StaleRecord(r.id, r.external_id, r.updated_at, r.last_seen_at) for r in rows]
        never = 0
        if scope.integration.settings.export_enabled:
            old = (t.c.store_id == scope.store_id, t.c.deleted_at.is_(None), t.c.created_at < cutoff)
            never = conn.execute(select(func.count()).select_from(t).where(*old)).scalar_one() - scan.old_linked - orphans.old
            room = scope.examples - len(examples)
            if never and room > 0:
                rows = conn.execute(select(t.c.id, t.c.updated_at).where(*old, ~exists().where(*scope.link_of(t.c.id))).order_by(t.c.id).limit(room))
                examples += [StaleRecord(r.id, None, r.updated_at, None) for r in rows]
        return StaleRecords(hours, len(waiting), never, tuple(examples))

    def _waiting_export(self, integration: Integration, entity: str, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` whose content differs from what ``integration`` last had (as the export decides)."""
        if not ids:
            return set()
        return {change.local_id for change in self.store.export_candidates(integration, entity, ids=list(ids), retry_rejected=True)}

    # ------------------------------------------------------------------ differences between providers

    def _differences(self, conn, scope: _Scope) -> ProviderDifferences:
        """Records linked to this integration and another of the store; those whose links are not all settled are examined."""
        t, link = scope.table, external_links
        here = link.alias("here")
        others = select(integrations.c.id).where(integrations.c.store_id == scope.store_id, integrations.c.id != scope.integration.id)
        shared_ids = (
            select(link.c.local_id)
            .where(link.c.entity == scope.entity, link.c.integration_id.in_(others),
                   exists().where(here.c.local_id == link.c.local_id, here.c.integration_id == scope.integration.id, here.c.entity == scope.entity))
            .distinct()
        )
        shared = conn.execute(select(func.count()).select_from(shared_ids.subquery())).scalar_one()
        if not shared:
            return ProviderDifferences(0, 0, ())
        unsettled = (
            select(link.c.local_id).select_from(link.join(t, t.c.id == link.c.local_id))
            .where(link.c.entity == scope.entity, t.c.store_id == scope.store_id, link.c.local_id.in_(shared_ids),
                   (link.c.archived_at.is_not(None)) | (t.c.updated_at > link.c.last_seen_at))
            .distinct()
        )
        flagged = set(conn.execute(unsettled).scalars())
        disputed = self._open_conflicts(conn, scope)
        flagged |= {local_id for _, local_id in disputed}
        states = self._link_states(conn, scope, sorted(flagged), disputed)
        differing = [ProviderDifference(local_id, tuple(found)) for local_id, found in sorted(states.items())
                     if len(found) > 1 and (len({s.state for s in found}) > 1 or any(s.state == CONFLICT for s in found))]
        return ProviderDifferences(shared, len(differing), tuple(differing[: scope.examples]))

    def _open_conflicts(self, conn, scope: _Scope) -> set[tuple[int, int]]:
        """(integration id, local id) of the store's open conflicts on this entity."""
        store_integrations = select(integrations.c.id).where(integrations.c.store_id == scope.store_id)
        query = select(conflicts.c.integration_id, conflicts.c.local_id).where(
            conflicts.c.entity == scope.entity, conflicts.c.resolved_at.is_(None), conflicts.c.integration_id.in_(store_integrations))
        return {(r.integration_id, r.local_id) for r in conn.execute(query)}

    def _link_states(self, conn, scope: _Scope, ids: Sequence[int], disputed: set[tuple[int, int]]) -> dict[int, list[ProviderState]]:
        """Each of ``ids`` (linked to this integration) with the state of each of its links in the store."""
        t, link = scope.table, external_links
        rows = []
        for chunk in chunked(list(ids), 1000):
            rows += conn.execute(
                select(link.c.local_id, link.c.integration_id, link.c.external_id, link.c.archived_at, link.c.last_seen_at, t.c.updated_at)
                .select_from(link.join(t, t.c.id == link.c.local_id))
                .where(link.c.entity == scope.entity, t.c.store_id == scope.store_id, link.c.local_id.in_(list(chunk)))
            ).all()
        linked_here = {r.local_id for r in rows if r.integration_id == scope.integration.id}
        behind_candidates: dict[int, list[int]] = defaultdict(list)
        for r in rows:
            if r.archived_at is None and r.updated_at is not None and r.last_seen_at is not None and r.updated_at > r.last_seen_at:
                behind_candidates[r.integration_id].append(r.local_id)
        owners = {i: self.store.integrations.by_id(i) for i in {r.integration_id for r in rows}}
        behind = {(i, local_id) for i, local_ids in behind_candidates.items() for local_id in self._waiting_export(owners[i], scope.entity, local_ids)}
        states: dict[int, list[ProviderState]] = defaultdict(list)
        for r in sorted(rows, key=lambda r: (r.local_id, owners[r.integration_id].label)):
            if r.local_id not in linked_here:
                continue
            if r.archived_at is not None:
                state = DELETED
            elif (r.integration_id, r.local_id) in disputed:
                state = CONFLICT
            elif (r.integration_id, r.local_id) in behind:
                state = BEHIND
            else:
                state = IN_STEP
            states[r.local_id].append(ProviderState(owners[r.integration_id].label, r.external_id, state))
        return states

    # ------------------------------------------------------------------ several at once

    def reports(self, targets: Iterable[tuple[Integration, str]], thresholds: QualityThresholds | None = None) -> list[QualityReport]:
        return [self.report(integration, entity, thresholds) for integration, entity in targets]


class _Scope:
    """One integration's records of one entity: the joins and conditions every report starts from."""

    def __init__(self, integration: Integration, entity: str, examples: int) -> None:
        if entity not in ENTITY_TABLES:
            raise ConfigurationError(f"unknown entity {entity!r}")
        self.integration = integration
        self.entity = entity
        self.store_id = integration.store_id
        self.table = ENTITY_TABLES[entity]
        self.held = held_fields(integration.provider, entity)
        self.examples = examples

    def link_of(self, local_id: ColumnElement) -> tuple[ColumnElement, ...]:
        link = external_links
        return (link.c.local_id == local_id, link.c.integration_id == self.integration.id, link.c.entity == self.entity)

    def linked(self):
        return external_links.join(self.table, self.table.c.id == external_links.c.local_id)

    def live(self) -> tuple[ColumnElement, ...]:
        """Live links of the integration to live rows of its store."""
        t, link = self.table, external_links
        return (link.c.integration_id == self.integration.id, link.c.entity == self.entity, link.c.archived_at.is_(None),
                t.c.store_id == self.store_id, t.c.deleted_at.is_(None))


def _settings_for_reports(conn) -> None:
    """PostgreSQL, for this transaction only: enough memory to group a million keys without
    spilling to disk, and no JIT (compiling the long check expressions costs more than it saves)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")


def _present(column) -> ColumnElement:
    """The value when it counts as filled (blank text counts as empty), else NULL: ``count()`` of it counts the filled ones."""
    if column.type.python_type is str:
        return func.nullif(func.trim(column), "")
    return column


@dataclass(frozen=True)
class _Scan:
    completeness: Completeness
    old_linked: int
    stale_candidates: list[int]
    doubtful: dict[str, list[int]]


@dataclass(frozen=True)
class _OrphanCount:
    report: Orphans
    old: int


__all__ = ["BEHIND", "CONFLICT", "DELETED", "DUPLICATE_KEYS", "IN_STEP", "QualityReporter"]
