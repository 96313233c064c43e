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

Each shop (account) has its own token(s), records, events and cost bucket; a request whose
``Host`` is another shop's ``{shop}.myshopify.com`` is refused, and webhooks carry the shop's
domain in ``X-Shopify-Shop-Domain``.

Bulk operations (queries and mutations with staged uploads): see :mod:`sim_bulk`; metafields
(custom fields: definitions, values on customers, orders and companies): see :mod:`sim_metafields`.

Timestamps have whole-second precision, as in the Admin API, so records changed within one
second share ``updatedAt``. Choices where the reference is silent: the error text for ``first``
above 250, the mutation cost covering the payload, and null objects costing nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from http import HTTPStatus
from typing import Any, ClassVar, Literal

from graphql import GraphQLError, execute, parse, validate

from crm_pipelines.providers.shopify import sim_metafields
from crm_pipelines.providers.shopify.api import API_VERSION, MAX_QUERY_COST, PAGE_MAX
from crm_pipelines.providers.shopify.sim_bulk import BulkOperations
from crm_pipelines.providers.shopify.sim_graphql import UserErrors, bad_request, connection, mutation, page_size, parse_search, query_cost, schema
from crm_pipelines.simulator.clock import utc_iso_s
from crm_pipelines.simulator.config import AccountSpec, SimConfig
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.formats import EMAIL_RE
from crm_pipelines.simulator.ratelimit import LeakyBucket
from crm_pipelines.simulator.server import Account, Request, Response, Simulator, api, json_dumps, json_loads
from crm_pipelines.simulator.store import Record, RecordStore

DEFAULT_TOKEN = "shpat_sim_shopify_token"
DEFAULT_SHOP = "loja-simulada"
ALIASES = {"contacts": "customers", "deals": "orders", "customers": "customers", "orders": "orders", "companies": "companies"}
AUTH_MESSAGE = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"
B2B_DENIED = (
    "Access denied for {field} field. Required access: `read_companies` access scope. "
    "Also: The shop must have B2B features (Shopify Plus) enabled."
)
_VERSION_RE = re.compile(r"\d{4}-(01|04|07|10)|unstable")
FINANCIAL = ("PAID", "PAID", "PAID", "PENDING", "AUTHORIZED", "PARTIALLY_PAID", "REFUNDED")
FULFILLMENT = ("FULFILLED", "FULFILLED", "UNFULFILLED", "PARTIALLY_FULFILLED")
EVENTS_BASE = 98_000_000_000


@dataclass(frozen=True)
class Kind:
    """One record type of the Admin API: its GraphQL type, first id, the search fields of its
    ``query`` argument (-> the value they read; ``indexed`` ones answered from an index, exact and
    case-insensitive) and the word of its update webhook topic."""

    type: str
    id_base: int
    search: Mapping[str, str]
    indexed: tuple[str, ...]
    updated_topic: str = "update"


_TIMES = {"updated_at": "updatedAt", "created_at": "createdAt", "id": "id"}
KINDS = {
    "customers": Kind("Customer", 7_400_000_000_000, _TIMES | {"tag": "tags", "email": "email", "phone": "phone", "first_name": "firstName",
                                                               "last_name": "lastName", "state": "state"}, ("email", "tag", "phone")),
    "orders": Kind("Order", 5_600_000_000_000, _TIMES | {"processed_at": "createdAt", "tag": "tags", "name": "name", "email": "email",
                                                         "financial_status": "financial", "fulfillment_status": "fulfillment"}, ("tag",), "updated"),
    "companies": Kind("Company", 1_200_000_000, _TIMES | {"since_date": "createdAt", "name": "name", "external_id": "externalId"}, ("external_id",)),
}
TYPE_KINDS = {kind.type: name for name, kind in KINDS.items()}
EVENT_SEARCH = {"created_at": "createdAt", "subject_type": "subjectType", "action": "action", "id": "", "comments": ""}
SEARCH_FIELDS = {name: frozenset(kind.search) for name, kind in KINDS.items()} | {"events": frozenset(EVENT_SEARCH)}
#: Sort keys -> the value records are ordered by (then by id); others (ID, RELEVANCE) by id.
SORT_VALUES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "UPDATED_AT": lambda row: row["updatedAt"], "CREATED_AT": lambda row: row["createdAt"], "PROCESSED_AT": lambda row: row["createdAt"],
    "SINCE_DATE": lambda row: row["createdAt"], "NAME": lambda row: (row.get("name") or row.get("lastName") or "").casefold(),
}
#: CustomerInput fields -> the value a customer record stores.
CUSTOMER_INPUT: dict[str, Callable[[Any], Any]] = {
    "firstName": lambda name: name or None, "lastName": lambda name: name or None, "email": lambda email: (email or "").lower() or None,
    "phone": lambda phone: _normalize_phone(phone) if phone else None, "note": lambda note: note or None,
}
PLANS = {"standard": (2000.0, 100.0), "advanced": (4000.0, 200.0), "plus": (20000.0, 1000.0), "enterprise": (40000.0, 2000.0)}
_iso = utc_iso_s


