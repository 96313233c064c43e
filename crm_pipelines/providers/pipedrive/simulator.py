"""Local Pipedrive simulator (persons, organizations, deals; API v2) served over real HTTP.

Reproduces what a sync client meets at ``https://{company}.pipedrive.com``: v2 lists with
``limit`` (default 100, max 500), opaque keyset ``cursor`` / ``additional_data.next_cursor``,
``updated_since`` (inclusive) / ``updated_until`` (exclusive) in RFC3339, ``sort_by`` /
``sort_direction``, the ``ids`` filter, deals ``status`` (``deleted`` lists deals deleted in the
last 30 days); single-record GET/POST/PATCH/DELETE (no bulk writes); ``/search`` with ``fields`` and
``exact_match``; ``/v1/{person,organization,deal}Fields`` with the custom fields (40-character
keys); the ``success``/``data``/``additional_data`` envelope and ``success:false`` errors.

Limits: a daily token budget per company (30,000 x plan multiplier x seats, resetting at midnight
in the company's time zone) charged per endpoint, a burst limit per API token in a rolling
2-second window, 10 search requests per 2 s; ``x-ratelimit-limit/remaining/reset`` on every
answer and ``x-daily-ratelimit-token-limit/remaining`` (observed, undocumented: a switch).

Unconfirmed facts are switches on :class:`PipedriveSimConfig`: the burst counted in requests or
tokens, ``Retry-After`` on 429, the 429 body text for burst and daily exhaustion, the daily
headers, rejection of fractional seconds, ``limit`` > 500 clamped or rejected, what GET by id
answers for a deleted record (``is_deleted: true`` or 404), e-mail validation on writes, the
webhook version (2.0 default, 1.0) and retry schedule.

Timestamps have whole seconds, as Pipedrive's do, so many records share one ``update_time``.
Writes made by one request share one timestamp (the simulated now). Injected faults never
consume budget. Webhooks (``webhook_url``): one delivery per event, HTTP Basic auth when a user
and password are set, retried with a growing delay and an incremented ``meta.attempt``; the
``company_id`` and host in each event name the company (account) whose record changed. Each
company has its own API tokens, records, custom-field keys and budgets.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from crm_pipelines.providers.pipedrive.api import ENTITY_SPECS, IDS_FILTER_MAX, LIST_PAGE_MAX, PLANS, TOKEN_COSTS
from crm_pipelines.simulator import (Account, AccountSpec, ApiError, FakeData, LimitDecision, Record, RecordStore, Request, Response,
                                     SimConfig, Simulator, SlidingWindowLimiter, api)
from crm_pipelines.simulator.clock import utc_iso_s
from crm_pipelines.simulator.formats import EMAIL_RE
from crm_pipelines.simulator.ratelimit import Quota, retry_after
from crm_pipelines.simulator.server import capped, json_dumps, json_loads
from crm_pipelines.webhooks.signatures import sign_pipedrive

DEFAULT_TOKEN = "sim-pipedrive-token"
#: Each object type's path and its singular name (in webhooks and search results); the names the helpers accept.
PATHS = {spec.path: spec.item for spec in ENTITY_SPECS.values()}
ENTITY_OF = {name: spec.path for name, spec in ENTITY_SPECS.items()} | {p: p for p in PATHS} | {s: p for p, s in PATHS.items()}
FIELDS_PATHS = {spec.fields_path: spec.path for spec in ENTITY_SPECS.values()}
SEARCH_LIMIT_MAX = 500
ERROR_INFO = "Please check developers.pipedrive.com"
#: The rate-limit headers: the burst window's limit, remaining and seconds until it empties; the daily token budget and what is left.
USAGE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                 "x-daily-ratelimit-token-limit", "x-daily-ratelimit-token-remaining")
FAULT_MESSAGES = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}
STAGES = {1: "Lead In", 2: "Contact Made", 3: "Qualified", 4: "Proposal Made", 5: "Negotiations Started", 6: "Closed"}
PIPELINES = {1: "Pipeline"}
OWNER_IDS = (12, 13, 14)
LIFECYCLE = ("lead", "prospect", "customer", "partner")
#: The v2 list's ``sort_by`` values and the keyset each orders records by.
SORT_KEYS: dict[str, Callable[[Record], tuple[Any, ...]]] = {"id": lambda rec: (rec.id,), "update_time": lambda rec: (rec.updated, rec.id),
                                                             "add_time": lambda rec: (rec.created, rec.id)}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?P<frac>\.\d+)?(Z|[+-]\d{2}:\d{2})$")

#: Custom fields of each object type (keys are 40-character hashes); all are text (``varchar``) but those in CUSTOM_FIELD_TYPES.
CUSTOM_FIELDS: dict[str, tuple[str, ...]] = {
    "persons": ("Company", "Job title", "Lifecycle stage", "CPF/CNPJ", "crm_record_id", "Favorite color", "Loyalty tier", "Lead channel"),
    "organizations": ("Domain", "CPF/CNPJ", "Phone", "Industry", "crm_record_id", "Employee band", "Account tier"),
    "deals": ("crm_record_id", "Deal source", "Priority level"),
}
CUSTOM_FIELD_TYPES = {"Phone": "phone"}
#: Standard fields ``/v1/{entity}Fields`` lists before the custom ones.
STANDARD_FIELDS = {"persons": ("name", "email", "phone", "org_id", "owner_id"), "organizations": ("name", "address", "owner_id"),
                   "deals": ("title", "value", "currency", "stage_id", "pipeline_id", "expected_close_date", "owner_id")}
#: What a create or update may set besides ``owner_id``, ``visible_to``, ``label_ids``, ``custom_fields`` and ``add_time``, with
#: what a new record holds unless the request sets it.
WRITABLE: dict[str, dict[str, Any]] = {
    "persons": {"name": None, "first_name": None, "last_name": None, "emails": [], "phones": [], "org_id": None},
    "organizations": {"name": None, "address": None},
    "deals": {"title": None, "value": 0, "currency": "BRL", "status": "open", "stage_id": 1, "pipeline_id": 1, "person_id": None, "org_id": None,
              "expected_close_date": None, "probability": None, "close_time": None, "won_time": None, "lost_time": None, "lost_reason": None,
              "is_archived": False},
}
#: The field every record must have a non-blank text in.
TITLE_FIELD = {"persons": "name", "organizations": "name", "deals": "title"}


#: What ``/search`` looks at for each of its ``fields`` (in this order), and the ``fields`` each object type accepts.
SEARCHED_VALUES: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "custom_fields": lambda obj: list((obj.get("custom_fields") or {}).values()),
    "email": lambda obj: [e["value"] for e in obj.get("emails") or []],
    "phone": lambda obj: [p["value"] for p in obj.get("phones") or []],
    "name": lambda obj: [obj.get("name")],
    "title": lambda obj: [obj.get("title")],
    "address": lambda obj: [obj["address"].get("value")] if isinstance(obj.get("address"), dict) else [],
}
SEARCH_FIELDS = {"persons": ("custom_fields", "email", "notes", "phone", "name"), "organizations": ("address", "custom_fields", "notes", "name"),
                 "deals": ("custom_fields", "notes", "title")}


def field_key(path: str, name: str, seed: int | str = "") -> str:
    """The 40-character key of a custom field (stable per simulated company)."""
    return hashlib.sha1(f"{seed}:{path}:{name}".encode()).hexdigest()


iso = utc_iso_s
OBJECTS = "/api/v2/{path:persons|organizations|deals}"


@dataclass
class PipedriveSimConfig(SimConfig):
    """Everything the Pipedrive simulator can be told (shared settings in :class:`SimConfig`).

    Data: ``persons``/``organizations``/``deals`` counts per company; the default company's
    ``tokens``, ``company_domain``, ``company_id`` and ``user_id``.

    Limits: ``plan`` gives the burst limit per API token per ``burst_window_s`` (override with
    ``burst_limit``) and the daily-budget multiplier; the daily budget is 30,000 x multiplier x
    ``seats`` tokens unless ``daily_token_budget`` is set (0 turns it off), reset at midnight in
    ``company_timezone``. ``token_costs`` per kind of call; ``search_burst_limit`` search requests
    per window.

    Unconfirmed facts, as switches: ``burst_unit`` ("requests" as the official page says, or
    "tokens"), ``retry_after_on_429``, ``burst_429_error`` / ``daily_429_error`` (body texts),
    ``send_daily_headers``, ``reject_fractional_seconds``, ``list_limit_oversize``,
    ``deleted_get`` ("is_deleted": GET by id answers the record flagged, or "404"),
    ``validate_emails``, ``webhook_version`` ("2.0" or "1.0"). ``accept_query_token`` accepts the
    legacy ``?api_token=``. Webhooks carry HTTP Basic auth with ``webhook_user``/``webhook_password``.
    """

    COUNTS: ClassVar[tuple[str, ...]] = ("persons", "organizations", "deals")

    persons: int = 100
    organizations: int = 20
    deals: int = 40
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    company_domain: str = "simcompany"
    company_id: int = 9_876_543
    user_id: int = 12

    plan: Literal["lite", "growth", "premium", "ultimate"] = "lite"
    seats: int = 1
    burst_limit: int | None = None
    burst_window_s: float = 2.0
    burst_unit: Literal["requests", "tokens"] = "requests"
    search_burst_limit: int = 10
    daily_token_budget: int | None = None
    company_timezone: str = "UTC"
    token_costs: dict[str, int] = field(default_factory=lambda: dict(TOKEN_COSTS))
    send_daily_headers: bool = True
    retry_after_on_429: bool = False
    burst_429_error: str = "Request over limit"
    daily_429_error: str = "Daily token budget exceeded"

    reject_fractional_seconds: bool = True
    list_limit_oversize: Literal["clamp", "reject"] = "clamp"
    deleted_get: Literal["is_deleted", "404"] = "is_deleted"
    deleted_retention_days: int = 30
    validate_emails: bool = True
    accept_query_token: bool = True

    webhook_user: str | None = None
    webhook_password: str | None = None
    webhook_version: Literal["2.0", "1.0"] = "2.0"
    webhook_max_attempts: int = 4
    webhook_retry_base_s: float = 3.0

    def check(self) -> None:
        if not self.tokens:
            raise ValueError("at least one token is required")
        if self.seats < 1:
            raise ValueError("seats must be >= 1")

    @property
    def effective_burst_limit(self) -> int:
        return self.burst_limit or PLANS[self.plan][0]

    @property
    def effective_daily_budget(self) -> int | None:
        if self.daily_token_budget is not None:
            return self.daily_token_budget or None
        return 30_000 * PLANS[self.plan][1] * self.seats


class Company(Account):
    """A Pipedrive company: its records (the API-shaped objects), custom-field keys, the burst and
    search windows per API token and the daily token budget."""

    def __init__(self, sim: PipedriveSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg = sim.config
        self.quota = Quota(sim, "BURST", lambda: sim.config.effective_burst_limit, cfg.burst_window_s,
                           lambda: sim.config.effective_daily_budget, ZoneInfo(cfg.company_timezone))
        self.search = SlidingWindowLimiter(cfg.search_burst_limit, cfg.burst_window_s)
        self.limiters = (*self.quota.limiters, self.search)
        self.keys = {path: {name: field_key(path, name, self.seed) for name in names} for path, names in CUSTOM_FIELDS.items()}
        self.data = {path: FakeData(f"{self.seed}-{path}") for path in PATHS}
        self.stores = {path: RecordStore(path) for path in PATHS}
        for path in ("organizations", "persons", "deals"):
            for _ in range(self.count_of(sim, path)):
                sim.insert(self.stores[path], *sim.seeded_history(self.data[path].rng), sim.generate(self, path))


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"success": False, "error": message, "error_info": ERROR_INFO, "data": None, "additional_data": None, "errorCode": status})


def _require(condition: Any, message: str) -> None:
    """Refuse the request (400 with ``message``) unless ``condition`` holds."""
    if not condition:
        raise ApiError(_error(400, message))


def _ok(data: Any, additional: dict[str, Any] | None = None) -> Response:
    return Response.json(200, {"success": True, "data": data} | ({"additional_data": additional} if additional is not None else {}))


def _render(obj: dict[str, Any], custom_keys: list[str] | None = None) -> dict[str, Any]:
    """A record as the API answers it: its own copy of the custom fields, only ``custom_keys`` when given."""
    custom = obj.get("custom_fields") or {}
    return obj | {"custom_fields": {k: v for k, v in custom.items() if custom_keys is None or k in custom_keys}}


def _encode_cursor(payload: list[Any]) -> str:
    return base64.urlsafe_b64encode(json_dumps(payload)).decode().rstrip("=")


def _decode_cursor(raw: str) -> list[Any]:
    try:
        value = json_loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        value = None
    _require(isinstance(value, list) and len(value) >= 2, "Invalid cursor")
    return value


class PipedriveSimulator(Simulator):
    """Pipedrive API v2 over real HTTP. See the module docstring and :class:`PipedriveSimConfig`.

    Python-side helpers for tests (``account=`` names another company): :meth:`records`,
    :meth:`count`, :meth:`modify`, :meth:`create`, :meth:`delete`, :meth:`field_keys`,
    :meth:`tokens_used`.
    """

    provider = "pipedrive"
    server_name = "pipedrive-simulator"
    config_class = PipedriveSimConfig
    ANSWERS = {"unauthorized": (401, "unauthorized access"), "not_found": (404, "Unknown method ."),
               "method_not_allowed": (405, "Method {request.method} not allowed"), "internal_error": (500, "Internal server error"),
               "invalid_json": (400, "Invalid JSON body: {error}"), "not_an_object": (400, "Request body must be a JSON object")}
    account_class = Company
    config: PipedriveSimConfig
    ENTITIES = ENTITY_OF
    CLI_DEFAULTS = {"persons": 1000, "organizations": 100, "deals": 200}
    CLI_ALIASES = {"--retry-after": "--retry-after-on-429"}
    stamps_per_second = 1

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec(str(self.config.company_id), self.config.tokens)

    def stamp(self) -> int:
        return int(self.clock.timestamp())

    def generate(self, company: Company, path: str) -> dict[str, Any]:
        data, keys = company.data[path], company.keys[path]
        rng = data.rng
        if path == "persons":
            p = data.person()
            custom = {keys["Company"]: p["company"], keys["Job title"]: p["job_title"], keys["Lifecycle stage"]: data.pick(LIFECYCLE),
                      keys["CPF/CNPJ"]: p["document"], keys["crm_record_id"]: None}
            orgs = company.stores["organizations"].live_ids
            return {"name": " ".join(x for x in (p["first_name"], p["last_name"]) if x), "first_name": p["first_name"], "last_name": p["last_name"],
                    "emails": [{"value": p["email"], "primary": True, "label": "work"}] if p["email"] else [],
                    "phones": [{"value": p["phone"], "primary": True, "label": "mobile"}] if p["phone"] else [],
                    "owner_id": data.pick(OWNER_IDS), "org_id": rng.choice(orgs) if orgs and rng.random() < 0.5 else None,
                    "visible_to": 3, "label_ids": [], "custom_fields": custom}
        if path == "organizations":
            o = data.organization()
            address = {"value": f"{o['city']}, {o['country']}", "street_number": None, "route": None, "locality": o["city"],
                       "admin_area_level_1": o["state"], "country": o["country"], "postal_code": None}
            custom = {keys["Domain"]: o["domain"], keys["CPF/CNPJ"]: o["document"], keys["Phone"]: o["phone"], keys["Industry"]: o["industry"],
                      keys["crm_record_id"]: None}
            return {"name": o["name"], "owner_id": data.pick(OWNER_IDS), "address": address, "visible_to": 3, "label_ids": [], "custom_fields": custom}
        d = data.deal()
        stage = rng.choice(list(STAGES))
        status = "open" if stage < 6 else rng.choice(("won", "lost"))
        close = date.fromtimestamp(int(self.reference.timestamp())) + timedelta(days=rng.randint(-60, 60))
        persons = company.stores["persons"].live_ids
        return {"title": d["name"], "value": float(d["amount"]) if d["amount"] else 0, "currency": d["currency"], "status": status,
                "stage_id": stage, "pipeline_id": 1, "owner_id": data.pick(OWNER_IDS),
                "person_id": rng.choice(persons) if persons and rng.random() < 0.6 else None, "org_id": None,
                "expected_close_date": close.isoformat(), "probability": None, "close_time": None, "won_time": None, "lost_time": None,
                "lost_reason": None, "is_archived": False, "custom_fields": {keys["crm_record_id"]: None}}

    def insert(self, store: RecordStore, added: int, updated: int, values: dict[str, Any]) -> Record:
        record_id = store.allocate_id()
        obj = {"id": record_id, **values, "add_time": iso(added), "update_time": iso(updated), "is_deleted": False}
        return store.insert(obj, added, updated, record_id=record_id)

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        if record is None:
            return self.insert(store, stamp, stamp, dict(values))
        store.update(record, {**values, "update_time": iso(stamp)}, stamp)
        return record

    def remove(self, store: RecordStore, record: Record) -> None:
        now = self.stamp()
        record.values.update(is_deleted=True, update_time=iso(now))
        store.touch(record, now)
        store.delete(record, now)

    def _defaults(self, company: Company, path: str) -> dict[str, Any]:
        """What a new record holds unless the request sets it."""
        custom = dict.fromkeys(company.keys[path].values())
        return {"owner_id": self.config.user_id, "visible_to": 3, "label_ids": [], "custom_fields": custom} | copy.deepcopy(WRITABLE[path])

    def error_response(self, status: int, message: str) -> Response:
        return _error(status, message)

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            window = self.config.burst_window_s
            return self._too_many(self.authenticate(request), self.config.burst_429_error, LimitDecision(False, 0, window, window))
        return _error(status, FAULT_MESSAGES.get(status, f"HTTP {status}"))

    def credentials(self, request: Request) -> str | None:
        token = (request.header("x-api-token") or "").strip() or super().credentials(request) or ""
        if not token and self.config.accept_query_token:
            token = (request.query_value("api_token") or "").strip()
        return token or None

    def _burst_headers(self, company: Company, window: LimitDecision) -> dict[str, str]:
        """The rate-limit headers: what is ``window``'s (the burst window unless a search refused) and the daily budget's."""
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return {}
        return company.quota.headers(USAGE_HEADERS, window.remaining, max(1, math.ceil(window.reset_s)), daily=cfg.send_daily_headers)

    def admit(self, request: Request) -> Response | None:
        """Daily budget, burst and search windows for one call; the rate-limit headers."""
        cfg, company, token, kind = self.config, request.account, request.token, request.route.meta["kind"]
        if not cfg.rate_limits_enabled:
            return None
        cost, search = cfg.token_costs.get(kind, 1), (("SEARCH", company.search),) if kind == "search" else ()
        policy, decision = company.quota.take(token, cost=cost, weight=cost if cfg.burst_unit == "tokens" else 1, before=search)
        if policy is not None:
            message = cfg.daily_429_error if policy == "DAILY" else cfg.burst_429_error
            return self._too_many(company, message, decision, cfg.search_burst_limit if policy == "SEARCH" else None)
        request.response_headers = self._burst_headers(company, decision)
        if search:
            request.response_headers.update({"x-ratelimit-limit": str(cfg.search_burst_limit), "x-ratelimit-remaining": str(company.search.remaining(token))})
        return None

    def _too_many(self, company: Any, message: str, refusal: LimitDecision, limit: int | None = None) -> Response:
        """A 429: the rate-limit headers of the ``refusal`` (``limit``: of the window that refused) and,
        when switched on, ``Retry-After``."""
        response = _error(429, message)
        if isinstance(company, Company):
            response.headers.update(self._burst_headers(company, refusal) | ({"x-ratelimit-limit": str(limit)} if limit else {}))
        if self.config.retry_after_on_429:
            response.headers.update(retry_after(refusal.retry_after_s))
        return response

    def tokens_used(self, *, account: str | None = None) -> int:
        """Tokens charged since start (all days)."""
        return self.account(account).quota.daily.total

    def _table(self, request: Request) -> RecordStore:
        return request.account.stores[request.params["path"]]

    def _record(self, request: Request, *, deleted_shown: bool = False) -> tuple[RecordStore, Record]:
        """The table and record the path names; 404 when there is none or it is deleted (unless GET still shows it)."""
        table, raw = self._table(request), request.params.get("id", "")
        _require(raw.isdigit(), f"id must be an integer, got {raw!r}")
        rec = table.get(int(raw))
        retention = self.stamp() - self.config.deleted_retention_days * 86_400
        if rec is None or rec.deleted is not None and not (deleted_shown and self.config.deleted_get != "404" and rec.deleted >= retention):
            raise ApiError(_error(404, f"{PATHS[table.name].capitalize()} not found"))
        return table, rec

    def _timestamp_param(self, request: Request, name: str) -> int | None:
        raw = request.query_value(name)
        if raw in (None, ""):
            return None
        match = _RFC3339.match(raw)
        _require(match, f"{name} must be an RFC3339 date-time such as 2025-01-01T10:20:00Z, got {raw!r}")
        _require(not (match.group("frac") and self.config.reject_fractional_seconds), f"{name} must not have fractional seconds, got {raw!r}")
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())

    def _limit_param(self, request: Request, maximum: int) -> int:
        raw = request.query_value("limit")
        if raw in (None, ""):
            return 100
        _require(raw.isdigit() and int(raw) >= 1, f"limit must be a positive integer, got {raw!r}")
        return capped(int(raw), maximum, self.config.list_limit_oversize, lambda: ApiError(_error(400, f"limit must not be greater than {maximum}")))

    @api("GET", OBJECTS, name="GET /api/v2/{entity}", kind="list")
    def _list(self, request: Request) -> Response:
        table = self._table(request)
        limit = self._limit_param(request, LIST_PAGE_MAX)
        since, until = self._timestamp_param(request, "updated_since"), self._timestamp_param(request, "updated_until")
        sort_by, direction = request.query_value("sort_by") or "id", request.query_value("sort_direction") or "asc"
        _require(sort_by in SORT_KEYS, f"sort_by must be one of id, update_time, add_time, got {sort_by!r}")
        _require(direction in ("asc", "desc"), f"sort_direction must be asc or desc, got {direction!r}")
        statuses = request.query_list("status")
        _require(table.name == "deals" or not statuses, "status is only supported for deals")
        unknown = set(statuses) - {"open", "won", "lost", "deleted"}
        _require(not unknown, f"status must be open, won, lost or deleted, got {sorted(unknown)}")
        ids = request.query_list("ids")
        _require(len(ids) <= IDS_FILTER_MAX, f"ids must not contain more than {IDS_FILTER_MAX} values")
        _require(all(i.isdigit() for i in ids), "ids must be integers")
        custom = request.query_list("custom_fields") or None
        _require(custom is None or len(custom) <= 15, "custom_fields must not contain more than 15 keys")
        retention = self.stamp() - self.config.deleted_retention_days * 86_400
        live_statuses = set(statuses) - {"deleted"}

        def shown(rec: Record) -> bool:
            kept = "deleted" in statuses and rec.deleted >= retention if rec.deleted is not None else not statuses or rec["status"] in live_statuses
            return kept and (since is None or rec.updated >= since) and (until is None or rec.updated < until)

        candidates = [table.rows.get(int(i)) for i in dict.fromkeys(ids)] if ids else table.rows.values()
        keys = sorted((SORT_KEYS[sort_by](rec) for rec in candidates if rec is not None and shown(rec)), reverse=direction == "desc")
        raw_cursor = request.query_value("cursor")
        if raw_cursor:
            cursor = _decode_cursor(raw_cursor)
            _require(cursor[0] == f"{sort_by}:{direction}", "cursor does not belong to this sort order")
            after = tuple(cursor[1:])
            keys = [k for k in keys if (k > after if direction == "asc" else k < after)]
        next_cursor = _encode_cursor([f"{sort_by}:{direction}", *keys[limit - 1]]) if len(keys) > limit else None
        return _ok([_render(table.rows[k[-1]].values, custom) for k in keys[:limit]], {"next_cursor": next_cursor})

    @api("POST", OBJECTS, name="POST /api/v2/{entity}", kind="write")
    def _create(self, request: Request) -> Response:
        table = self._table(request)
        changes = self._validated(request.account, table, self.body_object(request), None)
        return _ok(_render(self.write(table, None, self._defaults(request.account, table.name) | changes, self.stamp()).values))

    @api("GET", OBJECTS + "/search", name="GET /api/v2/{entity}/search", kind="search")
    def _search(self, request: Request) -> Response:
        table = self._table(request)
        searchable = SEARCH_FIELDS[table.name]
        term = (request.query_value("term") or "").strip()
        exact = (request.query_value("exact_match") or "false").lower() == "true"
        _require(len(term) >= (1 if exact else 2), "term must not be empty" if exact else "Search term must be at least 2 characters long")
        fields = request.query_list("fields") or list(searchable)
        bad = set(fields) - set(searchable)
        _require(not bad, f"fields must be among {', '.join(searchable)}, got {', '.join(sorted(bad))}")
        limit = self._limit_param(request, SEARCH_LIMIT_MAX)
        raw_cursor = request.query_value("cursor")
        offset = int(_decode_cursor(raw_cursor)[1]) if raw_cursor else 0
        folded = term.casefold()

        def hit(value: Any) -> bool:
            return value is not None and (str(value).casefold() == folded if exact else folded in str(value).casefold())

        readers = [reader for name, reader in SEARCHED_VALUES.items() if name in fields]
        matches = [rec.values for rec in table.select() if any(hit(v) for read in readers for v in read(rec.values))]
        items = [{"result_score": 1.0, "item": self._search_item(table, obj)} for obj in matches[offset : offset + limit]]
        next_cursor = _encode_cursor(["offset", offset + limit]) if offset + limit < len(matches) else None
        return _ok({"items": items}, {"next_cursor": next_cursor})

    @api("GET", OBJECTS + "/{id}", name="GET /api/v2/{entity}/{id}", kind="get")
    def _get(self, request: Request) -> Response:
        return _ok(_render(self._record(request, deleted_shown=True)[1].values))

    def _validated(self, company: Company, table: RecordStore, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        """The fields a create/update sets, checked like Pipedrive does (400 with a message)."""
        path, old, changes = table.name, current or {}, dict(body)
        unknown = set(body) - {"owner_id", "visible_to", "label_ids", "custom_fields", "add_time", *WRITABLE[path]}
        _require(not unknown, f"Unknown parameter(s): {', '.join(sorted(unknown))}")
        if "custom_fields" in changes:
            custom = changes["custom_fields"]
            _require(isinstance(custom, dict), "custom_fields must be an object")
            known = set(company.keys[path].values())
            bad = set(custom) - known
            _require(not bad, f"Custom field(s) not found: {', '.join(sorted(bad))}")
            changes["custom_fields"] = dict(old.get("custom_fields") or dict.fromkeys(company.keys[path].values())) | custom
        for name in [key for key in ("emails", "phones") if key in changes]:
            values = changes[name] or []
            valid = isinstance(values, list) and all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in values)
            _require(valid, f"{name} must be an array of objects with a string value")
            for v in values if name == "emails" and self.config.validate_emails else ():
                _require(EMAIL_RE.match(v["value"].strip()), f"Invalid email address: {v['value']}")
            changes[name] = [{"value": v["value"], "primary": bool(v.get("primary")), "label": v.get("label") or "work"} for v in values]
        if path == "persons":
            if "name" not in changes and ("first_name" in changes or "last_name" in changes):
                changes["name"] = " ".join(x for x in (changes.get(k, old.get(k)) for k in ("first_name", "last_name")) if x)
            if "name" in changes and "first_name" not in changes and "last_name" not in changes:
                first, _, last = str(changes["name"] or "").strip().partition(" ")
                changes["first_name"], changes["last_name"] = first or None, last or None
        title = TITLE_FIELD[path]
        if current is None or title in changes:
            value = changes.get(title, old.get(title))
            _require(isinstance(value, str) and value.strip(), f"{title.capitalize()} must be given")
        # Deal fields (only deals accept them):
        _require(changes.get("value") is None or isinstance(changes["value"], (int, float)), "value must be a number")
        _require(changes.get("stage_id") is None or changes["stage_id"] in STAGES, f"Stage with id {changes.get('stage_id')} not found")
        _require(changes.get("pipeline_id") is None or changes["pipeline_id"] in PIPELINES, f"Pipeline with id {changes.get('pipeline_id')} not found")
        _require(changes.get("status") is None or changes["status"] in ("open", "won", "lost"), "status must be open, won or lost")
        try:
            date.fromisoformat(str(changes.get("expected_close_date") or date.min))
        except ValueError:
            raise ApiError(_error(400, "expected_close_date must be YYYY-MM-DD")) from None
        return changes

    @api("PATCH", OBJECTS + "/{id}", name="PATCH /api/v2/{entity}/{id}", kind="write")
    def _update(self, request: Request) -> Response:
        table, rec = self._record(request)
        self.write(table, rec, self._validated(request.account, table, self.body_object(request), rec.values), self.stamp())
        return _ok(_render(rec.values))

    @api("DELETE", OBJECTS + "/{id}", name="DELETE /api/v2/{entity}/{id}", kind="delete")
    def _delete(self, request: Request) -> Response:
        table, rec = self._record(request)
        self.remove(table, rec)
        return _ok({"id": rec.id})

    def _search_item(self, table: RecordStore, obj: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"id": obj["id"], "type": PATHS[table.name], "owner": {"id": obj.get("owner_id")}, "visible_to": obj.get("visible_to"),
                                "custom_fields": [str(v) for v in (obj.get("custom_fields") or {}).values() if v not in (None, "")], "notes": []}
        if table.name == "persons":
            return item | {"name": obj.get("name"), "emails": SEARCHED_VALUES["email"](obj), "phones": SEARCHED_VALUES["phone"](obj),
                           "organization": {"id": obj["org_id"]} if obj.get("org_id") else None}
        if table.name == "organizations":
            return item | {"name": obj.get("name"), "address": (obj.get("address") or {}).get("value")}
        return item | {"title": obj.get("title"), "value": obj.get("value"), "currency": obj.get("currency"), "status": obj.get("status")}

    @api("GET", "/v1/{fields:personFields|organizationFields|dealFields}", name="GET /v1/{entity}Fields", kind="fields")
    def _fields(self, request: Request) -> Response:
        path = FIELDS_PATHS[request.params["fields"]]
        data = [{"id": n + 1, "key": key, "name": key.replace("_", " ").capitalize(), "field_type": "varchar", "edit_flag": False}
                for n, key in enumerate(STANDARD_FIELDS[path])]
        data += [{"id": 9000 + n, "key": key, "name": name, "field_type": CUSTOM_FIELD_TYPES.get(name, "varchar"), "edit_flag": True}
                 for n, (name, key) in enumerate(request.account.keys[path].items())]
        start, limit = int(request.query_value("start") or 0), self._limit_param(request, 500)
        more = start + limit < len(data)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more} | ({"next_start": start + limit} if more else {})
        return _ok(data[start : start + limit], {"pagination": pagination})

    def on_change(self, company: Account, table: RecordStore, action: str, rec: Record, previous: Mapping[str, Any]) -> None:
        """Webhooks: the record after the change and what the changed fields held before."""
        if self.webhooks is None:
            return
        cfg, entity = self.config, PATHS[table.name]
        action = {"create": "create", "update": "change", "delete": "delete"}[action]
        data = None if action == "delete" else dict(rec.values)
        before = dict(rec.values) if action == "delete" else {k: v for k, v in previous.items() if k != "update_time"}
        if isinstance(before.get("custom_fields"), dict):
            old, new = before["custom_fields"], rec.values["custom_fields"]
            before["custom_fields"] = {k: old.get(k) for k in new if old.get(k) != new.get(k)}
        before = None if action == "create" else before
        company_id = company.id if not company.default else str(cfg.company_id)
        host = f"{cfg.company_domain if company.default else company.id}.pipedrive.com"
        if cfg.webhook_version == "2.0":
            self.emit({"meta": {"action": action, "entity": entity, "entity_id": str(rec.id), "id": str(uuid.uuid4()),
                                "company_id": company_id, "user_id": str(cfg.user_id), "correlation_id": str(uuid.uuid4()),
                                "is_bulk_edit": False, "timestamp": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                "type": "general", "version": "2.0", "webhook_id": "55", "webhook_owner_id": str(cfg.user_id),
                                "change_source": "api" if self.in_api else "app", "attempt": 1, "host": host, "permitted_user_ids": [str(cfg.user_id)]},
                       "data": data, "previous": before})
            return
        legacy, now = {"create": "added", "change": "updated", "delete": "deleted"}[action], self.clock.timestamp()
        self.emit({"v": 1, "matches_filters": {"current": [], "previous": []},
                   "meta": {"v": 1, "action": legacy, "object": entity, "id": rec.id, "company_id": int(company_id) if company_id.isdigit() else company_id,
                            "user_id": cfg.user_id, "host": host, "timestamp": int(now), "timestamp_micro": int(now * 1_000_000),
                            "permitted_user_ids": [cfg.user_id], "trans_pending": False, "is_bulk_update": False, "webhook_id": "55"},
                   "retry": 0, "current": None if data is None else data | {"active_flag": True}, "previous": before, "event": f"{legacy}.{entity}"})

    def sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        user, password = self.config.webhook_user, self.config.webhook_password
        return {"Authorization": sign_pipedrive(user, password)} if user and password else {}

    def on_retry(self, events: list[dict[str, Any]], attempt: int) -> None:
        for event in events:
            if "retry" in event:
                event["retry"] = attempt
            else:
                event["meta"]["attempt"] = attempt + 1

    def field_keys(self, entity: str, *, account: str | None = None) -> dict[str, str]:
        """Custom field name -> 40-character key."""
        return dict(self.account(account).keys[self.entity_store(entity, account).name])

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return _render(record.values)

    def new_values(self, company: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        return self._defaults(company, store.name) | self.generate(company, store.name)

    def random_changes(self, company: Account, store: RecordStore, rec: Record) -> dict[str, Any]:
        data, keys = company.data[store.name], company.keys[store.name]
        if store.name == "persons":
            custom = dict(rec["custom_fields"]) | {keys["Job title"]: data.job_title() or "Consultor"}
            return {"custom_fields": custom, "phones": [{"value": data.phone(), "primary": True, "label": "mobile"}]}
        if store.name == "organizations":
            return {"custom_fields": dict(rec["custom_fields"]) | {keys["Industry"]: data.industry(), keys["Phone"]: data.phone()}}
        return {"value": float(data.amount()), "stage_id": company.rng.choice(list(STAGES)[:5])}

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        with self.lock:
            counts = {path: {"live": t.count(), "deleted": t.count(deleted=True)} for path, t in self.account().stores.items()}
        return {"objects": counts, "rate_limits_enabled": cfg.rate_limits_enabled, "plan": cfg.plan, "burst_limit": cfg.effective_burst_limit,
                "burst_unit": cfg.burst_unit, "daily_token_budget": cfg.effective_daily_budget, "tokens_used": self.tokens_used()}


__all__ = ["DEFAULT_TOKEN", "Company", "PipedriveSimConfig", "PipedriveSimulator", "field_key"]
