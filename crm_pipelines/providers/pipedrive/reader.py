"""Reading Pipedrive changes for a time window without losing records.

* **delta** (``GET /api/v2/{entity}?updated_since&updated_until&sort_by=update_time``): only
  records updated in ``[lower, upper)``, 500 per page. The window bounds are whole seconds
  (``lower`` rounded down, ``upper`` up: wider, never narrower), inclusive at the start and
  exclusive at the end, so adjacent windows neither miss nor repeat a record. The cursor is a
  keyset position (update time, id), so records sharing one ``update_time`` are paged through in
  id order and none is skipped; a record updated during the scan moves past ``upper`` and is read
  by the next window.
* **list** (no date filter, ``sort_by=id``): every live record, for the initial sync.

Deletions: deals deleted in the last 30 days are listed with ``status=deleted`` (the delta read
asks for every status, so a deal deleted in the window comes with the window's changes). Persons and
organizations have no such listing; their ids are sequential, so the sweep lists live ids in order
and reports every id missing between two live ones as deleted (the store ignores ids it never
linked; a deleted record above the highest live id is found by webhooks or by id). Records read by
id (webhooks) that come back flagged ``is_deleted`` or are gone (404) are deletions too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.pipedrive.api import IDS_FILTER_MAX, LIST_PAGE_MAX, PipedriveClient, chunks, format_rfc3339
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.pipedrive.mapping import FieldKeys, to_remote_record
from crm_pipelines.sync.progress import ReadProgress

log = logging.getLogger(__name__)

#: ``search`` is what the generic Dagster config calls the windowed read.
STRATEGIES = ("auto", "list", "delta", "search")
GAP_PAGE = 1000




def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def ceil_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment


class PipedriveChangeReader:
    """Yields pages of canonical records changed in ``[lower, upper)`` for one entity."""

    def __init__(self, client: PipedriveClient, *, strategy: str = "auto", logger: logging.Logger | Any = None, progress_every: int = 20,
                 mapping: CompiledMapping | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.client = client
        self.strategy = strategy
        self.log = logger or log
        self.progress_every = progress_every
        self.progress = ReadProgress()
        self._keys: dict[str, FieldKeys] = {}
        self.mapping = mapping

    def keys(self, entity: str) -> FieldKeys:
        if entity not in self._keys:
            self._keys[entity] = FieldKeys.resolve(entity, self.client.field_keys(entity), self.mapping)
        return self._keys[entity]

    # ------------------------------------------------------------------ protocol

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages of records updated at or after ``lower`` (None: every record) and before ``upper``.

        The list read's pages carry the list cursor as ``resume``: a read given it goes on from the page after.
        """
        self.progress = ReadProgress(started=time.monotonic())
        keys = self.keys(entity)
        if lower is None or self.strategy == "list":
            self.progress.strategy = "list"
            listing = {"sort_by": "id", "sort_direction": "asc", "limit": LIST_PAGE_MAX}
            for results, following in self.client.iter_list_after(entity, listing, (resume or {}).get("cursor")):
                page = self._page(entity, results, keys)
                page.resume = {"cursor": following} if following else None
                if lower is not None:
                    page.records = [r for r in page.records if r.updated_at is None or r.updated_at >= lower]
                yield page
            return
        self.progress.strategy = "delta"
        params: dict[str, Any] = {"updated_since": format_rfc3339(floor_second(lower)), "sort_by": "update_time", "sort_direction": "asc", "limit": LIST_PAGE_MAX}
        if upper is not None:
            params["updated_until"] = format_rfc3339(ceil_second(upper))
        if entity == "deals":
            params["status"] = "open,won,lost,deleted"  # deletions in the window come with the changes
        for results in self.client.iter_list(entity, params):
            page = self._page(entity, results, keys)
            if page.records or page.errors:
                yield page

    #: Deleted deals are a filtered list (every run reads those deleted since its lower bound);
    #: deleted persons and organizations are found by id gaps, a full scan kept for the daily sweep.
    deletions_since = ("deals",)

    def archived(self, entity: str, since: datetime | None = None) -> Iterator[Page]:
        """Deleted records: deals by ``status=deleted`` (changed since ``since``); persons/organizations by id gaps."""
        if entity == "deals":
            keys = self.keys(entity)
            params = {"status": "deleted", "sort_by": "id", "limit": LIST_PAGE_MAX}
            if since is not None:
                params["updated_since"] = format_rfc3339(since)
            for results in self.client.iter_list(entity, params):
                page = Page()
                for obj in results:
                    mapped = to_remote_record(entity, dict(obj, is_deleted=True), keys, self.mapping)
                    if isinstance(mapped, RecordError):
                        mapped = RemoteRecord(str(obj.get("id")), None, {}, archived=True)
                    page.records.append(mapped)
                yield page
            return
        previous = 0
        pending: list[RemoteRecord] = []
        for results in self.client.iter_list(entity, {"sort_by": "id", "sort_direction": "asc", "limit": LIST_PAGE_MAX}):
            for obj in results:
                record_id = int(obj["id"])
                for missing in range(previous + 1, record_id):
                    pending.append(RemoteRecord(str(missing), None, {}, archived=True))
                    if len(pending) >= GAP_PAGE:
                        yield Page(records=pending)
                        pending = []
                previous = max(previous, record_id)
        if pending:
            yield Page(records=pending)

    def total(self, entity: str) -> int:
        """How many live records Pipedrive holds (ids paged 500 at a time; 10 tokens a page)."""
        return sum(len(results) for results in self.client.iter_list(entity, {"sort_by": "id", "limit": LIST_PAGE_MAX}))

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """The current state of specific records: the ``ids`` filter, then GET by id for the rest.

        A record that comes back flagged deleted, or is gone (404), is reported as deleted.
        """
        keys = self.keys(entity)
        numeric = [i for i in ids if str(i).isdigit()]
        bad = [i for i in ids if not str(i).isdigit()]
        if bad:
            yield Page(errors=[RecordError(str(i), "INVALID_ID", "Pipedrive ids are integers") for i in bad])
        for chunk in chunks(numeric, IDS_FILTER_MAX):
            found: dict[str, dict[str, Any]] = {}
            for results in self.client.iter_list(entity, {"ids": ",".join(chunk), "limit": LIST_PAGE_MAX}):
                found.update({str(obj.get("id")): obj for obj in results})
            page = self._page(entity, list(found.values()), keys)
            for record_id in chunk:
                if record_id in found:
                    continue
                obj = self.client.get(entity, record_id)
                if obj is None:
                    page.records.append(RemoteRecord(record_id, None, {}, archived=True))
                else:
                    mapped = to_remote_record(entity, obj, keys, self.mapping)
                    (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
            yield page

    # ------------------------------------------------------------------ helpers

    def _page(self, entity: str, results: list[dict[str, Any]], keys: FieldKeys) -> Page:
        page = Page()
        for obj in results:
            mapped = to_remote_record(entity, obj, keys, self.mapping)
            (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
        self._tick(len(results))
        return page

    def _tick(self, count: int) -> None:
        self.progress.tick(count, self.log, self.progress_every)
