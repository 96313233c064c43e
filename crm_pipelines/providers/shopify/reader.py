"""Reading Shopify changes for a time window without losing records.

* **Changes**: ``customers``/``orders``/``companies`` with ``query: "updated_at:>='lower' AND
  updated_at:<'upper'"`` and ``sortKey: UPDATED_AT``, 250 per page, following ``after`` cursors.
  Shopify's cursors carry the last sort value *and* id, so records sharing one ``updatedAt``
  (whole seconds: common) are neither skipped nor repeated. A connection walk is limited to
  25,000 objects, so every ``restart_every`` records the walk starts a fresh query at the last
  timestamp seen, skipping the ids already read at that second; when more than that many share
  one second, that second is read on its own by id (``id:>N``, ``sortKey: ID``).
* **Deletions**: Shopify lists no tombstones; it records a ``destroy`` event per deleted resource
  (``events(query: "subject_type:CUSTOMER AND action:destroy")``, kept for a year). Each becomes a
  ``RemoteRecord(archived=True)``. Webhooks (``customers/delete``...) bring them sooner.
* **By id**: ``nodes(ids:)`` (250 a call); a null node is a deleted record.
* **Total**: ``customersCount(limit: null)``; when Shopify answers only a lower bound
  (``precision: AT_LEAST``), the ids are paged and counted.
* **Bulk**: a full sync or a backfill of more than the integration's ``bulk_threshold`` records
  (one ``customersCount(query:)`` call decides) is one bulk operation instead (:mod:`.bulk`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.shopify.api import OBJECTS, PAGE_MAX, ShopifyClient, to_gid
from crm_pipelines.providers.shopify.bulk import ShopifyBulkQuery, bulk_pages, bulk_query_text
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.shopify.mapping import format_timestamp, node_cost, node_fields, page_size, parse_timestamp, to_remote_record
from crm_pipelines.sync.bulk import BulkContext, BulkProgress
from crm_pipelines.sync.progress import ReadProgress

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "list", "search", "bulk")
#: Objects one connection walk may page through before Shopify stops it.
PAGINATION_CAP = 25_000
#: Most ids sharing one second a page's ``resume`` names (a larger group is read again on resume).
RESUME_IDS_MAX = 1_000


def _connection_query(entity: str, sort_key: str = "UPDATED_AT", mapping: CompiledMapping | None = None) -> str:
    spec = OBJECTS[entity]
    return (
        f"query($first: Int!, $after: String, $query: String) {{ {spec.connection}(first: $first, after: $after, query: $query, sortKey: {sort_key}) "
        f"{{ pageInfo {{ hasNextPage endCursor }} nodes {{ {node_fields(entity, mapping)} }} }} }}"
    )


def _nodes_query(entity: str, mapping: CompiledMapping | None = None) -> str:
    return f"query($ids: [ID!]!) {{ nodes(ids: $ids) {{ id ... on {OBJECTS[entity].gid_type} {{ {node_fields(entity, mapping)} }} }} }}"


EVENTS_QUERY = (
    "query($first: Int!, $after: String, $query: String) { events(first: $first, after: $after, query: $query, sortKey: ID) "
    "{ pageInfo { hasNextPage endCursor } nodes { id createdAt ... on BasicEvent { subjectId subjectType action } } } }"
)


def _floor_second(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.replace(microsecond=0)


def _ceil_second(value: datetime) -> datetime:
    floored = _floor_second(value)
    return floored if floored == value else floored + timedelta(seconds=1)




class ShopifyChangeReader:
    """Yields pages of canonical records changed in ``[lower, upper)`` for one entity."""

    def __init__(self, client: ShopifyClient, *, strategy: str = "auto", logger: logging.Logger | Any = None, restart_every: int = 20_000, progress_every: int = 20,
                 mapping: CompiledMapping | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.client = client
        self.mapping = mapping
        self.strategy = strategy  # one way to read: the filtered, cursor-paged connection
        self.restart_every = max(PAGE_MAX, min(restart_every, PAGINATION_CAP - PAGE_MAX))
        self.log = logger or log
        self.progress_every = progress_every
        self.progress = ReadProgress(strategy="search")
        self.bulk_context: BulkContext | None = None
        self.bulk_progress: BulkProgress | None = None
        #: When the records read were current (a bulk operation's creation): the most a sync may mark as read.
        self.read_until: datetime | None = None

    def prepare_bulk(self, context: BulkContext) -> None:
        """Whether the next read may take the bulk path, and where its operation is remembered."""
        self.bulk_context = context

    # ------------------------------------------------------------------ public

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages of records modified at or after ``lower`` (None: since ever) and before ``upper``.

        Each page of the walk carries the last ``updatedAt`` read and the ids read at it as
        ``resume``: a read given it goes on from that second, skipping those ids.
        """
        self.progress = ReadProgress(strategy="list" if lower is None else "search", started=time.monotonic())
        upper_text = format_timestamp(_ceil_second(upper)) if upper is not None else None
        start = _floor_second(lower) if lower is not None else None
        self.read_until, self.bulk_progress = None, None
        since = f"updated_at:>='{format_timestamp(start)}'" if start else None
        # A full read on the bulk path is every record as of the operation (no upper bound), so a
        # rerun asks the very same query; a backfill keeps its window, and is named by its start.
        search = " AND ".join(filter(None, [since, f"updated_at:<'{upper_text}'" if upper_text else None])) or None
        skip: set[str] = set()
        if resume:
            start, skip = parse_timestamp(resume["start"]), set(resume["skip"])
        elif self._bulk_chosen(entity, bulk_query_text(entity, since, self.mapping), search):
            yield from self._bulk_read(entity, since, search if since else None, upper if since else None)
            return
        while True:
            terms = []
            if start is not None:
                terms.append(f"updated_at:>='{format_timestamp(start)}'")
            if upper_text:
                terms.append(f"updated_at:<'{upper_text}'")
            walked, first_stamp, last_stamp, at_last = 0, None, None, set()
            exhausted = True
            for nodes in self._walk(entity, " AND ".join(terms) or None):
                page = Page()
                for node in nodes:
                    gid = str(node.get("id"))
                    stamp = node.get("updatedAt")
                    first_stamp = first_stamp or stamp
                    if stamp != last_stamp:
                        last_stamp, at_last = stamp, set()
                    at_last.add(gid)
                    if gid in skip:
                        continue
                    self._append(entity, node, page)
                walked += len(nodes)
                self._tick(len(page.records) + len(page.errors))
                if last_stamp is not None and len(at_last) <= RESUME_IDS_MAX:
                    page.resume = {"start": last_stamp, "skip": sorted(at_last)}
                if page.records or page.errors:
                    yield page
                if walked >= self.restart_every:
                    exhausted = False
                    break
            if exhausted or last_stamp is None:
                return
            restart = parse_timestamp(last_stamp)
            if first_stamp == last_stamp:
                # One second holds more records than a walk covers: read it by id, then go on.
                yield from self._one_second(entity, restart, at_last | skip)
                start, skip = restart + timedelta(seconds=1), set()
                continue
            self.log.info("%s: %d records read in this walk; continuing from %s", entity, walked, last_stamp)
            start, skip = restart, at_last

    def _bulk_chosen(self, entity: str, key: str, search: str | None) -> bool:
        if self.strategy in ("list", "search"):
            return False
        context = self.bulk_context or BulkContext()
        if context.memory is not None and context.memory.read(key):
            return True  # a previous run's operation for this very read: take it up again
        return context.wants(lambda: self._count(entity, search), forced=self.strategy == "bulk")

    def _count(self, entity: str, search: str | None) -> int:
        field = OBJECTS[entity].count_field
        data = self.client.graphql(f"query($q: String) {{ {field}(query: $q, limit: null) {{ count precision }} }}", {"q": search}, kind="count", cost=1, entity=entity)
        return int((data.get(field) or {}).get("count") or 0)

    def _bulk_read(self, entity: str, since: str | None, search: str | None, until: datetime | None) -> Iterator[Page]:
        self.progress.strategy = "bulk"
        context = self.bulk_context or BulkContext()
        self.bulk_progress, memory = BulkProgress(logger=self.log, interrupt=context.interrupt), context.memory
        self.read_until, pages = bulk_pages(ShopifyBulkQuery(self.client), entity, bulk_query_text(entity, search, self.mapping), memory, self.bulk_progress,
                                            self._tick, key=bulk_query_text(entity, since, self.mapping), until=until, mapping=self.mapping)
        self.log.info("%s: reading through bulk operation %s", entity, self.bulk_progress.job_id)
        yield from pages

    #: Deletions since a point are a filtered query of the events: every run reads them.
    deletions_since = ("contacts", "companies", "deals")

    def archived(self, entity: str, since: datetime | None = None) -> Iterator[Page]:
        """Deleted records, from Shopify's ``destroy`` events (one year of history; those since ``since``)."""
        query = f"subject_type:{OBJECTS[entity].subject_type} AND action:destroy"
        if since is not None:
            query += f" AND created_at:>='{format_timestamp(since)}'"
        for events in self.client.connection_pages(EVENTS_QUERY, "events", {"first": PAGE_MAX, "query": query}, kind="events", cost=2 + PAGE_MAX, entity=entity):
            page = Page()
            for event in events:
                subject = event.get("subjectId")
                if subject and event.get("subjectType") == OBJECTS[entity].subject_type:
                    page.records.append(RemoteRecord(str(subject), parse_timestamp(event.get("createdAt")), {}, archived=True))
            yield page

    def total(self, entity: str) -> int:
        """How many records Shopify holds (exact: ids are paged when the count is capped)."""
        spec = OBJECTS[entity]
        data = self.client.graphql(f"query {{ {spec.count_field}(limit: null) {{ count precision }} }}", kind="count", cost=1, entity=entity)
        count = data.get(spec.count_field) or {}
        if count.get("precision", "EXACT") == "EXACT":
            return int(count.get("count") or 0)
        query = f"query($first: Int!, $after: String) {{ {spec.connection}(first: $first, after: $after, sortKey: ID) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ id }} }} }}"
        return sum(len(ids) for ids in self.client.connection_pages(query, spec.connection, {"first": PAGE_MAX}, kind="count", cost=2 + PAGE_MAX, entity=entity))

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """The current state of specific records; ids may be GIDs or numeric (webhook) ids."""
        gids = []
        page = Page()
        for raw in ids:
            try:
                gids.append(to_gid(entity, raw))
            except ValueError as exc:
                page.errors.append(RecordError(str(raw), "INVALID_ID", str(exc)))
        if page.errors:
            yield page
        query, size = _nodes_query(entity, self.mapping), self._page_size(entity)
        for start in range(0, len(gids), size):
            chunk = gids[start : start + size]
            data = self.client.graphql(query, {"ids": chunk}, kind="batch_read", cost=len(chunk) * (1 + node_cost(entity, self.mapping)), entity=entity)
            page = Page()
            for gid, node in zip(chunk, data.get("nodes") or []):
                if node is None:
                    page.records.append(RemoteRecord(gid, None, {}, archived=True))
                else:
                    self._append(entity, node, page)
            self._tick(len(page.records) + len(page.errors))
            yield page

    # ------------------------------------------------------------------ helpers

    def _walk(self, entity: str, query: str | None, sort_key: str = "UPDATED_AT") -> Iterator[list[dict[str, Any]]]:
        """Node lists of one connection walk, page by page."""
        size = self._page_size(entity)
        for nodes in self.client.connection_pages(_connection_query(entity, sort_key, self.mapping), OBJECTS[entity].connection, {"first": size, "query": query},
                                                  kind="list", cost=2 + size * node_cost(entity, self.mapping), entity=entity):
            self.progress.pages += 1
            yield nodes

    def _one_second(self, entity: str, second: datetime, already: set[str]) -> Iterator[Page]:
        after_id = 0
        low, high = format_timestamp(second), format_timestamp(second + timedelta(seconds=1))
        while True:
            query = f"updated_at:>='{low}' AND updated_at:<'{high}' AND id:>{after_id}"
            walked = 0
            for nodes in self._walk(entity, query, sort_key="ID"):
                page = Page()
                for node in nodes:
                    if str(node.get("id")) not in already:
                        self._append(entity, node, page)
                    after_id = int(str(node.get("id")).rsplit("/", 1)[-1])
                walked += len(nodes)
                if page.records or page.errors:
                    yield page
                if walked >= self.restart_every:
                    break
            else:
                return

    def _page_size(self, entity: str) -> int:
        """Nodes a page asks for: PAGE_MAX, fewer when mapped metafields would take a page over the cost cap."""
        return min(PAGE_MAX, page_size(entity, self.mapping))

    def _append(self, entity: str, node: dict[str, Any], page: Page) -> None:
        mapped = to_remote_record(entity, node, self.mapping)
        if isinstance(mapped, RecordError):
            page.errors.append(mapped)
        else:
            page.records.append(mapped)

    def _tick(self, count: int) -> None:
        self.progress.tick(count, self.log, self.progress_every, page=False)


__all__ = ["PAGINATION_CAP", "ShopifyChangeReader"]
