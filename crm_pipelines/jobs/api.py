"""The jobs API: applications start, read, list and cancel syncs and exports over HTTP.

Every route under ``/api`` but the OpenAPI document asks for ``Authorization: Bearer <token>``
with the token in ``CRM_API_TOKEN`` (compared in constant time); without a configured token the
routes answer 503. Starting a job answers 202 with the job (``queued``) at once; the run is
launched behind it. The document is served at ``/api/openapi.json``.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.jobs.model import FINISHED, KINDS, STATES
from crm_pipelines.jobs.service import JobRequest, JobService
from crm_pipelines.jobs.store import JobNotFound
from crm_pipelines.providers.registry import PROVIDERS

TOKEN_ENV = "CRM_API_TOKEN"
Provider = Literal[tuple(PROVIDERS)]  # type: ignore[valid-type]
Entity = Literal["contacts", "companies", "deals"]


def Key() -> Any:  # noqa: N802 - reads as a type in the models below
    return Field(default=None, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class StartJob(BaseModel):
    """A sync (import), backfill or export of one integration: every entity, or one."""

    model_config = ConfigDict(extra="forbid", strict=True)
    provider: Provider  # type: ignore[valid-type]
    kind: Literal["sync", "export", "backfill"] = "sync"
    store: str | None = Key()
    integration: str | None = Key()
    entity: Entity | None = None
    full: bool = Field(default=False, description="Read every record again (a first sync always does).")
    window_start: datetime | None = Field(default=None, description="Backfill: re-read the changes from here.")
    window_end: datetime | None = Field(default=None, description="Backfill: up to here (default now).")
    batch_size: int | None = Field(default=None, ge=1, le=100, description="Export: records per bulk write.")
    only_new: bool = Field(default=False, description="Export: only records never exported.")
    dry_run: bool = Field(default=False, description="Export: report what would be sent, send nothing.")
    callback_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$", description="POSTed the job when it finishes.")
    notify: bool = Field(default=False, description="Send 'job finished' to the alert channels.")


class SyncIds(BaseModel):
    """Read records by provider id now and apply them."""

    model_config = ConfigDict(extra="forbid", strict=True)
    provider: Provider  # type: ignore[valid-type]
    entity: Entity
    ids: list[str] = Field(min_length=1, max_length=1000)
    store: str | None = Key()
    integration: str | None = Key()
    callback_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")
    notify: bool = False


class JobQuery(BaseModel):
    """The filters of ``GET /api/jobs`` (an unknown one is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    state: Literal[STATES] | None = None  # type: ignore[valid-type]
    provider: Provider | None = None  # type: ignore[valid-type]
    kind: Literal[KINDS] | None = None  # type: ignore[valid-type]
    integration: str | None = Key()
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, le=2**62)


class JobOut(BaseModel):
    """A job as it stands: state, progress (percent of the entities read, ETA in seconds), figures, error."""

    id: int
    kind: Literal[KINDS]  # type: ignore[valid-type]
    state: Literal[STATES]  # type: ignore[valid-type]
    provider: str
    integration_key: str | None
    integration_id: int | None
    store_id: int | None
    entity: str | None
    trigger: str
    params: dict[str, Any]
    processed: int
    total: int | None
    total_is_estimate: bool
    percent: float | None
    eta_s: float | None
    created: int
    updated: int
    rejected: int
    entities: dict[str, Any]
    error: str | None = Field(description="Why the job failed, in the provider's words (e.g. its 401 message).")
    run_id: str | None = Field(description="The Dagster run doing the work.")
    callback_url: str | None
    notify: bool
    cancel_requested: bool
    created_at: str | None
    started_at: str | None
    updated_at: str | None
    finished_at: str | None
    notified_at: str | None


class JobList(BaseModel):
    jobs: list[JobOut]


class Problem(BaseModel):
    error: str


