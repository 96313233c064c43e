"""The webhook receiver: a Starlette app that verifies each delivery and stores it in the inbox.

A delivery is answered 200 only after its events are committed to the ``webhooks`` table, so a
provider that got a 200 never needs to redeliver; a delivery that fails verification (401), has
a stale timestamp or an unreadable body (400) stores nothing; a body over the size limit is
answered 413 before the rest is read. A provider whose secret is not configured answers 503. One log line is written per rejected delivery, with the reason only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm_pipelines.jobs.api import JobsApi
from crm_pipelines.jobs.service import JobService
from crm_pipelines.webhooks import signatures
from crm_pipelines.webhooks.applier import WebhookApplier
from crm_pipelines.webhooks.inbox import GroupCommitWriter, WebhookInbox
from crm_pipelines.webhooks.parsing import MalformedDelivery, parse_delivery
from crm_pipelines.webhooks.signatures import SignatureError, StaleTimestampError

log = logging.getLogger("crm_pipelines.webhooks")

#: Largest delivery body read (HubSpot sends up to 100 small events; a Shopify order is tens of KB).
MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, repr=False)
class WebhookSecrets:
    """Per-provider verification secrets, plus the public base URL HubSpot v3 signs against."""

    hubspot_client_secret: str | None = None
    shopify_webhook_secret: str | None = None
    pipedrive_user: str | None = None
    pipedrive_password: str | None = None
    bling_client_secret: str | None = None
    public_url: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "WebhookSecrets":
        """Read ``HUBSPOT_CLIENT_SECRET``, ``SHOPIFY_WEBHOOK_SECRET``, ``PIPEDRIVE_WEBHOOK_USER``,
        ``PIPEDRIVE_WEBHOOK_PASSWORD``, ``BLING_CLIENT_SECRET`` and ``WEBHOOK_PUBLIC_URL``."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(name) or None

        return cls(
            hubspot_client_secret=get("HUBSPOT_CLIENT_SECRET"),
            shopify_webhook_secret=get("SHOPIFY_WEBHOOK_SECRET"),
            pipedrive_user=get("PIPEDRIVE_WEBHOOK_USER"),
            pipedrive_password=get("PIPEDRIVE_WEBHOOK_PASSWORD"),
            bling_client_secret=get("BLING_CLIENT_SECRET"),
            public_url=get("WEBHOOK_PUBLIC_URL"),
        )

    def __repr__(self) -> str:
        configured = [name for name in ("hubspot", "shopify", "pipedrive", "bling") if self.configured(name)]
        return f"WebhookSecrets(configured={configured}, public_url={self.public_url!r})"

    def configured(self, provider: str) -> bool:
        """Whether the secret(s) of ``provider`` are set."""
        return {
            "hubspot": bool(self.hubspot_client_secret),
            "shopify": bool(self.shopify_webhook_secret),
            "pipedrive": bool(self.pipedrive_user and self.pipedrive_password),
            "bling": bool(self.bling_client_secret),
        }[provider]


MISSING_SECRET = {
    "hubspot": "HUBSPOT_CLIENT_SECRET",
    "shopify": "SHOPIFY_WEBHOOK_SECRET",
    "pipedrive": "PIPEDRIVE_WEBHOOK_USER and PIPEDRIVE_WEBHOOK_PASSWORD",
    "bling": "BLING_CLIENT_SECRET",
}


def _first(value: str | None) -> str | None:
    """The first entry of a possibly comma-separated forwarded header."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def request_uri(request: Request, public_url: str | None) -> str:
    """The full URL the provider called: the public base URL when set, else the forwarded
    scheme and host when present, else the request's own; path and query as received."""
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    path = raw_path.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    tail = path + (f"?{query}" if query else "")
    if public_url:
        return public_url.rstrip("/") + tail
    scheme = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
    host = _first(request.headers.get("x-forwarded-host")) or request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}{tail}"


def verify(provider: str, request: Request, body: bytes, secrets: WebhookSecrets) -> None:
    """Verify a delivery with its provider's scheme; raises ``SignatureError`` when it fails."""
    headers = request.headers
    if provider == "hubspot":
        assert secrets.hubspot_client_secret
        if "x-hubspot-signature-v3" in headers:
            signatures.verify_hubspot_v3(
                secrets.hubspot_client_secret,
                request.method,
                request_uri(request, secrets.public_url),
                body,
                headers.get("x-hubspot-signature-v3"),
                headers.get("x-hubspot-request-timestamp"),
            )
        else:
            signatures.verify_hubspot_v1(
                secrets.hubspot_client_secret, body, headers.get("x-hubspot-signature"), headers.get("x-hubspot-signature-version")
            )
    elif provider == "shopify":
        assert secrets.shopify_webhook_secret
        signatures.verify_shopify(secrets.shopify_webhook_secret, body, headers.get("x-shopify-hmac-sha256"))
    elif provider == "pipedrive":
        assert secrets.pipedrive_user and secrets.pipedrive_password
        signatures.verify_pipedrive(secrets.pipedrive_user, secrets.pipedrive_password, headers.get("authorization"))
    elif provider == "bling":
        assert secrets.bling_client_secret
        signatures.verify_bling(secrets.bling_client_secret, body, headers.get("x-bling-signature-256"))
    else:  # pragma: no cover - routes only exist for the providers above
        raise ValueError(provider)


