"""Finding and merging local duplicates: the same person or company stored more than once.

Rows are duplicates when they share a normalized e-mail or CPF/CNPJ (contacts), or a
normalized domain or CNPJ (companies); groups join transitively (A shares an e-mail with B, B a
CPF with C: one group). Each group keeps one survivor, chosen by the policy:

* ``keep_latest``: the row modified last;
* ``keep_provider``: the row linked to the most providers (ties: the latest);
* ``manual``: nothing is merged; the groups are listed for a person to decide
  (``crm-pipelines dedupe merge KEEP_ID OTHER_ID ...``).

Merging fills the survivor's empty fields from the others (latest first), moves their links to
external ids onto the survivor, marks them deleted and writes a row to ``merges``. A group whose
rows are linked to two different records at the same provider is not merged: that is a
duplicate at the provider too, to be merged there first (the next import then links the
survivor).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import FIELDS
from crm_pipelines.core.normalize import normalize_document, normalize_domain, normalize_email
from crm_pipelines.storage.conflicts import to_json
from crm_pipelines.integrations.registry import IntegrationRegistry
from crm_pipelines.storage.schema import ENTITY_TABLES, export_intents, external_links, merges

POLICIES = ("keep_latest", "keep_provider", "manual")
KEYS: dict[str, dict[str, Any]] = {
    "contacts": {"email": normalize_email, "document": normalize_document},
    "companies": {"domain": normalize_domain, "document": normalize_document},
}


@dataclass
class DuplicateGroup:
    entity: str
    ids: list[int]
    keys: dict[str, str] = field(default_factory=dict)  # e.g. {"email": "ana@x.com"}
    survivor: int | None = None
    blocked: str | None = None
    links: dict[int, dict[str, str]] = field(default_factory=dict)  # local id -> integration (hubspot/default) -> external id
    store_id: int | None = None

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in sorted(self.keys.items()))
        return f"{self.entity} {self.ids} share {keys}"


def _normalized(fn, value: Any) -> str | None:
    try:
        return fn(value)
    except (ValueError, TypeError):
        return None


class Deduplicator:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _labels(self, conn) -> dict[int, str]:
        return {i.id: i.label for i in IntegrationRegistry(self.engine).list()}

    def find(self, entity: str, *, store_id: int | None = None) -> list[DuplicateGroup]:
        """Every group of one store's live rows sharing a normalized identity key (never across stores)."""
        if entity not in KEYS:
            raise ConfigurationError(f"duplicates are found among contacts and companies, not {entity!r}")
        table = ENTITY_TABLES[entity]
        keys = KEYS[entity]
        parent: dict[int, int] = {}

        def root(i: int) -> int:
            while parent.setdefault(i, i) != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first_with: dict[tuple[int, str, str], int] = {}
        shared: dict[int, dict[str, str]] = defaultdict(dict)
        owner: dict[int, int] = {}
        query = select(table.c.id, table.c.store_id, *[table.c[k] for k in keys]).where(table.c.deleted_at.is_(None)).order_by(table.c.id)
        if store_id is not None:
            query = query.where(table.c.store_id == store_id)
        with self.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            for row in rows:
                owner[row.id] = row.store_id
                for key, normalize in keys.items():
                    value = _normalized(normalize, getattr(row, key))
                    if not value:
                        continue
                    other = first_with.setdefault((row.store_id, key, value), row.id)
                    if other != row.id:
                        parent[root(row.id)] = root(other)
                        shared[row.id][key] = value
                        shared[other][key] = value
        members: dict[int, list[int]] = defaultdict(list)
        for local_id in parent:
            members[root(local_id)].append(local_id)
        groups = []
        for ids in members.values():
            if len(ids) < 2:
                continue
            keys_of_group: dict[str, str] = {}
            for local_id in ids:
                keys_of_group.update(shared.get(local_id, {}))
            groups.append(DuplicateGroup(entity, sorted(ids), keys_of_group, store_id=owner[ids[0]]))
        groups.sort(key=lambda g: g.ids[0])
        self._attach_links(entity, groups)
        return groups

    def _attach_links(self, entity: str, groups: list[DuplicateGroup]) -> None:
        by_id = {i: g for g in groups for i in g.ids}
        if not by_id:
            return
        with self.engine.connect() as conn:
            labels = self._labels(conn)
            ids = list(by_id)
            for start in range(0, len(ids), 1000):
                for row in conn.execute(
                    select(external_links.c.local_id, external_links.c.integration_id, external_links.c.external_id).where(
                        external_links.c.entity == entity, external_links.c.local_id.in_(ids[start : start + 1000]), external_links.c.archived_at.is_(None)
                    )
                ):
                    label = labels.get(row.integration_id, str(row.integration_id))
                    by_id[row.local_id].links.setdefault(row.local_id, {})[label] = row.external_id
        for group in groups:
            providers: dict[str, set[str]] = defaultdict(set)
            for links in group.links.values():
                for provider, external_id in links.items():
                    providers[provider].add(external_id)
            clash = sorted(p for p, ext in providers.items() if len(ext) > 1)
            if clash:
                group.blocked = f"linked to {len(providers[clash[0]])} different records at {clash[0]}; merge them at {clash[0]} first"

    def choose(self, groups: list[DuplicateGroup], policy: str) -> None:
        if policy not in POLICIES:
            raise ConfigurationError(f"unknown dedupe policy {policy!r}; expected one of {', '.join(POLICIES)}")
        if policy == "manual" or not groups:
            return
        table = ENTITY_TABLES[groups[0].entity]
        ids = [i for g in groups for i in g.ids]
        updated: dict[int, datetime] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 1000):
                updated.update(dict(conn.execute(select(table.c.id, table.c.updated_at).where(table.c.id.in_(ids[start : start + 1000]))).all()))
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        for group in groups:
            def latest(i: int) -> tuple:
                return (updated.get(i) or epoch, i)

            if policy == "keep_provider":
                group.survivor = max(group.ids, key=lambda i: (len(group.links.get(i, {})), latest(i)))
            else:
                group.survivor = max(group.ids, key=latest)

    def merge(self, entity: str, survivor: int, others: list[int], *, policy: str = "manual", reason: str = "") -> dict[str, Any]:
        """Merge ``others`` into ``survivor`` in one transaction; returns what was done."""
        table = ENTITY_TABLES[entity]
        names = FIELDS[entity]
        others = [i for i in others if i != survivor]
        if not others:
            raise ConfigurationError("name at least one record to merge into the survivor")
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            rows = {r.id: r for r in conn.execute(select(table).where(table.c.id.in_([survivor, *others]), table.c.deleted_at.is_(None)))}
            missing = sorted({survivor, *others} - set(rows))
            if missing:
                raise ConfigurationError(f"{entity} {missing} do not exist or were deleted")
            stores = {rows[i].store_id for i in rows}
            if len(stores) > 1:
                raise ConfigurationError(f"{entity} {sorted(rows)} belong to different stores; records of one store are never merged into another's")
            store_id = next(iter(stores))
            labels = self._labels(conn)
            links = conn.execute(select(external_links.c.id, external_links.c.local_id, external_links.c.integration_id, external_links.c.external_id)
                                 .where(external_links.c.entity == entity, external_links.c.local_id.in_([survivor, *others]))).all()
            kept = {l.integration_id: l.external_id for l in links if l.local_id == survivor}
            for link in links:
                if link.local_id != survivor and link.integration_id in kept and kept[link.integration_id] != link.external_id:
                    at = labels.get(link.integration_id, str(link.integration_id))
                    raise ConfigurationError(f"{entity} {link.local_id} and {survivor} are different records at {at} "
                                             f"({link.external_id} and {kept[link.integration_id]}); merge them at {at} first")
            pending = conn.execute(select(func.count()).select_from(export_intents).where(export_intents.c.entity == entity, export_intents.c.local_id.in_(others))).scalar()
            if pending:
                raise ConfigurationError(f"{entity} {others} have exports in flight; run the export again first")
            filled: dict[str, Any] = {}
            target = rows[survivor]
            for other_id in sorted(others, key=lambda i: rows[i].updated_at, reverse=True):
                for name in names:
                    if getattr(target, name) in (None, "") and name not in filled and getattr(rows[other_id], name) not in (None, ""):
                        filled[name] = getattr(rows[other_id], name)
            if filled:
                conn.execute(update(table).where(table.c.id == survivor).values(**filled, updated_at=now))
            moved = 0
            for link in links:
                if link.local_id != survivor:
                    if link.integration_id in kept:
                        conn.execute(external_links.delete().where(external_links.c.id == link.id))  # same record: one link is enough
                    else:
                        conn.execute(update(external_links).where(external_links.c.id == link.id).values(local_id=survivor))
                        kept[link.integration_id] = link.external_id
                        moved += 1
            conn.execute(update(table).where(table.c.id.in_(others)).values(deleted_at=now, updated_at=now))
            conn.execute(insert(merges), [{"store_id": store_id, "entity": entity, "survivor_id": survivor, "merged_id": other, "policy": policy, "reason": reason[:255],
                                           "merged_fields": to_json({n: getattr(rows[other], n) for n in names}), "merged_at": now} for other in others])
        return {"survivor": survivor, "merged": others, "filled": sorted(filled), "links_moved": moved}

    def run(self, entity: str, policy: str, *, dry_run: bool = False, store_id: int | None = None) -> list[dict[str, Any]]:
        """Find, choose and (unless ``dry_run`` or ``manual``) merge; one line per group (within each store)."""
        groups = self.find(entity, store_id=store_id)
        self.choose(groups, policy)
        report = []
        for group in groups:
            line = {"entity": entity, "ids": group.ids, "keys": group.keys, "survivor": group.survivor}
            if group.blocked:
                line["action"] = f"skip: {group.blocked}"
            elif group.survivor is None:
                line["action"] = "review (manual)"
            elif dry_run:
                line["action"] = f"would keep {group.survivor}, merge {[i for i in group.ids if i != group.survivor]}"
            else:
                done = self.merge(entity, group.survivor, group.ids, policy=policy, reason=group.describe())
                line["action"] = f"kept {group.survivor}, merged {done['merged']}" + (f", filled {', '.join(done['filled'])}" if done["filled"] else "")
            report.append(line)
        return report


__all__ = ["Deduplicator", "DuplicateGroup", "POLICIES"]
