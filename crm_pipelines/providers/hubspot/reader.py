"""Reading HubSpot changes for a time window without losing records.

Two ways to read:

* **list** (``GET /crm/v3/objects/{obj}``, 100 per page, id cursor): every record, in id order. Used
  for the initial sync and very wide windows; it has no date filter, so records are filtered on
  their modification time here. Its id cursor is immune to records changing during the scan.
* **search** (``POST .../search``, 200 per page): only records modified in the window, sorted by
  modification time. HubSpot pages search results by *offset* and stops at 10,000 results; offset
  paging also skips records when others leave the result set mid-scan. So every page here is a
  fresh query starting at the modification time of the last record seen (keyset paging): the offset
  is always 0, the 10,000 cap never applies, and records at the boundary timestamp are recognised
  by id and skipped. When a whole page shares one timestamp (bulk updates do that), that timestamp
  is read on its own, sorted and paged by ``hs_object_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.hubspot.api import BATCH_MAX, OBJECTS, SEARCH_PAGE_MAX, HubSpotClient
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.hubspot.mapping import parse_timestamp, properties_for, to_epoch_ms, to_remote_record
from crm_pipelines.sync.progress import ReadProgress

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "list", "search")




class HubSpotChangeReader:
    """Yields pages of canonical records changed in ``[lower, upper)`` for one object type."""

    def __init__(
        self,
        client: HubSpotClient,
        *,
        strategy: str = "auto",
        list_above: int = 50_000,
        logger: logging.Logger | Any = None,
        progress_every: int = 20,
        mapping: CompiledMapping | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.client = client
        self.strategy = strategy
        self.mapping = mapping
        self.list_above = list_above
        self.log = logger or log
        self.progress_every = progress_every
        self.progress = ReadProgress()

    # ------------------------------------------------------------------ public

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages of records modified at or after ``lower`` (None: since ever) and before ``upper``.

        The list read's pages carry the list cursor as ``resume``: a full read given it goes on
        from the page after.
        """
        self.progress = ReadProgress(started=time.monotonic())
        if self.strategy == "list" or (self.strategy == "auto" and lower is None):
            yield from self._by_list(entity, lower, upper, after=(resume or {}).get("after"))
            return
        yield from self._by_search(entity, lower, upper)

    #: The archived list is read on every run (HubSpot cannot filter it by time; it costs one call per
    #: 100 archived records), and only records archived since the run's lower bound are applied.
    deletions_since = ("contacts", "companies", "deals")

    def archived(self, entity: str, since: datetime | None = None) -> Iterator[Page]:
        """Pages of archived (deleted) records (those archived since ``since``), to propagate deletions."""
        properties = properties_for(entity, self.mapping)
        for results in self.client.iter_list(entity, properties, archived=True):
            page = Page()
            for obj in results:
                archived_at = parse_timestamp(obj.get("archivedAt"))
                if since is not None and archived_at is not None and archived_at < since:
                    continue
                obj = dict(obj, archived=True)
                mapped = to_remote_record(entity, obj, self.mapping)
                if isinstance(mapped, RecordError):
                    # A deleted record still counts as deleted even if its last values were odd.
                    mapped = RemoteRecord(str(obj.get("id")), parse_timestamp(obj.get("archivedAt") or obj.get("updatedAt")), {}, archived=True)
                page.records.append(mapped)
            yield page

    def total(self, entity: str) -> int:
        """How many live records HubSpot holds (one search call; search never counts archived ones)."""
        data = self.client.search(entity, {"filterGroups": [], "properties": ["hs_object_id"], "limit": 1})
        return int(data.get("total") or 0)

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """The current state of specific records (``batch/read``, 100 ids a call).

        Ids HubSpot no longer knows as live records are read again with ``archived=true``: those
        come back as deletions; ids unknown either way (merged away, purged) are skipped.
        """
        properties = properties_for(entity, self.mapping)
        for start in range(0, len(ids), BATCH_MAX):
            chunk = ids[start : start + BATCH_MAX]
            data = self.client.batch_read(entity, chunk, properties)
            page = Page()
            for obj in data.get("results") or []:
                self._append(entity, obj, page)
            missing = [i for error in data.get("errors") or [] if error.get("category") == "OBJECT_NOT_FOUND" for i in (error.get("context") or {}).get("ids", [])]
            if missing:
                archived = self.client.batch_read(entity, missing, properties, archived=True)
                for obj in archived.get("results") or []:
                    page.records.append(RemoteRecord(str(obj.get("id")), parse_timestamp(obj.get("archivedAt") or obj.get("updatedAt")), {}, archived=True))
            self._tick(len(page.records) + len(page.errors))
            yield page

    # ------------------------------------------------------------------ list

    def _by_list(self, entity: str, lower: datetime | None, upper: datetime | None, after: str | None = None) -> Iterator[Page]:
        self.progress.strategy = "list"
        properties = properties_for(entity, self.mapping)
        for results, following in self.client.iter_list_after(entity, properties, after=after):
            page = Page(resume={"after": following} if following else None)
            for obj in results:
                mapped = to_remote_record(entity, obj, self.mapping)
                if isinstance(mapped, RecordError):
                    page.errors.append(mapped)
                    continue
                # The list has no date filter: keep what changed since ``lower``. Records changed
                # after ``upper`` are kept too: they are current, and newer than what is stored.
                if lower is not None and mapped.updated_at is not None and mapped.updated_at < lower:
                    continue
                page.records.append(mapped)
            self._tick(len(results))
            yield page

    # ------------------------------------------------------------------ search

    def _by_search(self, entity: str, lower: datetime | None, upper: datetime | None) -> Iterator[Page]:
        self.progress.strategy = "search"
        spec = OBJECTS[entity]
        properties = properties_for(entity, self.mapping)
        prop = spec.modified_property
        cursor_ms = to_epoch_ms(lower) if lower is not None else 0
        upper_ms = to_epoch_ms(upper) if upper is not None else None
        seen_at_cursor: set[str] = set()
        first = True
        while True:
            filters = [{"propertyName": prop, "operator": "GTE", "value": str(cursor_ms)}]
            if upper_ms is not None:
                filters.append({"propertyName": prop, "operator": "LT", "value": str(upper_ms)})
            data = self.client.search(
                entity,
                {
                    "filterGroups": [{"filters": filters}],
                    "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                    "properties": properties,
                    "limit": SEARCH_PAGE_MAX,
                },
            )
            results = data.get("results") or []
            if first:
                first = False
                total = int(data.get("total") or 0)
                self.progress.expected = total
                if self.strategy == "auto" and total > self.list_above:
                    self.log.info(
                        "%s: %d records changed in the window (more than %d): reading the full list instead of search",
                        entity, total, self.list_above,
                    )
                    yield from self._by_list(entity, lower, upper)
                    return
            page = Page()
            last_ms: int | None = None
            for obj in results:
                ms = _modified_ms(obj, prop)
                record_id = str(obj.get("id"))
                if ms == cursor_ms and record_id in seen_at_cursor:
                    continue
                if ms != last_ms:
                    last_ms = ms
                self._append(entity, obj, page)
                if ms == cursor_ms:
                    seen_at_cursor.add(record_id)
            self._tick(len(page.records) + len(page.errors))
            if page.records or page.errors:
                yield page
            more = len(results) >= SEARCH_PAGE_MAX or bool((data.get("paging") or {}).get("next"))
            if not more:
                return
            page_last_ms = _modified_ms(results[-1], prop)
            if page_last_ms is None:
                return
            if page_last_ms == cursor_ms and _modified_ms(results[0], prop) == cursor_ms:
                # A full page at a single timestamp: read that timestamp on its own.
                yield from self._by_search_one_timestamp(entity, cursor_ms, seen_at_cursor, properties, prop)
                cursor_ms += 1
                seen_at_cursor = set()
                continue
            if page_last_ms != cursor_ms:
                seen_at_cursor = {str(o.get("id")) for o in results if _modified_ms(o, prop) == page_last_ms}
                cursor_ms = page_last_ms

    def _by_search_one_timestamp(self, entity: str, ms: int, already: set[str], properties: list[str], prop: str) -> Iterator[Page]:
        last_id = 0
        while True:
            data = self.client.search(
                entity,
                {
                    "filterGroups": [
                        {
                            "filters": [
                                {"propertyName": prop, "operator": "EQ", "value": str(ms)},
                                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
                            ]
                        }
                    ],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": properties,
                    "limit": SEARCH_PAGE_MAX,
                },
            )
            results = data.get("results") or []
            page = Page()
            for obj in results:
                if str(obj.get("id")) not in already:
                    self._append(entity, obj, page)
            self._tick(len(page.records) + len(page.errors))
            if page.records or page.errors:
                yield page
            if len(results) < SEARCH_PAGE_MAX and not (data.get("paging") or {}).get("next"):
                return
            last_id = int(results[-1]["id"])

    # ------------------------------------------------------------------ helpers

    def _append(self, entity: str, obj: dict[str, Any], page: Page) -> None:
        mapped = to_remote_record(entity, obj, self.mapping)
        if isinstance(mapped, RecordError):
            page.errors.append(mapped)
        else:
            page.records.append(mapped)

    def _tick(self, count: int) -> None:
        self.progress.tick(count, self.log, self.progress_every)


def _modified_ms(obj: dict[str, Any], prop: str) -> int | None:
    value = (obj.get("properties") or {}).get(prop) or obj.get("updatedAt")
    stamp = parse_timestamp(value)
    return to_epoch_ms(stamp) if stamp is not None else None
