"""Local Shopify Admin GraphQL simulator (customers, orders, companies) served over real HTTP.

Reproduces what a sync client meets at ``POST /admin/api/{version}/graphql.json``:

* auth by ``X-Shopify-Access-Token`` (401 ``{"errors":"[API] Invalid API key or access token
  ..."}`` otherwise), version in the path echoed in ``X-Shopify-API-Version``;
* the schema subset of :mod:`.sim_graphql` executed with graphql-core: connections with ``first``
  at most 250, keyset ``after`` cursors, ``pageInfo``, the search syntax in ``query``
  (``updated_at``, ``created_at``, ``id``, ``tag``, ``email``, ``name``, ``external_id``...),
  ``sortKey``/``reverse``; ``customersCount``/``ordersCount``/``companiesCount`` (``limit``
  default 10,000, ``precision`` AT_LEAST above it); ``nodes(ids:)`` (null for unknown or deleted
  ids); ``events`` with ``subject_type``/``action`` filters (deletions are ``destroy`` events);
* mutations with per-input ``userErrors`` and HTTP 200 (invalid or duplicate e-mail, invalid
  or duplicate phone, empty customer, order without line items, company without name, duplicate
  company ``externalId``, unknown ids); several aliased mutations in one request each succeed or
  fail on their own;
* cost-based throttling: a leaky bucket per shop (``bucket_size`` 2,000 restored at
  ``restore_rate`` 100 points/s; Plus 20,000 / 1,000), requested cost reserved before running and
  the unused part refunded, ``extensions.cost`` on every answer, ``THROTTLED`` when the requested
  cost exceeds what is available (HTTP 200, or 429 with ``throttled_http_status=429``: the
  status is unconfirmed), ``MAX_COST_EXCEEDED`` above 1,000 requested points;
* B2B: with ``b2b=False`` every company field answers ``ACCESS_DENIED``, as on a store without
  B2B (``b2b`` defaults to True so the demo shows all three entities);
* webhooks: every create, update and delete (through the API or the Python methods) is POSTed to
  ``webhook_url`` with ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the
  raw body with ``webhook_secret``), ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``,
  ``X-Shopify-Webhook-Id``, ``X-Shopify-Event-Id`` and ``X-Shopify-Triggered-At``; the body is the
  REST-shaped resource (``{"id": N}`` for deletions); failed deliveries are retried.

Timestamps have whole-second precision, as in the Admin API, so records changed within one
second share ``updatedAt``. Choices where the reference is silent: the error text for ``first``
above 250, the mutation cost covering the payload, and null objects costing nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError, execute, parse, validate

from crm_pipelines.providers.shopify.sim_graphql import parse_search, query_cost, schema
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.server import FaultConfig, Request, Response, Router, SimClock, SimulatorBase, json_dumps, json_loads, parse_datetime
from crm_pipelines.simulator.webhooks import WebhookEmitter

DEFAULT_TOKEN = "shpat_sim_shopify_token"
DEFAULT_SHOP = "loja-simulada"
KINDS = ("customers", "orders", "companies")
ALIASES = {"contacts": "customers", "deals": "orders", "customers": "customers", "orders": "orders", "companies": "companies"}
GID_TYPES = {"customers": "Customer", "orders": "Order", "companies": "Company"}
TYPE_KINDS = {v: k for k, v in GID_TYPES.items()}
SUBJECT_TYPES = {"customers": "CUSTOMER", "orders": "ORDER", "companies": "COMPANY"}
ID_BASES = {"customers": 7_400_000_000_000, "orders": 5_600_000_000_000, "companies": 1_200_000_000, "events": 98_000_000_000}
PAGE_MAX = 250
MAX_QUERY_COST = 1000
DAY_S = 86_400
AUTH_MESSAGE = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"
B2B_DENIED = (
    "Access denied for {field} field. Required access: `read_companies` access scope. "
    "Also: The shop must have B2B features (Shopify Plus) enabled."
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_VERSION_RE = re.compile(r"\d{4}-(01|04|07|10)|unstable")
FINANCIAL = ("PAID", "PAID", "PAID", "PENDING", "AUTHORIZED", "PARTIALLY_PAID", "REFUNDED")
FULFILLMENT = ("FULFILLED", "FULFILLED", "UNFULFILLED", "PARTIALLY_FULFILLED")
WEBHOOK_TOPICS = {
    ("customers", "create"): "customers/create", ("customers", "update"): "customers/update", ("customers", "destroy"): "customers/delete",
    ("orders", "create"): "orders/create", ("orders", "update"): "orders/updated", ("orders", "destroy"): "orders/delete",
    ("companies", "create"): "companies/create", ("companies", "update"): "companies/update", ("companies", "destroy"): "companies/delete",
}
#: Search fields answered from an index (exact, case-insensitive) instead of a scan.
INDEXED = {"customers": ("email", "tag", "phone"), "orders": ("tag",), "companies": ("external_id",)}
SEARCH_FIELDS = {
    "customers": frozenset({"updated_at", "created_at", "id", "tag", "email", "phone", "first_name", "last_name", "state"}),
    "orders": frozenset({"updated_at", "created_at", "processed_at", "id", "tag", "name", "email", "financial_status", "fulfillment_status"}),
    "companies": frozenset({"updated_at", "created_at", "id", "name", "external_id", "since_date"}),
    "events": frozenset({"created_at", "id", "subject_type", "action", "comments"}),
}


@dataclass
class ShopifySimConfig:
    """Everything the Shopify simulator can be told; every field has a working default.

    Data: ``seed``, ``customers``/``orders``/``companies`` counts, ``history_days`` before
    ``reference_time`` (``None`` = now), ``shop`` (the ``{shop}.myshopify.com`` name),
    ``currency`` (the shop's currency), ``b2b`` (companies available).

    Limits: ``bucket_size`` and ``restore_rate`` (cost points; Standard 2,000 / 100, Plus
    20,000 / 1,000 via ``plan="plus"``), ``max_query_cost`` (1,000), ``page_max`` (250),
    ``count_limit`` (10,000), ``throttled_http_status`` (200 or 429: unconfirmed which one the API
    sends), ``rate_limits_enabled``.

    Webhooks: ``webhook_url``, ``webhook_secret``, ``webhook_max_attempts``, ``webhook_retry_base_s``.
    """

    seed: int = 1
    customers: int = 100
    orders: int = 40
    companies: int = 20
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    shop: str = DEFAULT_SHOP
    currency: str = "BRL"
    b2b: bool = True

    plan: str = "standard"
    bucket_size: float | None = None
    restore_rate: float | None = None
    max_query_cost: int = MAX_QUERY_COST
    page_max: int = PAGE_MAX
    count_limit: int = 10_000
    throttled_http_status: int = 200
    rate_limits_enabled: bool = True
    faults: FaultConfig = field(default_factory=FaultConfig)

    webhook_url: str | None = None
    webhook_secret: str = "sim-shopify-app-secret"
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 0.5

    def limits(self) -> tuple[float, float]:
        """(bucket size, restore rate per second) for the plan, unless set explicitly."""
        plans = {"standard": (2000.0, 100.0), "advanced": (4000.0, 200.0), "plus": (20000.0, 1000.0), "enterprise": (40000.0, 2000.0)}
        size, rate = plans[self.plan]
        return (self.bucket_size or size, self.restore_rate or rate)

    def validate(self) -> None:
        for name in ("customers", "orders", "companies"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.plan not in ("standard", "advanced", "plus", "enterprise"):
            raise ValueError("plan must be standard, advanced, plus or enterprise")
        if self.throttled_http_status not in (200, 429):
            raise ValueError("throttled_http_status must be 200 or 429")
        if not self.tokens:
            raise ValueError("at least one token is required")
        self.faults.validate()


class CostBucket:
    """The shop's leaky bucket of cost points (real time, shared by every token of the app)."""

    def __init__(self, size: float, rate: float) -> None:
        self.size = size
        self.rate = rate
        self._available = size
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._at) * self.rate)
        self._at = now

    def take(self, cost: float) -> bool:
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + points)

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def reset(self) -> None:
        with self._lock:
            self._available = self.size
            self._at = time.monotonic()

    def status(self) -> dict[str, float]:
        return {"maximumAvailable": float(self.size), "currentlyAvailable": int(self.available()), "restoreRate": float(self.rate)}


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rest_time(seconds: float | None) -> str | None:
    """REST timestamps carry an offset (the shop's; UTC here)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).isoformat()


def _user_error(field: list[str] | None, message: str, code: str | None = None) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


def _normalize_phone(raw: str | None) -> str | None:
    """E.164 as Shopify stores it; local Brazilian numbers get +55. None when not a phone."""
    if raw is None:
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+"):
        return "+" + digits if 8 <= len(digits) <= 15 else None
    if 10 <= len(digits) <= 11:
        return "+55" + digits
    return None


class ShopifySimulator(SimulatorBase):
    """Shopify Admin GraphQL over real HTTP. See the module docstring and :class:`ShopifySimConfig`.

    Python-side API for tests in the same process: :meth:`records`, :meth:`count`,
    :meth:`create`, :meth:`modify`, :meth:`delete`, :meth:`events`, ``bucket``, plus ``clock``,
    ``faults``, ``stats``, :meth:`fail_next` and :meth:`reset_rate_limits` from the base class.
    Entities may be named the Shopify way (customers, orders, companies) or the canonical way
    (contacts, deals, companies).
    """

    provider = "shopify"
    server_name = "shopify-simulator"

    def __init__(self, config: ShopifySimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or ShopifySimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._lock = threading.RLock()
        self._tokens = frozenset(cfg.tokens)
        size, rate = cfg.limits()
        self.bucket = CostBucket(size, rate)
        self._mutation_rng = random.Random(f"{cfg.seed}-mutations")
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        reference = cfg.reference_time or clock.now()
        self.reference_s = int(reference.timestamp())
        self._data = {kind: FakeData(f"{cfg.seed}-{kind}") for kind in KINDS}
        self._rows: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._next_id = dict(ID_BASES)
        self._order_number = 1000
        self._events: list[dict[str, Any]] = []
        self.cost_totals = {"requested": 0, "actual": 0, "throttled": 0}
        self._warnings: list[dict[str, Any]] = []
        self._documents: dict[str, tuple[Any, list[Any]]] = {}
        self._index: dict[str, dict[str, dict[str, set[int]]]] = {kind: {name: {} for name in INDEXED[kind]} for kind in KINDS}
        self.webhooks: WebhookEmitter | None = None
        if cfg.webhook_url:
            self.webhooks = WebhookEmitter(
                cfg.webhook_url,
                sign=self._sign_delivery,
                build_body=self._delivery_bodies,
                batch_max=1,
                max_attempts=cfg.webhook_max_attempts,
                retry_base_s=cfg.webhook_retry_base_s,
            )
        self._seed()

    # ---- data -------------------------------------------------------------------------------

    def _allocate(self, kind: str) -> int:
        self._next_id[kind] += 1
        return self._next_id[kind]

    def _seed(self) -> None:
        cfg = self.config
        start = self.reference_s - int(cfg.history_days * DAY_S)
        for kind in KINDS:
            data = self._data[kind]
            rng = data.rng
            for _ in range(getattr(cfg, kind)):
                created = start + int(rng.random() * (self.reference_s - start + 1))
                updated = created + int(rng.random() * (self.reference_s - created + 1))
                row = self._generated(kind, data)
                row.update(id=self._allocate(kind), createdAt=created, updatedAt=updated)
                self._rows[kind][row["id"]] = row
                self._index_add(kind, row)

    def _generated(self, kind: str, data: FakeData) -> dict[str, Any]:
        rng = data.rng
        if kind == "customers":
            person = data.person()
            return {
                "firstName": person["first_name"], "lastName": person["last_name"], "email": person["email"],
                "phone": _normalize_phone(person["phone"]) if rng.random() < 0.5 else None,
                "note": None, "tags": ["vip"] if rng.random() < 0.1 else [], "state": "ENABLED" if rng.random() < 0.3 else "DISABLED",
                "company": person["company"], "city": person["city"], "country": person["country"],
            }
        if kind == "orders":
            deal = data.deal()
            self._order_number += 1
            financial, fulfillment = data.pick(FINANCIAL), data.pick(FULFILLMENT)
            return {
                "name": f"#{self._order_number}", "email": None, "note": deal["name"], "tags": [],
                "currency": self.config.currency, "total": deal["amount"] or "0.00",
                "financial": financial, "fulfillment": fulfillment, "closed": financial == "PAID" and fulfillment == "FULFILLED",
            }
        org = data.organization()
        return {"name": org["name"], "externalId": None, "note": None}

    def _render(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        gid = f"gid://shopify/{GID_TYPES[kind]}/{row['id']}"
        base = {"__typename": GID_TYPES[kind], "id": gid, "legacyResourceId": str(row["id"]), "createdAt": _iso(row["createdAt"]), "updatedAt": _iso(row["updatedAt"])}
        if kind == "customers":
            first, last = row["firstName"], row["lastName"]
            address = None
            if row.get("company") or row.get("city"):
                address = {"id": f"gid://shopify/MailingAddress/{row['id']}", "company": row.get("company"), "city": row.get("city"), "country": row.get("country"),
                           "address1": None, "province": None, "countryCodeV2": None, "zip": None, "phone": row["phone"], "firstName": first, "lastName": last}
            return base | {
                "firstName": first, "lastName": last,
                "displayName": " ".join(p for p in (first, last) if p) or row["email"] or row["phone"] or "",
                "email": row["email"], "phone": row["phone"],
                "defaultEmailAddress": {"emailAddress": row["email"]} if row["email"] else None,
                "defaultPhoneNumber": {"phoneNumber": row["phone"]} if row["phone"] else None,
                "state": row["state"], "tags": sorted(row["tags"]), "note": row["note"], "numberOfOrders": "0",
                "amountSpent": {"amount": "0.0", "currencyCode": self.config.currency}, "defaultAddress": address,
            }
        if kind == "orders":
            money = {"amount": row["total"], "currencyCode": row["currency"]}
            return base | {
                "name": row["name"], "email": row["email"], "note": row["note"], "tags": sorted(row["tags"]), "currencyCode": row["currency"],
                "totalPriceSet": {"shopMoney": money, "presentmentMoney": money},
                "displayFinancialStatus": row["financial"], "displayFulfillmentStatus": row["fulfillment"],
                "processedAt": _iso(row["createdAt"]), "closedAt": _iso(row["updatedAt"]) if row["closed"] else None, "cancelledAt": None,
            }
        return base | {"name": row["name"], "externalId": row["externalId"], "note": row["note"], "customerSince": _iso(row["createdAt"])}

    def _index_values(self, kind: str, row: dict[str, Any], name: str) -> list[str]:
        value = self._search_value(kind, row, name)
        values = value if isinstance(value, list) else [value]
        return [str(v).casefold() for v in values if v]

    def _index_add(self, kind: str, row: dict[str, Any]) -> None:
        for name, index in self._index[kind].items():
            for value in self._index_values(kind, row, name):
                index.setdefault(value, set()).add(row["id"])

    def _index_remove(self, kind: str, row: dict[str, Any]) -> None:
        for name, index in self._index[kind].items():
            for value in self._index_values(kind, row, name):
                ids = index.get(value)
                if ids is not None:
                    ids.discard(row["id"])
                    if not ids:
                        del index[value]

    def _candidates(self, kind: str, search: Any) -> Iterable[dict[str, Any]]:
        """Rows that may match: from the indexes when every OR group has an indexed equality term."""
        rows = self._rows[kind]
        if not search.groups:
            return rows.values()
        ids: set[int] = set()
        for group in search.groups:
            term = next((t for t in group if t.field in self._index[kind] and t.op == "=" and not t.negated and t.value != "*"), None)
            if term is None:
                return rows.values()
            ids |= self._index[kind][term.field].get(term.value.casefold(), set())
        return [rows[i] for i in sorted(ids)]

    def _search_value(self, kind: str, row: dict[str, Any], name: str) -> Any:
        if name == "":
            return [row.get("firstName"), row.get("lastName"), row.get("email"), row.get("name")]
        if name == "updated_at":
            return row["updatedAt"]
        if name in ("created_at", "processed_at", "since_date"):
            return row["createdAt"]
        if name == "id":
            return row["id"]
        if name == "tag":
            return row.get("tags", [])
        if kind == "customers":
            return {"email": row["email"], "phone": row["phone"], "first_name": row["firstName"], "last_name": row["lastName"], "state": row["state"]}.get(name)
        if kind == "orders":
            return {"name": row["name"], "email": row["email"], "financial_status": row["financial"], "fulfillment_status": row["fulfillment"]}.get(name)
        return {"name": row["name"], "external_id": row["externalId"]}.get(name)

    # ---- changes and their side effects -------------------------------------------------------

    def _now_s(self) -> int:
        return int(self.clock.timestamp())

    def _changed(self, kind: str, row: dict[str, Any], action: str) -> None:
        """Record the event (deletions are what the events feed is read for) and send the webhook."""
        now = self._now_s()
        gid = f"gid://shopify/{GID_TYPES[kind]}/{row['id']}"
        self._events.append({
            "__typename": "BasicEvent", "id": f"gid://shopify/BasicEvent/{self._allocate('events')}", "action": action,
            "createdAt": now, "subjectId": gid, "subjectType": SUBJECT_TYPES[kind],
            "message": f"{GID_TYPES[kind]} {action}",
        })
        if self.webhooks is not None:
            body = {"id": row["id"]} if action == "destroy" else self._rest_payload(kind, row)
            self.webhooks.enqueue({"topic": WEBHOOK_TOPICS[(kind, action)], "body": body, "event_id": str(self._next_id["events"]), "at": now})

    def _rest_payload(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        base = {"id": row["id"], "created_at": _rest_time(row["createdAt"]), "updated_at": _rest_time(row["updatedAt"]),
                "admin_graphql_api_id": f"gid://shopify/{GID_TYPES[kind]}/{row['id']}"}
        if kind == "customers":
            return base | {"email": row["email"], "first_name": row["firstName"], "last_name": row["lastName"], "phone": row["phone"],
                           "state": row["state"].lower(), "tags": ", ".join(sorted(row["tags"])), "note": row["note"], "currency": self.config.currency,
                           "default_address": {"company": row.get("company"), "city": row.get("city"), "country": row.get("country")}}
        if kind == "orders":
            return base | {"name": row["name"], "email": row["email"], "currency": row["currency"], "total_price": row["total"],
                           "financial_status": row["financial"].lower(), "fulfillment_status": None if row["fulfillment"] == "UNFULFILLED" else row["fulfillment"].lower(),
                           "tags": ", ".join(sorted(row["tags"])), "note": row["note"]}
        return base | {"name": row["name"], "external_id": row["externalId"], "note": row["note"]}

    def _delivery_bodies(self, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
        out = []
        for event in events:
            out.append((json_dumps(event["body"]), {
                "X-Shopify-Topic": event["topic"],
                "X-Shopify-Shop-Domain": f"{self.config.shop}.myshopify.com",
                "X-Shopify-API-Version": "2026-10",
                "X-Shopify-Webhook-Id": event.setdefault("webhook_id", str(uuid.uuid4())),
                "X-Shopify-Event-Id": event["event_id"],
                "X-Shopify-Triggered-At": datetime.fromtimestamp(event["at"], tz=timezone.utc).isoformat().replace("+00:00", "Z"),
            }))
        return out

    def _sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        from crm_pipelines.webhooks.signatures import sign_shopify

        return {"X-Shopify-Hmac-Sha256": sign_shopify(self.config.webhook_secret, body)}

    # ---- routes -----------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        router.add("POST", r"/admin/api/(?P<version>[^/]+)/graphql\.json", self._graphql, name="POST /admin/api/{version}/graphql.json")

    def not_found_response(self, request: Request) -> Response:
        return Response.json(404, {"errors": "Not Found"})

    def method_not_allowed_response(self, request: Request) -> Response:
        return Response.json(406, {"errors": "Not Acceptable"})

    def internal_error_response(self, request: Request) -> Response:
        return Response.json(500, {"errors": "Internal Server Error"})

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return Response.json(429, self._throttled_body(0), {"Retry-After": "1.0"})
        phrases = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return Response.json(status, {"errors": phrases.get(status, f"HTTP {status}")})

    def _throttled_body(self, requested: int) -> dict[str, Any]:
        return {
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOC}}],
            "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": self.bucket.status()}},
        }

    def _graphql(self, request: Request) -> Response:
        version = request.params["version"]
        if not _VERSION_RE.fullmatch(version):
            return Response.json(404, {"errors": "Not Found"})
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
        if (request.header("X-Shopify-Access-Token") or "").strip() not in self._tokens:
            return Response.json(401, {"errors": AUTH_MESSAGE}, headers)
        try:
            body = json_loads(request.body) if request.body.strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Response.json(400, {"errors": {"query": "Required parameter missing or invalid"}}, headers)
        variables = body.get("variables") or {}
        try:
            document, problems = self._parsed(body["query"])
        except GraphQLError as exc:
            return Response.json(200, {"errors": [exc.formatted]}, headers)
        if problems:
            return Response.json(200, {"errors": [p.formatted for p in problems]}, headers)
        operation_name = body.get("operationName")
        try:
            requested = query_cost(schema(), document, variables, operation_name)
        except (GraphQLError, TypeError, ValueError) as exc:
            return Response.json(200, {"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}, headers)
        cfg = self.config
        if requested > cfg.max_query_cost:
            return Response.json(200, {"errors": [{
                "message": f"Query cost is {requested}, which exceeds the single query max cost limit ({cfg.max_query_cost}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": cfg.max_query_cost}}]}, headers)
        if cfg.rate_limits_enabled and not self.bucket.take(requested):
            self.stats_recorder.record_rate_limited("THROTTLED")
            with self._lock:
                self.cost_totals["throttled"] += 1
            return Response.json(cfg.throttled_http_status, self._throttled_body(requested), headers)
        with self._lock:
            result = execute(schema(), document, root_value=_Root(self), variable_values=variables, operation_name=operation_name)
            actual = query_cost(schema(), document, variables, operation_name, result.data, actual=True)
            self.cost_totals["requested"] += requested
            self.cost_totals["actual"] += actual
        if cfg.rate_limits_enabled:
            self.bucket.refund(max(requested - actual, 0))
        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        payload["data"] = result.data
        extensions: dict[str, Any] = {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.bucket.status()}}
        if self._warnings:
            extensions["search"] = self._warnings
            self._warnings = []
        payload["extensions"] = extensions
        return Response.json(200, payload, headers)

    def _parsed(self, text: str) -> tuple[Any, list[Any]]:
        """Parsed and validated document, cached by text (clients repeat a few query shapes)."""
        cached = self._documents.get(text)
        if cached is None:
            document = parse(text)
            cached = (document, validate(schema(), document))
            if len(self._documents) >= 512:
                self._documents.clear()
            self._documents[text] = cached
        return cached

    # ---- resolvers (called under self._lock) --------------------------------------------------

    def connection(self, kind: str, info: Any, *, first=None, after=None, last=None, before=None, query=None, sortKey="ID", reverse=False) -> dict[str, Any]:
        if kind == "companies":
            self._require_b2b("companies")
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
        size = first if first is not None else last
        if size > self.config.page_max or size < 0:
            raise GraphQLError(f"The page size must be between 0 and {self.config.page_max}.", extensions={"code": "BAD_REQUEST"})
        search = parse_search(query, SEARCH_FIELDS[kind])
        if search.warnings:
            self._warnings.append({"path": [info.field_name], "query": query, "warnings": search.warnings})
        if kind == "events":
            rows = [e for e in self._events if search.matches(lambda name, e=e: self._event_value(e, name))]
            key = (lambda e: (e["createdAt"], _event_number(e))) if sortKey == "CREATED_AT" else (lambda e: (_event_number(e), _event_number(e)))
            render = lambda e: e | {"createdAt": _iso(e["createdAt"])}  # noqa: E731
            ident = _event_number
        else:
            rows = [r for r in self._candidates(kind, search) if search.matches(lambda name, r=r: self._search_value(kind, r, name))]
            key = _sort_key(sortKey)
            render = lambda r: self._render(kind, r)  # noqa: E731
            ident = lambda r: r["id"]  # noqa: E731
        descending = bool(reverse) != (last is not None and first is None)
        rows.sort(key=key, reverse=descending)
        cursor = after if first is not None else before
        if cursor:
            mark = _decode_cursor(cursor)
            rows = [r for r in rows if (_cursor_tuple(key(r)) < mark if descending else _cursor_tuple(key(r)) > mark)]
        page, more = rows[:size], len(rows) > size
        if last is not None and first is None:
            page.reverse()
        edges = [{"cursor": _encode_cursor(key(r), ident(r)), "node": render(r)} for r in page]
        return {
            "edges": edges,
            "nodes": [e["node"] for e in edges],
            "pageInfo": {
                "hasNextPage": more if first is not None else False,
                "hasPreviousPage": bool(cursor) if first is not None else more,
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    def _event_value(self, event: dict[str, Any], name: str) -> Any:
        if name == "created_at":
            return event["createdAt"]
        if name == "id":
            return _event_number(event)
        if name == "subject_type":
            return event["subjectType"]
        if name == "action":
            return event["action"]
        if name == "comments":
            return "true"
        return [event["message"]]

    def count(self, kind_or_entity: str, info: Any = None, *, query: str | None = None, limit: int | None = 10_000) -> Any:
        kind = ALIASES[kind_or_entity]
        if info is None:  # Python-side use by tests
            with self._lock:
                return len(self._rows[kind])
        if kind == "companies":
            self._require_b2b("companiesCount")
        search = parse_search(query, SEARCH_FIELDS[kind])
        total = sum(1 for r in self._candidates(kind, search) if search.matches(lambda name, r=r: self._search_value(kind, r, name)))
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    def node(self, gid: str) -> dict[str, Any] | None:
        match = re.fullmatch(r"gid://shopify/([A-Za-z]+)/(\d+)", gid or "")
        if match is None:
            raise GraphQLError(f"Invalid global id '{gid}'", extensions={"code": "argumentLiteralsIncompatible"})
        kind = TYPE_KINDS.get(match.group(1))
        if kind is None:
            return None
        if kind == "companies" and not self.config.b2b:
            return None
        row = self._rows[kind].get(int(match.group(2)))
        return self._render(kind, row) if row is not None else None

    def _require_b2b(self, field_name: str) -> None:
        if not self.config.b2b:
            raise GraphQLError(B2B_DENIED.format(field=field_name), extensions={"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes"})

    # ---- mutations ----------------------------------------------------------------------------

    def _customer_problems(self, values: Mapping[str, Any], exclude: int | None) -> list[dict[str, Any]]:
        errors = []
        email = values.get("email")
        if email is not None and email != "":
            if not _EMAIL_RE.match(email):
                errors.append(_user_error(["email"], "Email is invalid", "INVALID"))
            elif self._index["customers"]["email"].get(email.casefold(), set()) - {exclude}:
                errors.append(_user_error(["email"], "Email has already been taken", "TAKEN"))
        phone = values.get("phone")
        if phone is not None and phone != "":
            normalized = _normalize_phone(phone)
            if normalized is None:
                errors.append(_user_error(["phone"], "Phone is invalid", "INVALID"))
            elif self._index["customers"]["phone"].get(normalized.casefold(), set()) - {exclude}:
                errors.append(_user_error(["phone"], "Phone has already been taken", "TAKEN"))
        for tag in values.get("tags") or ():
            if len(tag) > 255:
                errors.append(_user_error(["tags"], "Tags is too long (maximum is 255 characters)", "TOO_LONG"))
        return errors

    def customer_write(self, values: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
        row = None
        if not create:
            row = self._row_by_gid("customers", values.get("id"))
            if row is None:
                return {"customer": None, "userErrors": [_user_error(["id"], "Customer does not exist", "INVALID")]}
        errors = self._customer_problems(values, row["id"] if row else None)
        merged = {k: (row or {}).get(k) for k in ("firstName", "lastName", "email", "phone")}
        merged.update({k: values[k] for k in ("firstName", "lastName", "email", "phone") if k in values})
        if not errors and not any(merged.values()):
            errors.append(_user_error(None, "A name, phone number, or email address must be present", "BLANK"))
        if errors:
            return {"customer": None, "userErrors": errors}
        now = self._now_s()
        if row is None:
            row = {"id": self._allocate("customers"), "createdAt": now, "note": None, "tags": [], "state": "DISABLED", "company": None, "city": None, "country": None,
                   "firstName": None, "lastName": None, "email": None, "phone": None}
            self._rows["customers"][row["id"]] = row
        else:
            self._index_remove("customers", row)
        for name in ("firstName", "lastName", "note"):
            if name in values:
                row[name] = values[name] or None
        if "email" in values:
            row["email"] = (values["email"] or "").lower() or None
        if "phone" in values:
            row["phone"] = _normalize_phone(values["phone"]) if values["phone"] else None
        if values.get("tags") is not None:
            row["tags"] = list(dict.fromkeys(t.strip() for t in values["tags"] if t.strip()))
        addresses = values.get("addresses")
        if addresses:
            first = addresses[0]
            row.update(company=first.get("company"), city=first.get("city"), country=first.get("countryCode"))
        row["updatedAt"] = now
        self._index_add("customers", row)
        self._changed("customers", row, "create" if create else "update")
        return {"customer": self._render("customers", row), "userErrors": []}

    def order_create(self, order: Mapping[str, Any]) -> dict[str, Any]:
        errors = []
        items = order.get("lineItems") or []
        if not items:
            errors.append(_user_error(["order", "lineItems"], "Line items must have at least one item", "INVALID"))
        total = Decimal("0")
        currency = order.get("currency") or self.config.currency
        for index, item in enumerate(items):
            money = ((item.get("priceSet") or {}).get("shopMoney") or {})
            try:
                total += Decimal(str(money.get("amount", "0"))) * int(item.get("quantity") or 0)
            except InvalidOperation:
                errors.append(_user_error(["order", "lineItems", str(index), "priceSet"], "Price is invalid", "INVALID"))
            if money.get("currencyCode") and money["currencyCode"] != currency:
                errors.append(_user_error(["order", "lineItems", str(index), "priceSet"], "Currency must match the order currency", "INVALID"))
        if order.get("email") and not _EMAIL_RE.match(order["email"]):
            errors.append(_user_error(["order", "email"], "Email is invalid", "INVALID"))
        if errors:
            return {"order": None, "userErrors": errors}
        now = self._now_s()
        self._order_number += 1
        row = {
            "id": self._allocate("orders"), "createdAt": now, "updatedAt": now, "name": order.get("name") or f"#{self._order_number}",
            "email": order.get("email"), "note": order.get("note"), "tags": list(order.get("tags") or []), "currency": currency,
            "total": format(total.quantize(Decimal("0.01")), "f"), "financial": order.get("financialStatus") or "PENDING",
            "fulfillment": "UNFULFILLED", "closed": bool(order.get("closedAt")),
        }
        self._rows["orders"][row["id"]] = row
        self._index_add("orders", row)
        self._changed("orders", row, "create")
        return {"order": self._render("orders", row), "userErrors": []}

    def order_update(self, values: Mapping[str, Any]) -> dict[str, Any]:
        row = self._row_by_gid("orders", values.get("id"))
        if row is None:
            return {"order": None, "userErrors": [_user_error(["id"], "Order does not exist", "NOT_FOUND")]}
        self._index_remove("orders", row)
        for name in ("email", "note"):
            if name in values:
                row[name] = values[name]
        if values.get("tags") is not None:
            row["tags"] = list(values["tags"])
        self._index_add("orders", row)
        row["updatedAt"] = self._now_s()
        self._changed("orders", row, "update")
        return {"order": self._render("orders", row), "userErrors": []}

    def company_write(self, values: Mapping[str, Any], company_id: str | None) -> dict[str, Any]:
        self._require_b2b("companyCreate" if company_id is None else "companyUpdate")
        row = None
        if company_id is not None:
            row = self._row_by_gid("companies", company_id)
            if row is None:
                return {"company": None, "userErrors": [_user_error(["companyId"], "Resource requested does not exist.", "RESOURCE_NOT_FOUND")]}
        errors = []
        if row is None and not (values.get("name") or "").strip():
            errors.append(_user_error(["input", "company", "name"], "Name can't be blank", "BLANK"))
        external = values.get("externalId")
        if external and self._index["companies"]["external_id"].get(external.casefold(), set()) - {row["id"] if row else None}:
            errors.append(_user_error(["input", "company", "externalId"], "External Id has already been taken", "TAKEN"))
        if errors:
            return {"company": None, "userErrors": errors}
        now = self._now_s()
        if row is None:
            row = {"id": self._allocate("companies"), "createdAt": now, "name": None, "externalId": None, "note": None}
            self._rows["companies"][row["id"]] = row
        self._index_remove("companies", row)
        for name in ("name", "externalId", "note"):
            if name in values:
                row[name] = values[name]
        self._index_add("companies", row)
        row["updatedAt"] = now
        self._changed("companies", row, "create" if company_id is None else "update")
        return {"company": self._render("companies", row), "userErrors": []}

    def delete_gid(self, kind: str, gid: str | None, key: str) -> dict[str, Any]:
        if kind == "companies":
            self._require_b2b("companyDelete")
        row = self._row_by_gid(kind, gid)
        if row is None:
            return {key: None, "userErrors": [_user_error(["id"], f"{GID_TYPES[kind]} does not exist", "NOT_FOUND")]}
        self._destroy(kind, row)
        return {key: gid, "userErrors": []}

    def _destroy(self, kind: str, row: dict[str, Any]) -> None:
        del self._rows[kind][row["id"]]
        self._index_remove(kind, row)
        self._changed(kind, row, "destroy")

    def _row_by_gid(self, kind: str, gid: Any) -> dict[str, Any] | None:
        match = re.fullmatch(rf"gid://shopify/{GID_TYPES[kind]}/(\d+)", str(gid or ""))
        return self._rows[kind].get(int(match.group(1))) if match else None

    # ---- Python-side API ----------------------------------------------------------------------

    def _kind(self, entity: str) -> str:
        kind = ALIASES.get(entity)
        if kind is None:
            raise ValueError(f"unknown entity {entity!r}; expected one of {sorted(ALIASES)}")
        return kind

    def records(self, entity: str) -> dict[str, dict[str, Any]]:
        """gid -> GraphQL-shaped record, for every live record."""
        kind = self._kind(entity)
        with self._lock:
            return {f"gid://shopify/{GID_TYPES[kind]}/{i}": self._render(kind, r) for i, r in self._rows[kind].items()}

    def create(self, entity: str, n: int = 1) -> list[str]:
        """Create ``n`` generated records stamped with the simulated now; returns their gids."""
        kind = self._kind(entity)
        with self._lock:
            now, out = self._now_s(), []
            for _ in range(n):
                row = self._generated(kind, self._data[kind])
                row.update(id=self._allocate(kind), createdAt=now, updatedAt=now)
                self._rows[kind][row["id"]] = row
                self._index_add(kind, row)
                self._changed(kind, row, "create")
                out.append(f"gid://shopify/{GID_TYPES[kind]}/{row['id']}")
            return out

    def modify(self, entity: str, n: int | None = None, ids: Iterable[str | int] | None = None) -> list[str]:
        """Change ``n`` seeded-random records (or ``ids``), all stamped with the current second."""
        kind = self._kind(entity)
        with self._lock:
            rows = self._pick(kind, n if ids is None else None, ids)
            now = self._now_s()
            for row in rows:
                if kind == "customers":
                    row["note"] = f"Atualizado {self._mutation_rng.randrange(10**6)} — situação revisada"
                    row["city"] = self._data[kind].location()[0]
                elif kind == "orders":
                    row["note"] = f"Observação {self._mutation_rng.randrange(10**6)}"
                    row["financial"] = self._mutation_rng.choice(FINANCIAL)
                else:
                    row["note"] = f"Revisão {self._mutation_rng.randrange(10**6)}"
                    row["name"] = self._data[kind].company_name()
                row["updatedAt"] = now
                self._changed(kind, row, "update")
            return [f"gid://shopify/{GID_TYPES[kind]}/{r['id']}" for r in rows]

    def delete(self, entity: str, target: int | Iterable[str | int]) -> list[str]:
        """Delete ``target`` gids/ids, or ``target`` seeded-random records when it is an int."""
        kind = self._kind(entity)
        with self._lock:
            rows = self._pick(kind, target if isinstance(target, int) else None, None if isinstance(target, int) else target)
            for row in rows:
                self._destroy(kind, row)
            return [f"gid://shopify/{GID_TYPES[kind]}/{r['id']}" for r in rows]

    def _pick(self, kind: str, n: int | None, ids: Iterable[str | int] | None) -> list[dict[str, Any]]:
        if ids is not None:
            rows = []
            for raw in ids:
                row = self._rows[kind].get(int(str(raw).rsplit("/", 1)[-1]))
                if row is None:
                    raise KeyError(f"{kind} {raw} does not exist")
                rows.append(row)
            return rows
        live = sorted(self._rows[kind])
        return [self._rows[kind][i] for i in self._mutation_rng.sample(live, min(n or 1, len(live)))]

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events if action is None or e["action"] == action]

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.apply_mutation(spec, check_entity=self._kind)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            counts = {kind: len(rows) for kind, rows in self._rows.items()}
        return {"objects": counts, "b2b": self.config.b2b, "throttle": self.bucket.status(), "cost": dict(self.cost_totals)}

    def reset_rate_limits(self) -> None:
        self.bucket.reset()

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.flush(timeout_s=5)
        super().stop()
        if self.webhooks is not None:
            self.webhooks.stop()

    # ---- command line -----------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--customers", type=int, default=1000)
        parser.add_argument("--orders", type=int, default=200)
        parser.add_argument("--companies", type=int, default=100)
        parser.add_argument("--history-days", type=float, default=30.0)
        parser.add_argument("--reference-time", default=None, help="ISO-8601 instant the seeded data ends at")
        parser.add_argument("--plan", default="standard", choices=("standard", "advanced", "plus", "enterprise"), help="cost bucket and restore rate")
        parser.add_argument("--no-b2b", action="store_true", help="a store without B2B: companies answer ACCESS_DENIED")
        parser.add_argument("--throttled-status", type=int, default=200, choices=(200, 429), help="HTTP status of THROTTLED answers")
        parser.add_argument("--no-rate-limits", action="store_true")
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--webhook-secret", default="sim-shopify-app-secret")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> ShopifySimulator:
        config = ShopifySimConfig(
            seed=args.seed, customers=args.customers, orders=args.orders, companies=args.companies, history_days=args.history_days,
            reference_time=parse_datetime(args.reference_time) if args.reference_time else None,
            tokens=tuple(args.token) if args.token else (DEFAULT_TOKEN,), plan=args.plan, b2b=not args.no_b2b,
            throttled_http_status=args.throttled_status, rate_limits_enabled=not args.no_rate_limits, faults=args.faults,
            webhook_url=args.webhook_url, webhook_secret=args.webhook_secret,
        )
        return cls(config, host=args.host, port=args.port)


class _Root:
    """Root value for graphql-core: each query and mutation field is a method (info, **args)."""

    def __init__(self, sim: ShopifySimulator) -> None:
        self._sim = sim

    def customers(self, info, **args):
        return self._sim.connection("customers", info, **args)

    def orders(self, info, **args):
        return self._sim.connection("orders", info, **args)

    def companies(self, info, **args):
        return self._sim.connection("companies", info, **args)

    def events(self, info, **args):
        return self._sim.connection("events", info, **args)

    def customersCount(self, info, **args):  # noqa: N802 - GraphQL field name
        return self._sim.count("customers", info, **args)

    def ordersCount(self, info, **args):  # noqa: N802
        return self._sim.count("orders", info, **args)

    def companiesCount(self, info, **args):  # noqa: N802
        return self._sim.count("companies", info, **args)

    def customer(self, info, id):  # noqa: A002
        return self._typed(id, "Customer")

    def order(self, info, id):  # noqa: A002
        return self._typed(id, "Order")

    def company(self, info, id):  # noqa: A002
        self._sim._require_b2b("company")
        return self._typed(id, "Company")

    def _typed(self, gid, type_name):
        node = self._sim.node(gid)
        return node if node is not None and node["__typename"] == type_name else None

    def node(self, info, id):  # noqa: A002
        return self._sim.node(id)

    def nodes(self, info, ids):
        if len(ids) > PAGE_MAX:
            raise GraphQLError(f"The ids argument accepts at most {PAGE_MAX} ids.", extensions={"code": "BAD_REQUEST"})
        return [self._sim.node(i) for i in ids]

    def customerCreate(self, info, input):  # noqa: N802, A002
        return self._sim.customer_write(input, create=True)

    def customerUpdate(self, info, input):  # noqa: N802, A002
        return self._sim.customer_write(input, create=False)

    def customerDelete(self, info, input):  # noqa: N802, A002
        return self._sim.delete_gid("customers", input.get("id"), "deletedCustomerId")

    def orderCreate(self, info, order, options=None):  # noqa: N802
        return self._sim.order_create(order)

    def orderUpdate(self, info, input):  # noqa: N802, A002
        return self._sim.order_update(input)

    def orderDelete(self, info, orderId):  # noqa: N802, N803
        return self._sim.delete_gid("orders", orderId, "deletedId")

    def companyCreate(self, info, input):  # noqa: N802, A002
        return self._sim.company_write(input.get("company") or {}, None)

    def companyUpdate(self, info, companyId, input):  # noqa: N802, N803, A002
        return self._sim.company_write(input, companyId)

    def companyDelete(self, info, id):  # noqa: N802, A002
        return self._sim.delete_gid("companies", id, "deletedCompanyId")


def _event_number(event: dict[str, Any]) -> int:
    return int(event["id"].rsplit("/", 1)[-1])


def _sort_key(sort_key: str):
    if sort_key == "UPDATED_AT":
        return lambda r: (r["updatedAt"], r["id"])
    if sort_key in ("CREATED_AT", "PROCESSED_AT", "SINCE_DATE"):
        return lambda r: (r["createdAt"], r["id"])
    if sort_key == "NAME":
        return lambda r: ((r.get("name") or r.get("lastName") or "").casefold(), r["id"])
    return lambda r: (r["id"], r["id"])


def _cursor_tuple(key: tuple) -> tuple:
    return tuple(key)


def _encode_cursor(key: tuple, ident: int) -> str:
    return base64.b64encode(json.dumps({"last_id": ident, "last_value": list(key)}, ensure_ascii=False).encode()).decode()


def _decode_cursor(cursor: str) -> tuple:
    try:
        value = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return tuple(value["last_value"])
    except (ValueError, KeyError, TypeError):
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from None


__all__ = ["DEFAULT_TOKEN", "ShopifySimConfig", "ShopifySimulator"]
