"""Reading Salesforce changes for a time window without losing records.

One SOQL query per window, in ``SystemModstamp, Id`` order::

    SELECT Id, CreatedDate, SystemModstamp, <mapped fields> FROM Contact
    WHERE SystemModstamp >= <lower> AND SystemModstamp < <upper>
    ORDER BY SystemModstamp, Id

followed through ``nextRecordsUrl`` until ``done`` (2,000 rows per page). The order is total, so
records sharing one timestamp (Salesforce stamps whole seconds; bulk updates stamp thousands
alike) are never skipped. A query cursor can expire during a long read (``INVALID_QUERY_LOCATOR``):
the read then resumes with a fresh query starting after the last ``(SystemModstamp, Id)`` seen.
A page retried after a fault is the same page (its position is part of its URL).

The initial sync (no lower bound) reads every record the same way, without an upper bound: all
records as they are now. Deletions come from ``queryAll`` with ``IsDeleted = true`` (the recycle
bin keeps them about 15 days).

A full sync or a backfill of more than the integration's ``bulk_threshold`` records (the first
page's ``totalSize`` decides; that page serves the regular read otherwise) goes through a Bulk API
2.0 query job instead (:mod:`.bulk`): CSV pages of 10,000 rows, the job found again by its id
after a crash. A new job is started only if the org's daily bulk allocations (``/limits``) have
room for it (:mod:`.bulk_limits`); otherwise the read takes the SOQL pages and says why
(``bulk_fallback`` in the run's metadata), or stops if the API requests left fit neither path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.salesforce.api import MAX_ENCODED_SOQL, SOBJECTS, SalesforceClient, encoded_length, soql_string
from crm_pipelines.providers.salesforce.bulk import Bulk2, bulk_read
from crm_pipelines.providers.salesforce.bulk_limits import OrgLimits, refused_for_limits
from crm_pipelines.providers.salesforce.mapping import MODIFIED_FIELD, Mapping, parse_datetime, soql_datetime
from crm_pipelines.sync.bulk import BulkContext, BulkProgress
from crm_pipelines.sync.progress import ReadProgress

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "soql", "bulk")
#: Ids per ``WHERE Id IN (...)`` look-up (18 characters each: the query stays far below the URL limit).
IDS_PER_QUERY = 300




class SalesforceChangeReader:
    """Yields pages of canonical records changed in ``[lower, upper)`` for one sObject."""

    def __init__(
        self,
        client: SalesforceClient,
        *,
        mapping: Mapping | None = None,
        strategy: str = "auto",
        logger: logging.Logger | Any = None,
        progress_every: int = 10,
        max_resumes: int = 50,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.client = client
        self.mapping = mapping or Mapping()
        self.strategy = strategy
        self.log = logger or log
        self.progress_every = progress_every
        self.max_resumes = max_resumes
        self.progress = ReadProgress()
        self.bulk_context: BulkContext | None = None
        self.bulk_progress: BulkProgress | None = None
        #: When the records read were current (a bulk job's creation): the most a sync may mark as read.
        self.read_until: datetime | None = None

    def prepare_bulk(self, context: BulkContext) -> None:
        """Whether the next read may take the bulk path, and where its job is remembered."""
        self.bulk_context = context

    # ------------------------------------------------------------------ public

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages of records modified at or after ``lower`` (None: every record) and before ``upper``.

        Each SOQL page carries its last ``(SystemModstamp, Id)`` as ``resume``: a read given it
        goes on with the records after that position.
        """
        self.progress = ReadProgress(strategy="soql", started=time.monotonic())
        bounds = []
        if lower is not None:
            bounds.append(f"{MODIFIED_FIELD} >= {soql_datetime(lower)}")
            if upper is not None:
                bounds.append(f"{MODIFIED_FIELD} < {soql_datetime(upper, round_up=True)}")
        self.read_until, self.bulk_progress = None, None
        if resume:
            yield from self._keyset_read(entity, bounds, last=tuple(resume["after"]))
            return
        select = f"SELECT {', '.join(self.mapping.select_fields(entity))} FROM {SOBJECTS[entity]}"
        soql = select + (f" WHERE {' AND '.join(bounds)}" if bounds else "")
        key = select + (f" WHERE {bounds[0]}" if bounds else "")  # the read across runs: its upper bound moves
        first: dict[str, Any] = {}
        if self._bulk_chosen(key, lambda: self._first_page(entity, bounds, first)):
            pages = self._bulk_read(entity, soql, key, upper if lower is not None else None, first)
            if pages is not None:
                yield from pages
                return
        yield from self._keyset_read(entity, bounds, first or None)

    def _bulk_chosen(self, key: str, count: Callable[[], int]) -> bool:
        if self.strategy == "soql":
            return False
        context = self.bulk_context or BulkContext()
        if context.memory is not None and context.memory.read(key):
            return True  # a previous run's job for this very read: take it up again
        return context.wants(count, forced=self.strategy == "bulk")

    def _first_page(self, entity: str, bounds: list[str], into: dict[str, Any]) -> int:
        """The regular read's first page (kept for it) and the ``totalSize`` it reports: the size that decides."""
        into.update(self.client.query(self._keyset_soql(entity, bounds, None)))
        return int(into.get("totalSize") or 0)

    def _bulk_read(self, entity: str, soql: str, key: str, until: datetime | None, first: dict[str, Any]) -> Iterator[Page] | None:
        """The query job's pages, or None when the org's daily bulk allocations leave the regular path (said why)."""
        context = self.bulk_context or BulkContext()
        self.bulk_progress, memory = BulkProgress(logger=self.log, interrupt=context.interrupt), context.memory
        if memory is None or not memory.read(key):  # a new job: the day's allocations are checked first
            choice = OrgLimits.read(self.client).for_query(int(first["totalSize"]) if first else None, SOBJECTS[entity])
            if not choice.bulk:
                self.bulk_progress.fall_back(choice.reason)
                return None
        try:
            self.read_until, pages = bulk_read(Bulk2(self.client), self.mapping, entity, soql, memory, self.bulk_progress, self._tick, key=key, until=until)
        except QuotaExhausted as exc:
            if not refused_for_limits(exc):
                raise
            self.bulk_progress.fall_back(f"{exc.provider_message}; taking SOQL pages instead")
            return None
        self.progress.strategy = "bulk"
        self.log.info("%s: reading through Bulk API 2.0 query job %s", entity, self.bulk_progress.job_id)
        return pages

    #: Deletions since a point are one cheap query: every run reads them (no daily sweep needed).
    deletions_since = ("contacts", "companies", "deals")

    def archived(self, entity: str, since: datetime | None = None) -> Iterator[Page]:
        """Pages of deleted records still in the recycle bin (deleted since ``since``), to propagate deletions."""
        recent = f" AND {MODIFIED_FIELD} >= {soql_datetime(since)}" if since else ""
        soql = f"SELECT {', '.join(self.mapping.select_fields(entity))} FROM {SOBJECTS[entity]} WHERE IsDeleted = true{recent} ORDER BY {MODIFIED_FIELD}, Id"
        for rows in self.client.iter_query(soql, all_rows=True):
            yield Page(records=[self._deleted(entity, row) for row in rows])

    def total(self, entity: str) -> int:
        """How many live records the org holds (``SELECT COUNT()``, one call)."""
        return self.client.count(SOBJECTS[entity])

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """The current state of specific records; ids no longer live are looked up among deletions."""
        fields = ", ".join(self.mapping.select_fields(entity))
        sobject = SOBJECTS[entity]
        for chunk in _id_chunks(ids):
            page = Page()
            seen: set[str] = set()
            for rows in self.client.iter_query(f"SELECT {fields} FROM {sobject} WHERE Id IN ({', '.join(soql_string(i) for i in chunk)})"):
                for row in rows:
                    seen.add(str(row.get("Id")))
                    self._append(entity, row, page)
            missing = [i for i in chunk if i not in seen and i[:15] not in {s[:15] for s in seen}]
            if missing:
                soql = f"SELECT {fields} FROM {sobject} WHERE Id IN ({', '.join(soql_string(i) for i in missing)}) AND IsDeleted = true"
                for rows in self.client.iter_query(soql, all_rows=True):
                    page.records.extend(self._deleted(entity, row) for row in rows)
            self._tick(len(page.records) + len(page.errors))
            yield page

    # ------------------------------------------------------------------ reading

    def _keyset_soql(self, entity: str, bounds: list[str], last: tuple[str, str] | None) -> str:
        where = list(bounds)
        if last is not None:
            stamp, record_id = last
            where.append(f"({MODIFIED_FIELD} > {stamp} OR ({MODIFIED_FIELD} = {stamp} AND Id > {soql_string(record_id)}))")
        fields = ", ".join(self.mapping.select_fields(entity))
        return f"SELECT {fields} FROM {SOBJECTS[entity]}" + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {MODIFIED_FIELD}, Id"

    def _keyset_read(self, entity: str, bounds: list[str], first: dict[str, Any] | None = None, last: tuple[str, str] | None = None) -> Iterator[Page]:
        # ``last``: (SystemModstamp literal, Id) of the last row read
        while True:
            try:
                data, first = first or self.client.query(self._keyset_soql(entity, bounds, last)), None
                if self.progress.expected is None:
                    self.progress.expected = int(data.get("totalSize") or 0)
                while True:
                    rows = data.get("records") or []
                    page = Page()
                    for row in rows:
                        self._append(entity, row, page)
                    if rows:
                        last = (_stamp_literal(rows[-1]), str(rows[-1].get("Id")))
                        page.resume = {"after": list(last)}
                    self._tick(len(rows))
                    if rows:
                        yield page
                    next_url = data.get("nextRecordsUrl")
                    if data.get("done", True) or not next_url:
                        return
                    data = self.client.query_more(next_url)
            except ProviderError as exc:
                if exc.category != "INVALID_QUERY_LOCATOR" or last is None or self.progress.resumed >= self.max_resumes:
                    raise
                self.progress.resumed += 1
                self.log.info("%s: query cursor expired after %d records; resuming after %s %s", entity, self.progress.fetched, *last)

    # ------------------------------------------------------------------ helpers

    def _append(self, entity: str, row: dict[str, Any], page: Page) -> None:
        mapped = self.mapping.to_remote_record(entity, row)
        if isinstance(mapped, RecordError):
            page.errors.append(mapped)
        else:
            page.records.append(mapped)

    def _deleted(self, entity: str, row: dict[str, Any]) -> RemoteRecord:
        mapped = self.mapping.to_remote_record(entity, row, archived=True)
        if isinstance(mapped, RecordError):
            # A deleted record still counts as deleted even if its last values were odd.
            try:
                stamp = parse_datetime(row.get(MODIFIED_FIELD))
            except ValueError:
                stamp = None
            return RemoteRecord(str(row.get("Id")), stamp, {}, archived=True)
        return mapped

    def _tick(self, count: int) -> None:
        self.progress.tick(count, self.log, self.progress_every)


def _stamp_literal(row: dict[str, Any]) -> str:
    stamp = parse_datetime(row.get(MODIFIED_FIELD))
    if stamp is None:
        raise ProviderError("salesforce", f"record {row.get('Id')} has no {MODIFIED_FIELD}; cannot page by it")
    if stamp.microsecond:
        # Whole seconds are what Salesforce stores; keep any fraction exact rather than round it.
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return soql_datetime(stamp)


def _id_chunks(ids: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for record_id in ids:
        cost = encoded_length(soql_string(record_id)) + 3
        if chunk and (len(chunk) >= IDS_PER_QUERY or size + cost > MAX_ENCODED_SOQL):
            yield chunk
            chunk, size = [], 0
        chunk.append(record_id)
        size += cost
    if chunk:
        yield chunk
