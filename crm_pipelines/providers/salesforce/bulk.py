"""Salesforce Bulk API 2.0: query jobs for big reads, ingest jobs for big writes (docs/bulk.md).

* **Query**: ``POST /jobs/query`` with the SOQL, ``GET /jobs/query/{id}`` until ``JobComplete``,
  then ``GET .../results?maxRecords=N&locator=L`` CSV pages until ``Sforce-Locator: null``.
* **Ingest**: ``POST /jobs/ingest`` (``upsert`` on the external-id field for creates, ``update``
  by ``Id`` for linked records), ``PUT .../batches`` with the CSV, ``PATCH {"state":
  "UploadComplete"}``, ``GET`` until a final state, then ``successfulResults/`` (``sf__Id``,
  ``sf__Created``) and ``failedResults/`` (``sf__Error``); rows the job never processed come
  back from ``unprocessedrecords/`` and go to the reject ledger with the job's error.

Every call goes through :class:`SalesforceClient`, so each one is counted against the org's daily
allocation share like any other call. The job id is remembered (:class:`BulkJobMemory`) as soon
as the job exists: a run that dies while the job runs finds it again instead of starting another.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.core.model import Page, RecordError
from crm_pipelines.providers.salesforce.api import SOBJECTS, SalesforceClient
from crm_pipelines.providers.salesforce.mapping import Mapping, parse_datetime
from crm_pipelines.sync.bulk import BulkJobMemory, BulkProgress, poll_interval
from crm_pipelines.sync.writes import OutgoingRecord, WriteResult, idempotency_key

#: Rows per result page asked with ``maxRecords`` (each page is one API call).
RESULT_PAGE = 10_000
#: Records per page handed to the importer.
APPLY_PIECE = 1_000
#: Bytes of CSV per ingest job (the API takes up to 100 MB once encoded; keep a margin).
UPLOAD_MAX_BYTES = 80 * 1024 * 1024
FINAL_STATES = ("JobComplete", "Failed", "Aborted")
#: The error of a job that ran out of the org's daily batches (``DailyBulkApiBatches``).
BATCHES_SPENT = "ExceededQuota"
#: Codes of a job refused because a daily bulk allocation is spent (query jobs or their storage; batches).
LIMIT_CODES = ("LIMIT_EXCEEDED", "EXCEEDEDQUOTA")
BOOLEAN_FIELDS = ("IsDeleted",)

log = logging.getLogger(__name__)


class Bulk2:
    """The Bulk API 2.0 calls of one org."""

    def __init__(self, client: SalesforceClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self._sleep = sleep

    def _path(self, kind: str, job_id: str = "", suffix: str = "") -> str:
        return f"{self.client.data_path}/jobs/{kind}" + (f"/{job_id}" if job_id else "") + suffix

    def create_query(self, soql: str, *, all_rows: bool = False) -> dict[str, Any]:
        return self._create("query", {"operation": "queryAll" if all_rows else "query", "query": soql})

    def create_ingest(self, sobject: str, operation: str, external_id_field: str | None = None) -> dict[str, Any]:
        body = {"object": sobject, "operation": operation, "contentType": "CSV", "lineEnding": "LF"}
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        return self._create("ingest", body)

    def _create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new job; one refused for a spent daily bulk allocation raises :class:`QuotaExhausted` (same code)."""
        try:
            return self.client.request("POST", self._path(kind), json=body, kind="bulk")
        except ProviderError as exc:
            if exc.status == 400 and exc.category in LIMIT_CODES:
                raise QuotaExhausted("salesforce", f"the org refused a bulk {kind} job: {exc.provider_message}", status=400, category=exc.category) from None
            raise

    def job(self, kind: str, job_id: str) -> dict[str, Any] | None:
        """The job as the API shows it, or None when it no longer exists."""
        try:
            return self.client.request("GET", self._path(kind, job_id), kind="bulk_poll")
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise

    def abort(self, kind: str, job_id: str) -> None:
        try:
            self.client.request("PATCH", self._path(kind, job_id), json={"state": "Aborted"}, kind="bulk")
        except ProviderError as exc:
            if exc.status not in (400, 404):  # already finished, or gone
                raise

    def wait(self, kind: str, job_id: str, progress: BulkProgress) -> dict[str, Any]:
        """Poll until the job reaches a final state; every answer updates ``progress``."""
        while True:
            info = self.job(kind, job_id)
            progress.polls += 1
            if info is None:
                raise ProviderError("salesforce", f"bulk {kind} job {job_id} no longer exists", status=404, category="NOT_FOUND")
            progress.update(str(info.get("state")), int(info.get("numberRecordsProcessed") or 0), int(info.get("numberRecordsFailed") or 0))
            if info.get("state") in FINAL_STATES:
                return info
            self._sleep(poll_interval(progress.polls))

    def result_pages(self, job_id: str, *, max_records: int = RESULT_PAGE) -> Iterator[list[dict[str, str]]]:
        """The query job's rows, one CSV page at a time (following ``Sforce-Locator``)."""
        locator: str | None = None
        while True:
            params = {"maxRecords": max_records} | ({"locator": locator} if locator else {})
            response = self.client.request("GET", self._path("query", job_id, "/results"), params=params, kind="bulk_results", raw=True)
            yield list(csv.DictReader(io.StringIO(response.text)))
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return

    def upload(self, job_id: str, data: bytes) -> None:
        self.client.request("PUT", self._path("ingest", job_id, "/batches"), content=data, content_type="text/csv", kind="bulk_upload", raw=True)

    def close(self, job_id: str) -> None:
        self.client.request("PATCH", self._path("ingest", job_id), json={"state": "UploadComplete"}, kind="bulk")

    def ingest_results(self, job_id: str, which: str) -> list[dict[str, str]]:
        response = self.client.request("GET", self._path("ingest", job_id, f"/{which}/"), kind="bulk_results", raw=True)
        return list(csv.DictReader(io.StringIO(response.text)))