def _schema_components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for model in (StartJob, SyncIds, JobOut, JobList, Problem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _answers(ok: int, body: str, *extra: int) -> dict[str, Any]:
    texts = {400: "Invalid request", 401: "Missing or wrong token", 404: "No such job, store or integration",
             409: "The integration is disabled", 503: "API token not configured"}
    out = {str(ok): {"description": "OK", "content": _json(body)}}
    for status in (401, 503, *extra):
        out[str(status)] = {"description": texts[status], "content": _json("Problem")}
    return out


def openapi_document() -> dict[str, Any]:
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}
    key = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    query = [
        {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATES)}},
        {"name": "provider", "in": "query", "schema": {"type": "string", "enum": list(PROVIDERS)}},
        {"name": "integration", "in": "query", "schema": key},
        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}},
    ]
    body = lambda ref: {"required": True, "content": _json(ref)}  # noqa: E731
    return {
        "openapi": "3.0.3",
        "info": {"title": "crm_pipelines jobs", "version": "1", "description": __doc__.strip()},
        "components": {"schemas": _schema_components(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/api/jobs": {
                "post": {"operationId": "startJob", "summary": "Start a sync, backfill or export", "requestBody": body("StartJob"),
                         "responses": _answers(202, "JobOut", 400, 404, 409)},
                "get": {"operationId": "listJobs", "summary": "Jobs, newest first", "parameters": query, "responses": _answers(200, "JobList", 400)},
            },
            "/api/jobs/{job_id}": {
                "get": {"operationId": "getJob", "summary": "One job", "parameters": [job_id], "responses": _answers(200, "JobOut", 404)},
            },
            "/api/jobs/{job_id}/cancel": {
                "post": {"operationId": "cancelJob", "summary": "Cancel a job (its run is terminated between two batches)", "parameters": [job_id],
                         "responses": _answers(202, "JobOut", 404)},
            },
            "/api/sync-ids": {
                "post": {"operationId": "syncIds", "summary": "Sync records by provider id", "requestBody": body("SyncIds"),
                         "responses": _answers(202, "JobOut", 400, 404, 409)},
            },
        },
    }


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class JobsApi:
    """The routes, over a :class:`JobService`, with the token read once."""

    def __init__(self, service: JobService, token: str | None = None) -> None:
        self.service = service
        self.token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None
        self.document = openapi_document()

    def _denied(self, request: Request) -> JSONResponse | None:
        if not self.token:
            return _problem(503, f"the jobs API is off: set {TOKEN_ENV}")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return _problem(401, "missing or wrong bearer token")
        return None

    async def _body(self, request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            return _problem(400, _validation_message(exc))

    def _started(self, request: JobRequest) -> JSONResponse:
        try:
            job = self.service.start(request)
        except (ConfigurationError, LookupError) as exc:  # no such store or integration
            return _problem(404, _first_line(exc))
        except ValueError as exc:  # e.g. a disabled integration
            return _problem(409, _first_line(exc))
        return JSONResponse(job.to_dict(), status_code=202)

    async def start_job(self, request: Request) -> JSONResponse:
        denied = self._denied(request)
        if denied:
            return denied
        body = await self._body(request, StartJob)
        if isinstance(body, JSONResponse):
            return body
        values = body.model_dump()
        for name in ("window_start", "window_end"):
            if values[name] is not None:
                moment = values[name] if values[name].tzinfo else values[name].replace(tzinfo=timezone.utc)
                values[name] = moment.isoformat()
        return self._started(JobRequest(**values))

    async def sync_ids(self, request: Request) -> JSONResponse:
        denied = self._denied(request)
        if denied:
            return denied
        body = await self._body(request, SyncIds)
        if isinstance(body, JSONResponse):
            return body
        return self._started(JobRequest(kind="sync_ids", **body.model_dump()))

    def _one_job(self, request: Request, action: Any, status: int) -> JSONResponse:
        denied = self._denied(request)
        if denied:
            return denied
        raw = request.path_params["job_id"]
        try:
            if not (raw.isdigit() and len(raw) < 19):
                raise JobNotFound(raw)
            return JSONResponse(action(int(raw)).to_dict(), status_code=status)
        except JobNotFound:
            return _problem(404, f"no job {raw}")

    async def get_job(self, request: Request) -> JSONResponse:
        return self._one_job(request, self.service.get, 200)

    async def cancel_job(self, request: Request) -> JSONResponse:
        return self._one_job(request, self.service.cancel, 202)

    async def list_jobs(self, request: Request) -> JSONResponse:
        denied = self._denied(request)
        if denied:
            return denied
        try:
            query = JobQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            return _problem(400, _validation_message(exc))
        filters = {"state": query.state, "provider": query.provider, "kind": query.kind, "integration_key": query.integration,
                   "limit": query.limit, "before_id": query.before}
        return JSONResponse({"jobs": [job.to_dict() for job in self.service.list(**filters)]})

    async def jobs_collection(self, request: Request) -> JSONResponse:
        return await (self.start_job(request) if request.method == "POST" else self.list_jobs(request))

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(self.document)

    def routes(self) -> list[Route]:
        return [
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            # One route for both methods, so a 405 on /api/jobs lists both in its Allow header.
            Route("/api/jobs", self.jobs_collection, methods=["GET", "POST"]),
            Route("/api/jobs/{job_id}", self.get_job, methods=["GET"]),
            Route("/api/jobs/{job_id}/cancel", self.cancel_job, methods=["POST"]),
            Route("/api/sync-ids", self.sync_ids, methods=["POST"]),
        ]


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg')}"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


__all__ = ["FINISHED", "JobsApi", "TOKEN_ENV", "openapi_document"]