@dataclass
class ShopifySimConfig(SimConfig):
    """Everything the Shopify simulator can be told (shared settings in :class:`SimConfig`).

    Data: ``customers``/``orders``/``companies`` counts per shop; the default shop's ``tokens``
    and ``shop`` (the ``{shop}.myshopify.com`` name); ``currency`` (the shops' currency), ``b2b``
    (companies available).

    Limits: ``bucket_size`` and ``restore_rate`` (cost points; Standard 2,000 / 100, Plus
    20,000 / 1,000 via ``plan="plus"``), ``max_query_cost`` (1,000), ``page_max`` (250),
    ``count_limit`` (10,000), ``throttled_http_status`` (200 or 429: unconfirmed which one the API
    sends).

    Webhooks are signed with ``webhook_secret``.
    """

    COUNTS: ClassVar[tuple[str, ...]] = ("customers", "orders", "companies")

    customers: int = 100
    orders: int = 40
    companies: int = 20
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    shop: str = DEFAULT_SHOP
    currency: str = "BRL"
    b2b: bool = True

    plan: Literal["standard", "advanced", "plus", "enterprise"] = "standard"
    bucket_size: float | None = None
    restore_rate: float | None = None
    max_query_cost: int = MAX_QUERY_COST
    page_max: int = PAGE_MAX
    count_limit: int = 10_000
    throttled_http_status: Literal[200, 429] = 200
    bulk_processing_s: float = 0.0

    webhook_secret: str = "sim-shopify-app-secret"
    webhook_max_attempts: int = 8

    def limits(self) -> tuple[float, float]:
        """(bucket size, restore rate per second) for the plan, unless set explicitly."""
        size, rate = PLANS[self.plan]
        return (self.bucket_size or size, self.restore_rate or rate)

    def check(self) -> None:
        if not self.tokens:
            raise ValueError("at least one token is required")


def _rest_time(seconds: float) -> str:
    """REST timestamps carry an offset (the shop's; UTC here)."""
    return _iso(seconds).replace("Z", "+00:00")


def _normalize_phone(raw: str | None) -> str | None:
    """E.164 as Shopify stores it; local Brazilian numbers get +55. None when not a phone."""
    if raw is None:
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+"):
        return "+" + digits if 8 <= len(digits) <= 15 else None
    return "+55" + digits if 10 <= len(digits) <= 11 else None


def gid(kind: str, number: Any) -> str:
    return f"gid://shopify/{KINDS[kind].type}/{number}"