def _reject(provider: str, request: Request, status: int, reason: str) -> JSONResponse:
    client = request.client.host if request.client else "-"
    log.warning("rejected %s webhook from %s: %d %s", provider, client, status, reason)
    return JSONResponse({"error": reason}, status_code=status)


class BodyTooLarge(Exception):
    """A delivery body over the receiver's limit (answered 413 without reading the rest)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read only while it stays within ``limit`` bytes (a declared length over it is refused before reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _receiver(provider: str, writer: GroupCommitWriter, secrets: WebhookSecrets, max_body_bytes: int,
              on_stored: Callable[[], None] | None = None) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def receive(request: Request) -> JSONResponse:
        started = time.perf_counter()
        if not secrets.configured(provider):
            return _reject(provider, request, 503, f"{provider} webhooks are not configured: set {MISSING_SECRET[provider]}")
        try:
            body = await read_body(request, max_body_bytes)
        except BodyTooLarge:
            response = _reject(provider, request, 413, f"body over the receiver's limit of {max_body_bytes} bytes")
            response.headers["Connection"] = "close"
            return response
        try:
            verify(provider, request, body, secrets)
        except StaleTimestampError as exc:
            return _reject(provider, request, 400, exc.reason)
        except SignatureError as exc:
            return _reject(provider, request, 401, exc.reason)
        try:
            events = parse_delivery(provider, body, request.headers)
        except MalformedDelivery as exc:
            return _reject(provider, request, 400, str(exc))
        except (ValueError, TypeError, RecursionError):  # anything else a signed but odd body trips on is still the sender's
            return _reject(provider, request, 400, "body is not a delivery this receiver can read")
        stored = await asyncio.wrap_future(writer.submit(provider, events, body))
        if stored and on_stored is not None:
            on_stored()
        # The receiver's own acknowledgement time (body read to commit), for monitoring.
        timing = f"ack;dur={(time.perf_counter() - started) * 1000:.2f}"
        return JSONResponse({"stored": stored, "duplicates": len(events) - stored}, headers={"Server-Timing": timing})

    receive.__name__ = f"receive_{provider}"
    return receive


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(engine: Engine, secrets: WebhookSecrets, *, jobs: JobService | None = None, api_token: str | None = None,
               applier: WebhookApplier | None = None, max_body_bytes: int | None = None) -> Starlette:
    """The receiver app writing to ``engine``'s ``webhooks`` table (which must already exist);
    with ``jobs``, the jobs API beside it (``/api/...``, see :mod:`crm_pipelines.jobs.api`); with
    ``applier``, the events are applied as they arrive (each commit wakes it).

    ``max_body_bytes`` (default ``WEBHOOK_MAX_BODY_BYTES``, 5 MiB): larger deliveries are answered
    413 without reading further.
    """
    max_body_bytes = max_body_bytes or int(os.environ.get("WEBHOOK_MAX_BODY_BYTES") or MAX_BODY_BYTES)
    inbox = WebhookInbox(engine)
    writer = GroupCommitWriter(inbox)
    routes = [Route("/healthz", healthz, methods=["GET"])]
    routes += [
        Route(f"/webhooks/{provider}", _receiver(provider, writer, secrets, max_body_bytes, applier.wake if applier else None), methods=["POST"])
        for provider in ("hubspot", "shopify", "pipedrive", "bling")
    ]
    if jobs is not None:
        routes += JobsApi(jobs, api_token).routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if jobs is not None:
            jobs.start_threads()
        if applier is not None:
            applier.start()
        yield
        writer.close()
        if applier is not None:
            applier.close()
        if jobs is not None:
            jobs.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.inbox = inbox
    app.state.secrets = secrets
    return app


def app_from_env(*, with_jobs: bool = False, with_applier: bool = False) -> Starlette:
    """The app on the project's database (``CRM_DATABASE_URL``), migrated, with secrets from the
    environment; usable as ``uvicorn --factory crm_pipelines.webhooks.app:app_from_env``.
    ``with_jobs`` adds the jobs API on the Dagster instance of ``DAGSTER_HOME``; ``with_applier``
    applies the events as they arrive, reported to that instance."""
    from crm_pipelines.storage.engine import make_engine
    from crm_pipelines.storage.migrate import upgrade

    # One writer thread keeps its connection busy; a broken connection fails that transaction,
    # whose deliveries are then retried one by one on a fresh connection, so no pre-ping per commit.
    engine = make_engine(pool_pre_ping=False)
    upgrade(engine)
    secrets = WebhookSecrets.from_env()
    for provider, names in MISSING_SECRET.items():
        if not secrets.configured(provider):
            log.warning("%s webhooks will answer 503: %s not set", provider, names)
    jobs = applier = None
    instance = None
    if with_jobs or with_applier:
        import dagster as dg

        instance = dg.DagsterInstance.get()
    if with_jobs:
        from crm_pipelines.jobs.service import service_from_env

        jobs = service_from_env(engine, instance)
    if with_applier:
        from crm_pipelines.storage.store import LocalStore

        applier = WebhookApplier(LocalStore(engine), instance=instance)
    return create_app(engine, secrets, jobs=jobs, applier=applier)