# ---------------------------------------------------------------------------------------- reading


def bulk_read(bulk: Bulk2, mapping: Mapping, entity: str, soql: str, memory: BulkJobMemory | None, progress: BulkProgress,
              on_rows: Callable[[int], None], *, key: str | None = None, until: datetime | None = None) -> tuple[datetime | None, Iterator[Page]]:
    """Start (or find again) the query job for ``soql``; until when its records are read, and its pages.

    ``key`` names the read across runs (the query without its upper bound, which moves with each
    run); a job a previous run left for the same key is taken up again. Its records are the org's
    as they were when the job was created, and no later than its own upper bound (``until``).
    """
    key = key or soql
    info = _remembered(bulk, memory, key, progress)
    if info is None:
        info = bulk.create_query(soql)
        if memory is not None:
            memory.put({"id": info["id"], "kind": "query", "key": key, "query": soql, "until": until.isoformat() if until else None})
    else:
        remembered = memory.get() if memory is not None else None
        until = datetime.fromisoformat(remembered["until"]) if remembered and remembered.get("until") else None
    progress.job_id = str(info["id"])
    created = parse_datetime(str(info.get("createdDate") or "").replace("+0000", "Z")) if info.get("createdDate") else None
    read_until = min(filter(None, [created, until]), default=None)

    def pages() -> Iterator[Page]:
        final = bulk.wait("query", progress.job_id, progress)
        if final.get("state") != "JobComplete":
            raise ProviderError("salesforce", f"bulk query job {progress.job_id} ended {final.get('state')}: {final.get('errorMessage') or 'no reason given'}",
                                category="BULK_JOB_" + str(final.get("state")).upper())
        for rows in _forgetting_expired(bulk.result_pages(progress.job_id), memory):
            # Handed on in pieces, so the rows of one big result page are mapped while the previous piece is applied.
            for start in range(0, len(rows), APPLY_PIECE):
                page = Page()
                for row in rows[start : start + APPLY_PIECE]:
                    mapped = mapping.to_remote_record(entity, _typed_row(row))
                    (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
                on_rows(len(page.records) + len(page.errors))
                yield page

    return read_until, pages()


def _forgetting_expired(pages: Iterator[list[dict[str, str]]], memory: BulkJobMemory | None) -> Iterator[list[dict[str, str]]]:
    """The job's result pages; results no longer there (kept 7 days) make the next run start a new job."""
    try:
        yield from pages
    except ProviderError as exc:
        if exc.status in (400, 404) and memory is not None:
            memory.clear()
        raise


def _typed_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the JSON API gives it: empty cells are nulls, booleans are booleans."""
    out: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
    for name in BOOLEAN_FIELDS:
        if name in out:
            out[name] = str(out[name]).lower() == "true"
    return out


def _remembered(bulk: Bulk2, memory: BulkJobMemory | None, key: str, progress: BulkProgress) -> dict[str, Any] | None:
    """The query job a previous run left for this read, if it is still usable; otherwise forget (and abort) it."""
    job = memory.get() if memory is not None else None
    if not job or job.get("kind") != "query":
        return None
    info = bulk.job("query", job["id"])
    usable = info is not None and info.get("state") not in ("Failed", "Aborted") and job.get("key") == key
    if info is not None and not usable and info.get("state") not in FINAL_STATES:
        bulk.abort("query", job["id"])
    if not usable:
        memory.clear()
        return None
    progress.resumed = True
    (progress.logger or log).info("bulk query job %s of a previous run found (%s); continuing with it", job["id"], info.get("state"))
    return info


# ---------------------------------------------------------------------------------------- writing


class BulkWriter:
    """Creates (upsert on the external id) and updates (by ``Id``) of many records as ingest jobs."""

    def __init__(self, bulk: Bulk2, mapping: Mapping) -> None:
        self.bulk = bulk
        self.mapping = mapping

    def settle(self, memory: BulkJobMemory, progress: BulkProgress) -> dict[str, Any] | None:
        """A job a previous run left: wait for it to end if it was uploaded, abort it if not; forget it.

        Its creates are then found by their idempotency keys (the exporter's intents) and its
        updates are sent again (they are not marked done), so nothing is lost or created twice.
        """
        job = memory.get()
        if not job:
            return None
        info = self.bulk.job("ingest", job["id"])
        if info is not None and info.get("state") == "Open":
            self.bulk.abort("ingest", job["id"])
            info = self.bulk.job("ingest", job["id"])
        elif info is not None and info.get("state") not in FINAL_STATES:
            progress.job_id, progress.resumed = job["id"], True
            info = self.bulk.wait("ingest", job["id"], progress)
        memory.clear()
        return info

    def write(self, entity: str, records: Sequence[OutgoingRecord], *, create: bool, memory: BulkJobMemory | None, progress: BulkProgress) -> WriteResult:
        """One ingest job per ~80 MB of CSV; per-record results as the collections writer gives them."""
        outcome = WriteResult()
        for chunk, data in self._csv_chunks(entity, records, create=create):
            ext = self.mapping.external_id_field
            info = self.bulk.create_ingest(SOBJECTS[entity], "upsert" if create else "update", ext if create else None)
            job_id = progress.job_id = str(info["id"])
            if memory is not None:
                memory.put({"id": job_id, "kind": "ingest", "operation": "upsert" if create else "update"})
            self.bulk.upload(job_id, data)
            self.bulk.close(job_id)
            final = self.bulk.wait("ingest", job_id, progress)
            if final.get("state") == "Failed" and BATCHES_SPENT in str(final.get("errorMessage") or ""):
                if memory is not None:
                    memory.clear()
                # Not the records' fault: nothing goes to the reject ledger. The job's creates are found
                # by their keys on the next run (as after a crash) and its updates are sent again.
                raise QuotaExhausted("salesforce", f"bulk ingest job {job_id} ran out of the org's daily batches (DailyBulkApiBatches) after "
                                     f"{final.get('numberRecordsProcessed', 0)} of {len(chunk)} records; the export stops here and sends the rest on a later run",
                                     category="BULK_BATCHES")
            self._collect(entity, chunk, final, create=create, outcome=outcome)
            if memory is not None:
                memory.clear()
        return outcome

    def _csv_chunks(self, entity: str, records: Sequence[OutgoingRecord], *, create: bool) -> Iterator[tuple[list[OutgoingRecord], bytes]]:
        fields = [m.remote for m in self.mapping.fields(entity)]
        key = self.mapping.external_id_field if create else "Id"
        header = [key, *fields]
        chunk: list[OutgoingRecord] = []
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for record in records:
            values = self.mapping.to_sobject(entity, record.fields, clear_missing=not create)
            row = [idempotency_key(entity, record.local_id) if create else record.external_id]
            row += [_cell(values.get(name), name in values) for name in fields]
            writer.writerow(row)
            chunk.append(record)
            if out.tell() >= UPLOAD_MAX_BYTES:
                yield chunk, out.getvalue().encode()
                chunk, out = [], io.StringIO()
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(header)
        if chunk:
            yield chunk, out.getvalue().encode()

    def _collect(self, entity: str, chunk: list[OutgoingRecord], final: dict[str, Any], *, create: bool, outcome: WriteResult) -> None:
        job_id = str(final["id"])
        ext = self.mapping.external_id_field
        if create:
            local_of = {idempotency_key(entity, r.local_id): r.local_id for r in chunk}
            key_of = lambda row: local_of.get(row.get(ext, ""))  # noqa: E731
        else:
            by_id = {r.external_id: r.local_id for r in chunk}
            key_of = lambda row: by_id.get(row.get("Id", ""))  # noqa: E731
        for row in self.bulk.ingest_results(job_id, "successfulResults"):
            local_id = key_of(row)
            if local_id is not None:
                outcome.written[local_id] = (row.get("sf__Id") or "", None, create and row.get("sf__Created") == "true")
        for row in self.bulk.ingest_results(job_id, "failedResults"):
            local_id = key_of(row)
            if local_id is not None:
                outcome.rejected[local_id] = _reason(row.get("sf__Error") or "")
        unprocessed = [key_of(row) for row in self.bulk.ingest_results(job_id, "unprocessedrecords")]
        reason = ("BULK_JOB_" + str(final.get("state")).upper(), str(final.get("errorMessage") or "the bulk job did not process this record"))
        for local_id in unprocessed:
            if local_id is not None and local_id not in outcome.written:
                outcome.rejected[local_id] = reason
        for record in chunk:  # a row the results do not mention was not processed either
            if record.local_id not in outcome.written and record.local_id not in outcome.rejected:
                outcome.rejected[record.local_id] = reason


def _cell(value: Any, present: bool) -> str:
    """An ingest CSV cell: ``#N/A`` clears a field (an update's emptied value), empty leaves it as it is."""
    if value is None:
        return "#N/A" if present else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reason(error: str) -> tuple[str, str]:
    """``REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --`` -> (code, message [fields])."""
    parts = [p.strip() for p in error.split(" --") if p.strip()]
    if not parts:
        return "BULK_ERROR", "rejected without a reason"
    code = parts[0].split(":", 1)[0]
    messages = []
    for part in parts:
        _, _, rest = part.partition(":")
        message, _, fields = rest.rpartition(":") if rest.count(":") else (rest, "", "")
        messages.append(message + (f" [{fields.replace(',', ', ')}]" if fields else ""))
    return code, "; ".join(messages)


__all__ = ["Bulk2", "BulkWriter", "bulk_read"]