class Shop(Account):
    """A Shopify store: its records (values hold ``id``, ``createdAt`` and ``updatedAt`` in epoch
    seconds beside the fields), its events feed and its cost bucket. The GraphQL resolvers of one
    request (:class:`_Root`) read and write through it."""

    def __init__(self, sim: ShopifySimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec, host=f"{spec.id}.myshopify.com")
        self.sim = sim
        self.bucket = LeakyBucket(*sim.config.limits())
        self.limiters = (self.bucket,)
        self.cost_totals = {"requested": 0, "actual": 0, "throttled": 0}
        self.events: list[dict[str, Any]] = []
        self.event_numbers = itertools.count(EVENTS_BASE + 1)
        self.order_number = 1000
        self.bulk_ops: dict[str, Any] = {}  #: bulk operations by gid (see :mod:`sim_bulk`)
        self.staged: dict[str, bytes] = {}  #: staged uploads by key
        self.data = {name: FakeData(f"{self.seed}-{name}") for name in KINDS}
        self.stores = {name: RecordStore(name, first_id=kind.id_base + 1, indexed=kind.indexed,
                                         indexer=lambda rec, field, k=name: self.search_value(k, rec.values, field)) for name, kind in KINDS.items()}
        for name, store in self.stores.items():
            records = []
            for _ in range(self.count_of(sim, name)):
                created, updated = sim.seeded_history(self.data[name].rng)
                values = self.generated(name) | {"id": store.allocate_id(), "createdAt": created, "updatedAt": updated}
                records.append(Record(values["id"], created, updated, values))
            store.seed(records)

    def generated(self, kind: str) -> dict[str, Any]:
        data = self.data[kind]
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
            self.order_number += 1
            financial, fulfillment = data.pick(FINANCIAL), data.pick(FULFILLMENT)
            return {
                "name": f"#{self.order_number}", "email": None, "note": deal["name"], "tags": [],
                "currency": self.sim.config.currency, "total": deal["amount"] or "0.00",
                "financial": financial, "fulfillment": fulfillment, "closed": financial == "PAID" and fulfillment == "FULFILLED",
            }
        return {"name": data.organization()["name"], "externalId": None, "note": None}

    def render(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        base = {"__typename": KINDS[kind].type, "id": gid(kind, row["id"]), "legacyResourceId": str(row["id"]), "createdAt": _iso(row["createdAt"]),
                "updatedAt": _iso(row["updatedAt"]), "metafields": sim_metafields.render(kind, row["id"], row.get("metafields"))}
        if kind == "customers":
            first, last, email, phone = row["firstName"], row["lastName"], row["email"], row["phone"]
            address = None
            if row.get("company") or row.get("city"):
                address = {"id": f"gid://shopify/MailingAddress/{row['id']}", "company": row.get("company"), "city": row.get("city"), "country": row.get("country"),
                           "address1": None, "province": None, "countryCodeV2": None, "zip": None, "phone": phone, "firstName": first, "lastName": last}
            return base | {
                "firstName": first, "lastName": last, "displayName": " ".join(p for p in (first, last) if p) or email or phone or "",
                "email": email, "phone": phone, "defaultEmailAddress": {"emailAddress": email} if email else None,
                "defaultPhoneNumber": {"phoneNumber": phone} if phone else None, "state": row["state"], "tags": sorted(row["tags"]), "note": row["note"],
                "numberOfOrders": "0", "amountSpent": {"amount": "0.0", "currencyCode": self.sim.config.currency}, "defaultAddress": address,
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

    def candidates(self, kind: str, search: Any) -> Iterable[dict[str, Any]]:
        """Rows that may match: from the indexes when every OR group has an indexed equality term."""
        store, ids = self.stores[kind], set()
        for group in search.groups:
            term = next((t for t in group if t.field in KINDS[kind].indexed and t.op == "=" and not t.negated and t.value != "*"), None)
            if term is None:
                break
            ids.update(store.find_all(term.field, term.value))
        else:
            if search.groups:
                return [store.rows[i].values for i in sorted(ids)]
        return [r.values for r in store.select()]

    @staticmethod
    def search_value(kind: str, row: Mapping[str, Any], name: str) -> Any:
        if name == "":
            return [row.get("firstName"), row.get("lastName"), row.get("email"), row.get("name")]
        return row.get(KINDS[kind].search.get(name))

    def matching(self, kind: str, query: str | None) -> tuple[list[dict[str, Any]], Any]:
        """The rows (or events) a ``query`` argument selects, and the parsed search."""
        search = parse_search(query, SEARCH_FIELDS[kind])
        if kind == "events":
            return [e for e in self.events if search.matches(lambda name, e=e: _event_value(e, name))], search
        if not search.groups:
            return self.candidates(kind, search), search
        return [r for r in self.candidates(kind, search) if search.matches(lambda name, r=r: self.search_value(kind, r, name))], search

    def connection(self, warnings: list[dict[str, Any]], kind: str, info: Any, *, first=None, after=None, last=None, before=None, query=None, sortKey="ID",
                   reverse=False, bulk: bool = False) -> dict[str, Any]:
        """A connection page; a bulk operation reads the whole connection (no page size needed)."""
        first, size = page_size(first, last, self.sim.config.page_max, bulk)
        rows, search = self.matching(kind, query)
        if search.warnings:
            warnings.append({"path": [info.field_name], "query": query, "warnings": search.warnings})
        ident, value = _event_number if kind == "events" else itemgetter("id"), SORT_VALUES.get(sortKey)
        # A cursor holds (sort value, id); sorted by id, the sort value is the id itself.
        key = (lambda r: (value(r), ident(r))) if value else (lambda r: (ident(r), ident(r)))
        descending = bool(reverse) != (last is not None and first is None)
        if value:
            rows.sort(key=key, reverse=descending)
        elif descending:  # by id: rows and events come in id order
            rows.reverse()
        cursor = after if first is not None else before
        if cursor:
            mark = _decode_cursor(cursor)
            rows = [r for r in rows if (key(r) < mark if descending else key(r) > mark)]
        page, more = rows[:size], len(rows) > size
        if first is None:
            page.reverse()
        render = (lambda e: e | {"createdAt": _iso(e["createdAt"])}) if kind == "events" else (lambda r: self.render(kind, r))
        return connection(page, lambda r: _encode_cursor(key(r)), render, more if first is not None else False, bool(cursor) if first is not None else more)

    def count(self, kind: str, *, query: str | None = None, limit: int | None = 10_000) -> Any:
        total = len(self.matching(kind, query)[0])
        return {"count": limit, "precision": "AT_LEAST"} if limit is not None and total > limit else {"count": total, "precision": "EXACT"}

    def node(self, gid_: str) -> dict[str, Any] | None:
        match = re.fullmatch(r"gid://shopify/([A-Za-z]+)/(\d+)", gid_ or "")
        if match is None:
            raise GraphQLError(f"Invalid global id '{gid_}'", extensions={"code": "argumentLiteralsIncompatible"})
        if match.group(1) == "BulkOperation":
            return self.sim.bulk_node(self, gid_)
        kind = TYPE_KINDS.get(match.group(1))
        if kind is None or (kind == "companies" and not self.sim.config.b2b):
            return None
        row = self.stores[kind].get(int(match.group(2)))
        return self.render(kind, row.values) if row is not None else None

    def typed(self, gid_: str, type_name: str) -> dict[str, Any] | None:
        return node if (node := self.node(gid_)) is not None and node["__typename"] == type_name else None

    def nodes(self, ids: list[str]) -> list[dict[str, Any] | None]:
        if len(ids) > PAGE_MAX:
            raise bad_request(f"The ids argument accepts at most {PAGE_MAX} ids.")
        return [self.node(i) for i in ids]

    def require_b2b(self, field_name: str) -> None:
        if not self.sim.config.b2b:
            raise GraphQLError(B2B_DENIED.format(field=field_name), extensions={"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes"})

    def row(self, kind: str, gid_: Any, *missing: Any) -> Record | None:
        """The live record ``gid_`` names; when ``missing`` (a userError) is given, raise it for an unknown one."""
        match = re.fullmatch(rf"gid://shopify/{KINDS[kind].type}/(\d+)", str(gid_ or ""))
        record = self.stores[kind].get(int(match.group(1))) if match else None
        if record is None and missing:
            raise UserErrors(missing)
        return record

    def _taken(self, kind: str, name: str, value: str, exclude: Any) -> bool:
        return bool(set(self.stores[kind].find_all(name, value)) - {exclude})

    def _customer_problems(self, values: Mapping[str, Any], exclude: int | None) -> list[tuple]:
        problems = []
        for field, stored in (("email", lambda email: email if EMAIL_RE.match(email) else None), ("phone", _normalize_phone)):
            given = values.get(field)
            if given is None or given == "":
                continue
            if stored(given) is None:
                problems.append(([field], f"{field.capitalize()} is invalid", "INVALID"))
            elif self._taken("customers", field, stored(given), exclude):
                problems.append(([field], f"{field.capitalize()} has already been taken", "TAKEN"))
        return problems + [(["tags"], "Tags is too long (maximum is 255 characters)", "TOO_LONG") for tag in values.get("tags") or () if len(tag) > 255]

    def customer_write(self, values: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
        rec = None if create else self.row("customers", values.get("id"), ["id"], "Customer does not exist", "INVALID")
        current = rec.values if rec else {}
        problems = self._customer_problems(values, rec.id if rec else None)
        custom, custom_problems = sim_metafields.apply("customers", current.get("metafields"), values.get("metafields"))
        merged = {k: values[k] if k in values else current.get(k) for k in ("firstName", "lastName", "email", "phone")}
        if not problems + custom_problems and not any(merged.values()):
            problems.append((None, "A name, phone number, or email address must be present", "BLANK"))
        if problems + custom_problems:
            raise UserErrors(*problems, *custom_problems)
        changes = {} if rec else dict.fromkeys(("note", "company", "city", "country", *CUSTOMER_INPUT)) | {"tags": [], "state": "DISABLED"}
        changes |= {name: stored(values[name]) for name, stored in CUSTOMER_INPUT.items() if name in values}
        if values.get("tags") is not None:
            changes["tags"] = list(dict.fromkeys(t.strip() for t in values["tags"] if t.strip()))
        if values.get("addresses"):
            first = values["addresses"][0]
            changes.update(company=first.get("company"), city=first.get("city"), country=first.get("countryCode"))
        if values.get("metafields"):
            changes["metafields"] = custom
        return self.saved("customers", rec, changes)

    def saved(self, kind: str, record: Record | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Create (``record`` None) or change a record; the object the payload answers."""
        return self.render(kind, self.sim.write(self.stores[kind], record, changes, self.sim.stamp()).values)

    def order_create(self, order: Mapping[str, Any]) -> dict[str, Any]:
        items, problems = order.get("lineItems") or [], []
        if not items:
            problems.append((["order", "lineItems"], "Line items must have at least one item", "INVALID"))
        total = Decimal("0")
        currency = order.get("currency") or self.sim.config.currency
        for index, item in enumerate(items):
            money = ((item.get("priceSet") or {}).get("shopMoney") or {})
            try:
                total += Decimal(str(money.get("amount", "0"))) * int(item.get("quantity") or 0)
            except InvalidOperation:
                problems.append((["order", "lineItems", str(index), "priceSet"], "Price is invalid", "INVALID"))
            if money.get("currencyCode") and money["currencyCode"] != currency:
                problems.append((["order", "lineItems", str(index), "priceSet"], "Currency must match the order currency", "INVALID"))
        if order.get("email") and not EMAIL_RE.match(order["email"]):
            problems.append((["order", "email"], "Email is invalid", "INVALID"))
        custom, custom_problems = sim_metafields.apply("orders", None, order.get("metafields"))
        if problems or custom_problems:
            raise UserErrors(*problems, *((["order", *field], message, code) for field, message, code in custom_problems))
        self.order_number += 1
        return self.saved("orders", None, {
            "name": order.get("name") or f"#{self.order_number}", "email": order.get("email"), "note": order.get("note"),
            "tags": list(order.get("tags") or []), "currency": currency, "total": format(total.quantize(Decimal("0.01")), "f"),
            "financial": order.get("financialStatus") or "PENDING", "fulfillment": "UNFULFILLED", "closed": bool(order.get("closedAt")), "metafields": custom,
        })

    def order_update(self, values: Mapping[str, Any]) -> dict[str, Any]:
        rec = self.row("orders", values.get("id"), ["id"], "Order does not exist", "NOT_FOUND")
        changes = {name: values[name] for name in ("email", "note") if name in values}
        if values.get("tags") is not None:
            changes["tags"] = list(values["tags"])
        return self.saved("orders", rec, changes)

    def company_write(self, values: Mapping[str, Any], company_id: str | None) -> dict[str, Any]:
        rec = None if company_id is None else self.row("companies", company_id, ["companyId"], "Resource requested does not exist.", "RESOURCE_NOT_FOUND")
        problems = []
        if rec is None and not (values.get("name") or "").strip():
            problems.append((["input", "company", "name"], "Name can't be blank", "BLANK"))
        external = values.get("externalId")
        if external and self._taken("companies", "external_id", external, rec.id if rec else None):
            problems.append((["input", "company", "externalId"], "External Id has already been taken", "TAKEN"))
        if problems:
            raise UserErrors(*problems)
        changes = ({} if rec else {"name": None, "externalId": None, "note": None}) | {n: values[n] for n in ("name", "externalId", "note") if n in values}
        return self.saved("companies", rec, changes)

    def delete_gid(self, kind: str, gid_: str | None) -> str | None:
        self.sim.remove(self.stores[kind], self.row(kind, gid_, ["id"], f"{KINDS[kind].type} does not exist", "NOT_FOUND"))
        return gid_


class ShopifySimulator(BulkOperations, Simulator):
    """Shopify Admin GraphQL over real HTTP. See the module docstring and :class:`ShopifySimConfig`.

    Python-side helpers for tests (``account=`` names another shop): :meth:`records`,
    :meth:`count`, :meth:`create`, :meth:`modify`, :meth:`delete`, :meth:`events`, ``bucket``.
    Entities may be named the Shopify way (customers, orders, companies) or the canonical way
    (contacts, deals, companies).
    """

    provider = "shopify"
    server_name = "shopify-simulator"
    config_class = ShopifySimConfig
    ANSWERS = {
        "unauthorized": (401, AUTH_MESSAGE), "not_found": (404, "Not Found"), "method_not_allowed": (406, "Not Acceptable"),
        "internal_error": (500, "Internal Server Error"), "invalid_json": (400, "Bad Request"),
    }
    account_class = Shop
    config: ShopifySimConfig
    account_hosts = (".myshopify.com",)
    ENTITIES = ALIASES
    CLI_DEFAULTS = {"customers": 1000, "orders": 200, "companies": 100}
    CLI_ALIASES = {"--throttled-status": "--throttled-http-status"}
    stamps_per_second = 1

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec(self.config.shop, self.config.tokens)

    @property
    def bucket(self) -> LeakyBucket:
        """The default shop's cost bucket."""
        return self.account().bucket

    def stamp(self) -> int:
        return int(self.clock.timestamp())

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        if record is None:
            record_id = store.allocate_id()
            return store.insert({**values, "id": record_id, "createdAt": stamp, "updatedAt": stamp}, stamp, record_id=record_id)
        store.update(record, {**values, "updatedAt": stamp}, stamp)
        return record

    def remove(self, store: RecordStore, record: Record) -> None:
        store.delete(record, self.stamp(), hard=True)

    def unauthorized_response(self, request: Request) -> Response:
        return Response.json(401, {"errors": AUTH_MESSAGE}, _headers(request))

    def error_response(self, status: int, message: str) -> Response:
        return Response.json(status, {"errors": message})

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return Response.json(429, _throttled_body(self.account(), 0), {"Retry-After": "1.0"})
        return Response.json(status, {"errors": HTTPStatus(status).phrase if status in (500, 502, 503, 504) else f"HTTP {status}"})

    def credentials(self, request: Request) -> str | None:
        return (request.header("X-Shopify-Access-Token") or "").strip() or None

    def authenticate(self, request: Request) -> Shop | Response | None:
        if not _VERSION_RE.fullmatch(request.params.get("version", "")):
            return self.not_found_response(request)
        return super().authenticate(request)

    @api("POST", "/admin/api/{version}/graphql.json")
    def _graphql(self, request: Request) -> Response:
        shop, headers, cfg = request.account, _headers(request), self.config
        try:
            body = json_loads(request.body) if request.body.strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Response.json(400, {"errors": {"query": "Required parameter missing or invalid"}}, headers)
        variables, operation_name = body.get("variables") or {}, body.get("operationName")
        try:
            document, problems = _parsed(body["query"])
        except GraphQLError as exc:
            problems = [exc]
        if problems:
            return Response.json(200, {"errors": [p.formatted for p in problems]}, headers)
        try:
            requested = query_cost(schema(), document, variables, operation_name)
        except (GraphQLError, TypeError, ValueError) as exc:
            return Response.json(200, {"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}, headers)
        if requested > cfg.max_query_cost:
            return Response.json(200, {"errors": [{
                "message": f"Query cost is {requested}, which exceeds the single query max cost limit ({cfg.max_query_cost}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": cfg.max_query_cost}}]}, headers)
        if cfg.rate_limits_enabled and not shop.bucket.take(requested):
            self.stats_recorder.record_rate_limited("THROTTLED")
            shop.cost_totals["throttled"] += 1
            return Response.json(cfg.throttled_http_status, _throttled_body(shop, requested), headers)
        root = _Root(shop)
        result = execute(schema(), document, root_value=root, variable_values=variables, operation_name=operation_name)
        actual = query_cost(schema(), document, variables, operation_name, result.data, actual=True)
        shop.cost_totals["requested"] += requested
        shop.cost_totals["actual"] += actual
        if cfg.rate_limits_enabled:
            shop.bucket.refund(max(requested - actual, 0))
        payload: dict[str, Any] = {"errors": [e.formatted for e in result.errors]} if result.errors else {}
        extensions: dict[str, Any] = {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": _throttle_status(shop)}}
        if root.warnings:
            extensions["search"] = root.warnings
        return Response.json(200, payload | {"data": result.data, "extensions": extensions}, headers)

    def on_change(self, shop: Account, store: RecordStore, action: str, record: Record, previous: Mapping[str, Any]) -> None:
        """Record the event (deletions are what the events feed is read for) and send the webhook."""
        kind, action, row, now = store.name, {"create": "create", "update": "update", "delete": "destroy"}[action], record.values, self.stamp()
        number, type_name = next(shop.event_numbers), KINDS[kind].type
        shop.events.append({
            "__typename": "BasicEvent", "id": f"gid://shopify/BasicEvent/{number}", "action": action, "createdAt": now,
            "subjectId": gid(kind, row["id"]), "subjectType": type_name.upper(), "message": f"{type_name} {action}",
        })
        body = {"id": row["id"]} if action == "destroy" else self._rest_payload(kind, row)
        topic = f"{kind}/{ {'create': 'create', 'update': KINDS[kind].updated_topic, 'destroy': 'delete'}[action]}"
        self.emit({"topic": topic, "body": body, "event_id": str(number), "at": now, "shop": shop.host})

    def _rest_payload(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        base = {"id": row["id"], "created_at": _rest_time(row["createdAt"]), "updated_at": _rest_time(row["updatedAt"]), "admin_graphql_api_id": gid(kind, row["id"])}
        if kind == "customers":
            return base | {"email": row["email"], "first_name": row["firstName"], "last_name": row["lastName"], "phone": row["phone"],
                           "state": row["state"].lower(), "tags": ", ".join(sorted(row["tags"])), "note": row["note"], "currency": self.config.currency,
                           "default_address": {"company": row.get("company"), "city": row.get("city"), "country": row.get("country")}}
        if kind == "orders":
            return base | {"name": row["name"], "email": row["email"], "currency": row["currency"], "total_price": row["total"],
                           "financial_status": row["financial"].lower(), "fulfillment_status": None if row["fulfillment"] == "UNFULFILLED" else row["fulfillment"].lower(),
                           "tags": ", ".join(sorted(row["tags"])), "note": row["note"]}
        return base | {"name": row["name"], "external_id": row["externalId"], "note": row["note"]}

    def delivery_bodies(self, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
        return [(json_dumps(event["body"]), {
            "X-Shopify-Topic": event["topic"], "X-Shopify-Shop-Domain": event["shop"], "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": event.setdefault("webhook_id", str(uuid.uuid4())), "X-Shopify-Event-Id": event["event_id"],
            "X-Shopify-Triggered-At": _iso(event["at"]),
        }) for event in events]

    def sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        from crm_pipelines.webhooks.signatures import sign_shopify

        return {"X-Shopify-Hmac-Sha256": sign_shopify(self.config.webhook_secret, body)}

    def record_key(self, store: RecordStore, record: Record) -> str:
        return gid(store.name, record.id)

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return self.account().render(store.name, record.values)

    def new_values(self, shop: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        return shop.generated(store.name)

    def random_changes(self, shop: Account, store: RecordStore, record: Record) -> dict[str, Any]:
        rng, data = shop.rng, shop.data[store.name]
        if store.name == "customers":
            return {"note": f"Atualizado {rng.randrange(10**6)} — situação revisada", "city": data.location()[0]}
        if store.name == "orders":
            return {"note": f"Observação {rng.randrange(10**6)}", "financial": rng.choice(FINANCIAL)}
        return {"note": f"Revisão {rng.randrange(10**6)}", "name": data.company_name()}

    def events(self, action: str | None = None, *, account: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.account(account).events if action is None or e["action"] == action]

    def describe(self) -> dict[str, Any]:
        with self.lock:
            shop = self.account()
            return {"objects": {kind: store.count() for kind, store in shop.stores.items()}, "b2b": self.config.b2b, "throttle": _throttle_status(shop), "cost": dict(shop.cost_totals)}


@lru_cache(maxsize=512)
def _parsed(text: str) -> tuple[Any, list[Any]]:
    """Parsed and validated document, cached by text (clients repeat a few query shapes)."""
    document = parse(text)
    return document, validate(schema(), document)


def _headers(request: Request) -> dict[str, str]:
    return {"X-Shopify-API-Version": request.params.get("version", ""), "X-Request-Id": str(uuid.uuid4())}


def _throttle_status(shop: Shop) -> dict[str, float]:
    return {"maximumAvailable": float(shop.bucket.size), "currentlyAvailable": int(shop.bucket.available()), "restoreRate": float(shop.bucket.rate)}


def _throttled_body(shop: Shop, requested: int) -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOC}}],
        "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": _throttle_status(shop)}},
    }


#: The fields a store without B2B answers with ACCESS_DENIED.
B2B_FIELDS = frozenset({"companies", "companiesCount", "company", "companyCreate", "companyUpdate", "companyDelete"})
#: What each query and mutation field does: field -> resolver(shop, root, info, arguments).
RESOLVERS: dict[str, Callable[..., Any]] = {
    **{kind: (lambda shop, root, info, k=kind, **a: shop.connection(root.warnings, k, info, bulk=root.bulk, **a)) for kind in (*KINDS, "events")},
    **{f"{kind}Count": (lambda shop, root, info, k=kind, **a: shop.count(k, **a)) for kind in KINDS},
    **{kind.type.lower(): (lambda shop, root, info, id, t=kind.type: shop.typed(id, t)) for kind in KINDS.values()},
    "node": lambda shop, root, info, id: shop.node(id),
    "nodes": lambda shop, root, info, ids: shop.nodes(ids),
    "customerCreate": mutation("customer", lambda shop, root, info, input: shop.customer_write(input, create=True)),
    "customerUpdate": mutation("customer", lambda shop, root, info, input: shop.customer_write(input, create=False)),
    "customerDelete": mutation("deletedCustomerId", lambda shop, root, info, input: shop.delete_gid("customers", input.get("id"))),
    "orderCreate": mutation("order", lambda shop, root, info, order, options=None: shop.order_create(order)),
    "orderUpdate": mutation("order", lambda shop, root, info, input: shop.order_update(input)),
    "orderDelete": mutation("deletedId", lambda shop, root, info, orderId: shop.delete_gid("orders", orderId)),
    "companyCreate": mutation("company", lambda shop, root, info, input: shop.company_write(input.get("company") or {}, None)),
    "companyUpdate": mutation("company", lambda shop, root, info, companyId, input: shop.company_write(input, companyId)),
    "companyDelete": mutation("deletedCompanyId", lambda shop, root, info, id: shop.delete_gid("companies", id)),
    "currentBulkOperation": lambda shop, root, info, type="QUERY": shop.sim.bulk_current(shop, type),
    "bulkOperationRunQuery": mutation("bulkOperation", lambda shop, root, info, query: shop.sim.bulk_run(shop, "QUERY", query)),
    "bulkOperationRunMutation": mutation("bulkOperation", lambda shop, root, info, mutation, stagedUploadPath, clientIdentifier=None:
                                         shop.sim.bulk_run(shop, "MUTATION", mutation, stagedUploadPath)),
    "bulkOperationCancel": mutation("bulkOperation", lambda shop, root, info, id: shop.sim.bulk_cancel(shop, id)),
    "stagedUploadsCreate": mutation("stagedTargets", lambda shop, root, info, input: shop.sim.staged_uploads(shop, input)),
    "metafieldDefinitions": lambda shop, root, info, **a: sim_metafields.definitions(**a),
}


class _Root:
    """Root value for graphql-core over one shop: its attributes are the :data:`RESOLVERS`;
    ``warnings`` collects the search warnings of the request."""

    def __init__(self, shop: Shop, *, bulk: bool = False) -> None:
        self._shop, self.bulk = shop, bulk
        self.warnings: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in RESOLVERS:
            raise AttributeError(name)

        def resolve(info: Any, **args: Any) -> Any:
            if name in B2B_FIELDS:
                self._shop.require_b2b(name)
            return RESOLVERS[name](self._shop, self, info, **args)

        return resolve


def _event_number(event: dict[str, Any]) -> int:
    return int(event["id"].rsplit("/", 1)[-1])


def _event_value(event: dict[str, Any], name: str) -> Any:
    special = {"id": _event_number(event), "comments": "true", "": [event["message"]]}
    return special[name] if name in special else event[EVENT_SEARCH[name]]


def _encode_cursor(key: tuple) -> str:
    return base64.b64encode(json.dumps({"last_id": key[-1], "last_value": list(key)}, ensure_ascii=False).encode()).decode()


def _decode_cursor(cursor: str) -> tuple:
    try:
        return tuple(json.loads(base64.b64decode(cursor.encode(), validate=True))["last_value"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("Invalid cursor for current pagination sort.") from None


__all__ = ["DEFAULT_TOKEN", "Shop", "ShopifySimConfig", "ShopifySimulator"]
