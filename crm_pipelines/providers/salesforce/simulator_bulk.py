"""Salesforce Bulk API 2.0 on the simulator: query jobs and ingest jobs (PROVIDERS.md §10).

* Query: ``POST /jobs/query`` ``{"operation": "query"|"queryAll", "query": SOQL}`` -> ``UploadComplete``;
  ``GET /jobs/query/{id}`` -> ``InProgress`` until ``bulk_processing_s`` of simulated time have
  passed, then ``JobComplete`` with ``numberRecordsProcessed``; ``GET .../results?maxRecords=&locator=``
  answers CSV pages with ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (``null`` on the last
  page); ``PATCH {"state": "Aborted"}``, ``DELETE``, ``GET /jobs/query`` lists the org's jobs.
* Ingest: ``POST /jobs/ingest`` ``{"object", "operation": insert|update|upsert|delete|hardDelete,
  "externalIdFieldName"}`` -> ``Open``; ``PUT .../batches`` with CSV (header row = field names, at
  most ``bulk_upload_max_bytes``); ``PATCH {"state": "UploadComplete"}`` processes every row as
  sObject Collections would (same validation, per-row failures); ``successfulResults/``
  (``sf__Id``, ``sf__Created``), ``failedResults/`` (``sf__Id``, ``sf__Error``) and
  ``unprocessedrecords/`` once ``JobComplete``. A header naming an unknown field fails the job.

Daily allocations (rolling 24 hours, ``/limits``): ``DailyBulkV2QueryJobs`` (10,000 query jobs),
``DailyBulkV2QueryFileStorageMB`` (1 TB of query results) and ``DailyBulkApiBatches`` (15,000
batches, shared with Bulk API 1.0; an ingest job takes one per 10,000 rows it processes, query
jobs take none). Once spent, creating a query job answers 400
``[{"errorCode": "LIMIT_EXCEEDED", "message": "Max bulk v2 query jobs (10000) per 24 hrs has been
reached (10001)"}]`` or ``"Max bulk v2 query result size stored (1000000000) kb per 24 hrs has been
exceeded"`` (the messages real orgs answer [S]).

Choices where the reference is silent: results are the query's rows when the job was created, and
their size is counted then; empty CSV cells leave a field unset (``#N/A`` clears it); a result page
without ``maxRecords`` holds every remaining row. With no batch left, creating an ingest job answers
400 ``EXCEEDEDQUOTA`` "ExceededQuota : ApiBatchItems Limit exceeded." (Bulk API's code and message
for it); a job whose batches run out while it is processed processes the batches that fit and ends
``Failed`` with that message, its other rows in ``unprocessedrecords/``.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from typing import Any

from crm_pipelines.providers.salesforce.simulator_soql import format_datetime
from crm_pipelines.simulator.clock import utc_iso_ms
from crm_pipelines.simulator.ratelimit import SlidingWindowLimiter
from crm_pipelines.simulator.server import ApiError, Request, Response, api, json_loads

JOBS = "/services/data/v{version}/jobs/{kind:query|ingest}"
OPERATIONS = {"query": ("query", "queryAll"), "ingest": ("insert", "update", "upsert", "delete", "hardDelete")}
BATCHES_SPENT = "ExceededQuota : ApiBatchItems Limit exceeded."
DAY_S = 86_400


class BulkAllocations:
    """One org's rolling 24-hour Bulk API allocations: query jobs, query result storage (KB), batches."""

    def __init__(self, sim: Any) -> None:
        self.config = cfg = sim.config
        self.query_jobs, self.storage_kb, self.batches = self.limiters = tuple(
            SlidingWindowLimiter(lambda name=name: getattr(cfg, name), DAY_S, clock=sim.clock.timestamp, bucket_s=60)
            for name in ("bulk_query_jobs_per_day", "bulk_query_storage_kb_per_day", "bulk_batches_per_day"))

    def limits(self) -> dict[str, dict[str, int]]:
        """The three entries of ``/limits`` (storage in whole MB, as Salesforce reports it)."""
        cfg = self.config
        return {
            "DailyBulkApiBatches": {"Max": cfg.bulk_batches_per_day, "Remaining": self.batches.remaining()},
            "DailyBulkV2QueryFileStorageMB": {"Max": cfg.bulk_query_storage_kb_per_day // 1024, "Remaining": self.storage_kb.remaining() // 1024},
            "DailyBulkV2QueryJobs": {"Max": cfg.bulk_query_jobs_per_day, "Remaining": self.query_jobs.remaining()},
        }

    def start_query(self, result_bytes: int) -> None:
        """Count a new query job and the size of its results; refuse it once either allocation is spent."""
        cfg = self.config
        if self.storage_kb.remaining() <= 0:
            raise _bulk_error(400, "LIMIT_EXCEEDED", f"Max bulk v2 query result size stored ({cfg.bulk_query_storage_kb_per_day}) kb per 24 hrs has been exceeded")
        if not self.query_jobs.try_acquire().allowed:
            raise _bulk_error(400, "LIMIT_EXCEEDED", f"Max bulk v2 query jobs ({cfg.bulk_query_jobs_per_day}) per 24 hrs has been reached ({self.query_jobs.used() + 1})")
        self.storage_kb.try_acquire(weight=max(math.ceil(result_bytes / 1024), 1), force=True)

    def take_batches(self, rows: int) -> int:
        """Batches for ``rows`` rows, as many as are left: how many rows they cover."""
        size = self.config.bulk_batch_records
        wanted = math.ceil(rows / size)
        granted = min(wanted, self.batches.remaining())
        if granted:
            self.batches.try_acquire(weight=granted, force=True)
        return rows if granted == wanted else granted * size

    def add(self, query_jobs: int, storage_kb: int, batches: int) -> dict[str, dict[str, int]]:
        """Count use by other users of the org (now); the org's bulk entries of ``/limits``."""
        for limiter, units in zip(self.limiters, (query_jobs, storage_kb, batches)):
            if units > 0:
                limiter.try_acquire(weight=units, force=True)
        return self.limits()


class BulkJobs:
    """The Bulk API 2.0 routes, mixed into the Salesforce simulator (whose helpers they use)."""

    @api("POST", JOBS, name="POST /jobs/{kind}")
    def _bulk_create(self, request: Request) -> Response:
        kind, org, body = request.params["kind"], request.account, request.json() or {}
        operation = body.get("operation")
        if operation not in OPERATIONS[kind]:
            raise _bulk_error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        now = self.clock.now_ms()
        created = format_datetime(now)
        job = {"id": org.next_job_id(), "operation": operation, "createdById": "0055g00000SIMUSRAAA", "createdDate": created, "systemModstamp": created,
               "state": "Open" if kind == "ingest" else "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
               "apiVersion": float(request.params["version"]), "lineEnding": body.get("lineEnding", "LF"), "columnDelimiter": body.get("columnDelimiter", "COMMA")}
        internal: dict[str, Any] = {"kind": kind, "ready_ms": None, "processed": 0, "failed": 0, "data": [], "results": ([], [], [])}
        if kind == "query":
            store, query, rows = self._select(request, body.get("query"), operation == "queryAll")
            fields = [store.fields[n.lower()] for n in query.fields]
            internal["rows"] = [[f.name for f in fields]] + [[_cell(f.value(rec), f.kind) for f in fields] for rec in rows]
            org.bulk_allocations.start_query(sum(len(",".join(row)) + 1 for row in internal["rows"]))
            internal.update(ready_ms=now + int(self.config.bulk_processing_s * 1000), processed=len(rows))
            job["object"] = store.sobject
            org.bulk_query_jobs += 1
        else:
            if org.bulk_allocations.batches.remaining() <= 0:
                raise _bulk_error(400, "EXCEEDEDQUOTA", BATCHES_SPENT)
            store, ext = self._store(request, str(body.get("object") or "")), body.get("externalIdFieldName")
            f = store.field(str(ext or ""))
            if operation == "upsert" and (f is None or not (f.external_id or f.name == "Id")):
                raise _bulk_error(400, "INVALIDJOB", f"InvalidJob : External ID field {ext} is not an external id of {store.sobject}")
            job |= {"object": store.sobject, "externalIdFieldName": ext, "contentUrl": f"services/data/v{request.params['version']}/jobs/ingest/{job['id']}/batches"}
        org.jobs[job["id"]] = (job, internal)
        return Response.json(200, job)

    @api("GET", JOBS, name="GET /jobs/{kind}")
    def _bulk_list(self, request: Request) -> Response:
        jobs = [self._job_info(job, internal) for job, internal in request.account.jobs.values() if internal["kind"] == request.params["kind"]]
        return Response.json(200, {"done": True, "records": jobs, "nextRecordsUrl": None})

    @api("GET", JOBS + "/{job}", name="GET /jobs/{kind}/{id}")
    def _bulk_get(self, request: Request) -> Response:
        return Response.json(200, self._job_info(*self._job(request)))

    @api("DELETE", JOBS + "/{job}", name="DELETE /jobs/{kind}/{id}")
    def _bulk_delete(self, request: Request) -> Response:
        del request.account.jobs[self._job(request)[0]["id"]]
        return Response.empty(204)

    @api("PATCH", JOBS + "/{job}", name="PATCH /jobs/{kind}/{id}")
    def _bulk_state(self, request: Request) -> Response:
        job, internal = self._job(request)
        state = (request.json() or {}).get("state")
        if state == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
            job["state"] = "Aborted"
        elif state == "UploadComplete" and internal["kind"] == "ingest" and job["state"] == "Open":
            job["state"] = "UploadComplete"
            self._ingest(request, job, internal)
        else:
            raise _bulk_error(400, "INVALIDJOBSTATE", f"InvalidJobState : Invalid state transition from {job['state']} to {state}")
        return Response.json(200, dict(job))

    @api("PUT", "/services/data/v{version}/jobs/ingest/{job}/batches", name="PUT /jobs/ingest/{id}/batches")
    def _bulk_upload(self, request: Request) -> Response:
        job, internal = self._job(request, "ingest")
        if job["state"] != "Open":
            raise _bulk_error(400, "INVALIDJOBSTATE", f"InvalidJobState : Job {job['id']} is not open for data upload")
        if len(request.body) > self.config.bulk_upload_max_bytes:
            raise _bulk_error(400, "INVALIDBATCH", f"InvalidBatch : Upload exceeds {self.config.bulk_upload_max_bytes} bytes")
        rows = list(csv.reader(io.StringIO(request.body.decode("utf-8-sig"))))
        if internal["data"] and rows and rows[0] != internal["data"][0]:
            raise _bulk_error(400, "INVALIDBATCH", "InvalidBatch : Every upload of a job must have the same header row")
        internal["data"] += rows if not internal["data"] else rows[1:]
        return Response.empty(201)

    @api("GET", "/services/data/v{version}/jobs/query/{job}/results", name="GET /jobs/query/{id}/results", finished=("JobComplete",))
    @api("GET", "/services/data/v{version}/jobs/ingest/{job}/{which:successfulResults|failedResults|unprocessedrecords|unprocessedRecords}/?",
         name="GET /jobs/ingest/{id}/results", finished=("JobComplete", "Failed", "Aborted"))
    def _bulk_results(self, request: Request) -> Response:
        """A query job's CSV results, a page of ``maxRecords`` rows from ``locator`` (base64 of a row
        number; ``null`` on the last page); an ingest job's successful, failed or unprocessed rows."""
        job, internal = self._job(request, "ingest" if "which" in request.params else "query")
        if self._job_info(job, internal)["state"] not in request.route.meta["finished"]:
            raise _bulk_error(400, "INVALIDJOBSTATE", f"InvalidJobState : Job {job['id']} is not complete")
        if "which" in request.params:  # Salesforce documents ``unprocessedrecords``; simple-salesforce asks ``unprocessedRecords``
            which = ("successfulresults", "failedresults", "unprocessedrecords").index(request.params["which"].lower())
            return Response(200, {"Content-Type": "text/csv"}, _csv(internal["results"][which]))
        header, *rows = internal["rows"]
        locator = request.query_value("locator") or ""
        start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode() or 0) if locator else 0
        size = int(request.query_value("maxRecords") or len(rows) or 1)
        page, end = rows[start : start + size], start + size
        locator = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < len(rows) else "null"
        return Response(200, {"Content-Type": "text/csv", "Sforce-NumberOfRecords": str(len(page)), "Sforce-Locator": locator}, _csv([header, *page]))

    # ---- jobs --------------------------------------------------------------------------------

    def _job(self, request: Request, kind: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        found = request.account.jobs.get(request.params["job"])
        if found is None or found[1]["kind"] != (kind or request.params["kind"]):
            raise _bulk_error(404, "NOT_FOUND", "The requested resource does not exist")
        return found

    def _job_info(self, job: dict[str, Any], internal: dict[str, Any]) -> dict[str, Any]:
        """The job as ``GET`` shows it: ``InProgress`` until its processing time has passed."""
        processing = job["state"] == "UploadComplete" and internal["ready_ms"] is not None
        if processing and self.clock.now_ms() >= internal["ready_ms"]:
            job["state"], processing = "JobComplete", False
        info = job | {"state": "InProgress" if processing else job["state"], "jobType": "V2Query" if internal["kind"] == "query" else "V2Ingest",
                      "numberRecordsProcessed": internal["processed"], "retries": 0, "totalProcessingTime": 0}
        return info | ({"numberRecordsFailed": internal["failed"]} if internal["kind"] == "ingest" else {})

    def _ingest(self, request: Request, job: dict[str, Any], internal: dict[str, Any]) -> None:
        """Apply every uploaded row as sObject Collections would, one result row each."""
        store, operation = self._store(request, job["object"]), job["operation"]
        header, *rows = internal["data"] or [[]]
        internal["ready_ms"] = self.clock.now_ms() + int(self.config.bulk_processing_s * 1000)
        unknown = [name for name in header if store.field(name) is None]
        if unknown or (operation in ("update", "delete", "hardDelete") and "id" not in [h.lower() for h in header]):
            job.update(state="Failed", errorMessage=f"InvalidBatch : Field name not found : {(unknown or ['Id'])[0]}")
            internal["results"][2].extend([header, *rows])
            return
        covered = request.account.bulk_allocations.take_batches(len(rows))
        rows, unprocessed = rows[:covered], rows[covered:]
        done, failed = [["sf__Id", "sf__Created", *header]], [["sf__Id", "sf__Error", *header]]
        now = self.stamp()
        for row in rows:
            values = {name: (None if cell == "#N/A" else cell) for name, cell in zip(header, row) if cell != ""}
            try:
                typed = self._typed_values(store, values)
                rec, problems = self._target(store, operation, typed, typed.get(job["externalIdFieldName"]) if operation == "upsert" else values.get("Id", ""))
            except ApiError as exc:  # a value its field cannot hold: the row fails as the request would
                rec, problems = None, [{"statusCode": e.get("errorCode"), "message": e.get("message"), "fields": []} for e in json_loads(exc.response.body)]
            if problems:
                failed.append([rec.id if rec else values.get("Id", ""), "; ".join(f"{p['statusCode']}:{p['message']}:{','.join(p['fields'])} --" for p in problems), *row])
                continue
            created = rec is None
            if operation in ("delete", "hardDelete"):
                self.remove(store, rec, now, hard=operation == "hardDelete")
            else:
                rec = self.write(store, rec, typed, now)
            done.append([rec.id, "true" if created else "false", *row])
        internal["results"] = (done, failed, [header, *unprocessed])
        internal.update(processed=len(rows), failed=len(failed) - 1)
        if unprocessed:
            job.update(state="Failed", errorMessage=BATCHES_SPENT)


def _cell(value: Any, kind: str) -> str:
    """A CSV cell as Bulk API 2.0 writes it: empty for null, ISO datetimes with ``Z``, lower-case booleans."""
    if value is None:
        return ""
    if kind == "datetime":
        return utc_iso_ms(value)
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _bulk_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(Response.json(status, [{"errorCode": code, "message": message}]))
