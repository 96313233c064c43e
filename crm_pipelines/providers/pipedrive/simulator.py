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
and password are set, retried with a growing delay and an incremented ``meta.attempt``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import math
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.server import (
    FaultConfig,
    InvalidJSONBody,
    Request,
    Response,
    Router,
    SimClock,
    SimulatorBase,
    json_dumps,
    json_loads,
    parse_datetime,
)
from crm_pipelines.simulator.webhooks import WebhookEmitter

DEFAULT_TOKEN = "sim-pipedrive-token"
PATHS = {"persons": "person", "organizations": "organization", "deals": "deal"}
ENTITY_OF = {"contacts": "persons", "companies": "organizations", "deals": "deals", **{p: p for p in PATHS}, **{s: p for p, s in PATHS.items()}}
FIELDS_PATHS = {"personFields": "persons", "organizationFields": "organizations", "dealFields": "deals"}
PLANS: dict[str, tuple[int, int]] = {"lite": (20, 1), "growth": (40, 2), "premium": (100, 5), "ultimate": (120, 7)}
DEFAULT_COSTS: dict[str, int] = {"get": 1, "list": 10, "write": 5, "delete": 3, "search": 40, "fields": 20}
LIST_LIMIT_MAX = 500
IDS_MAX = 100
SEARCH_LIMIT_MAX = 500
ERROR_INFO = "Please check developers.pipedrive.com"
STAGES = {1: "Lead In", 2: "Contact Made", 3: "Qualified", 4: "Proposal Made", 5: "Negotiations Started", 6: "Closed"}
PIPELINES = {1: "Pipeline"}
OWNER_IDS = (12, 13, 14)
LIFECYCLE = ("lead", "prospect", "customer", "partner")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?P<frac>\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

#: Custom fields of each object type: name -> type. Keys are 40-character hashes.
CUSTOM_FIELDS: dict[str, dict[str, str]] = {
    "persons": {"Company": "varchar", "Job title": "varchar", "Lifecycle stage": "varchar", "CPF/CNPJ": "varchar", "crm_record_id": "varchar"},
    "organizations": {"Domain": "varchar", "CPF/CNPJ": "varchar", "Phone": "phone", "Industry": "varchar", "crm_record_id": "varchar"},
    "deals": {"crm_record_id": "varchar"},
}
SEARCH_FIELDS = {
    "persons": ("custom_fields", "email", "notes", "phone", "name"),
    "organizations": ("address", "custom_fields", "notes", "name"),
    "deals": ("custom_fields", "notes", "title"),
}


def field_key(path: str, name: str, seed: int | str = "") -> str:
    """The 40-character key of a custom field (stable per simulated company)."""
    return hashlib.sha1(f"{seed}:{path}:{name}".encode()).hexdigest()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class PipedriveSimConfig:
    """Everything the Pipedrive simulator can be told; every field has a working default.

    Data: ``seed``, ``persons``/``organizations``/``deals`` counts, ``history_days`` (seeded
    records were added and last updated within this many days before ``reference_time``; ``None``
    = now). The clock starts at ``clock_start``, else ``reference_time``, else the wall clock.

    Limits: ``plan`` (lite/growth/premium/ultimate) gives the burst limit per API token per
    ``burst_window_s`` (override with ``burst_limit``) and the daily-budget multiplier; the daily
    budget is 30,000 x multiplier x ``seats`` tokens unless ``daily_token_budget`` is set (0 turns
    it off), reset at midnight in ``company_timezone``. ``token_costs`` per kind of call.
    ``search_burst_limit`` search requests per window. ``rate_limits_enabled=False`` turns every
    limit and rate-limit header off.

    Unconfirmed facts, as switches: ``burst_unit`` ("requests" as the official page says, or
    "tokens"), ``retry_after_on_429``, ``burst_429_error`` / ``daily_429_error`` (body texts),
    ``send_daily_headers``, ``reject_fractional_seconds``, ``list_limit_oversize`` ("clamp" or
    "reject"), ``deleted_get`` ("is_deleted": GET by id answers the record flagged, or "404"),
    ``validate_emails``, ``webhook_version`` ("2.0" or "1.0"), ``webhook_retry_base_s`` /
    ``webhook_max_attempts``. ``accept_query_token`` accepts the legacy ``?api_token=``.
    """

    seed: int = 1
    persons: int = 100
    organizations: int = 20
    deals: int = 40
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    company_domain: str = "simcompany"
    company_id: int = 9_876_543
    user_id: int = 12

    rate_limits_enabled: bool = True
    plan: str = "lite"
    seats: int = 1
    burst_limit: int | None = None
    burst_window_s: float = 2.0
    burst_unit: str = "requests"
    search_burst_limit: int = 10
    daily_token_budget: int | None = None
    company_timezone: str = "UTC"
    token_costs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_COSTS))
    send_daily_headers: bool = True
    retry_after_on_429: bool = False
    burst_429_error: str = "Request over limit"
    daily_429_error: str = "Daily token budget exceeded"

    reject_fractional_seconds: bool = True
    list_limit_oversize: str = "clamp"
    deleted_get: str = "is_deleted"
    deleted_retention_days: int = 30
    validate_emails: bool = True
    accept_query_token: bool = True
    faults: FaultConfig = field(default_factory=FaultConfig)

    webhook_url: str | None = None
    webhook_user: str | None = None
    webhook_password: str | None = None
    webhook_version: str = "2.0"
    webhook_max_attempts: int = 4
    webhook_retry_base_s: float = 3.0

    def validate(self) -> None:
        for name in ("persons", "organizations", "deals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.plan not in PLANS:
            raise ValueError(f"plan must be one of {sorted(PLANS)}")
        if self.burst_unit not in ("requests", "tokens"):
            raise ValueError("burst_unit must be 'requests' or 'tokens'")
        if self.list_limit_oversize not in ("clamp", "reject"):
            raise ValueError("list_limit_oversize must be 'clamp' or 'reject'")
        if self.deleted_get not in ("is_deleted", "404"):
            raise ValueError("deleted_get must be 'is_deleted' or '404'")
        if self.webhook_version not in ("1.0", "2.0"):
            raise ValueError("webhook_version must be '1.0' or '2.0'")
        if not self.tokens:
            raise ValueError("at least one token is required")
        if self.seats < 1:
            raise ValueError("seats must be >= 1")
        self.faults.validate()

    @property
    def effective_burst_limit(self) -> int:
        return self.burst_limit or PLANS[self.plan][0]

    @property
    def effective_daily_budget(self) -> int | None:
        if self.daily_token_budget is not None:
            return self.daily_token_budget or None
        return 30_000 * PLANS[self.plan][1] * self.seats


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


class _WeightedWindow:
    """At most ``limit`` units per key in any ``window_s`` seconds (rejections are not recorded)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._log: dict[str, deque[tuple[float, int]]] = {}
        self._used: dict[str, int] = {}

    def _expire(self, key: str, now: float) -> deque[tuple[float, int]]:
        entries = self._log.setdefault(key, deque())
        while entries and entries[0][0] <= now - self.window_s:
            self._used[key] = self._used.get(key, 0) - entries.popleft()[1]
        return entries

    def check(self, key: str, weight: int, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining after, seconds until the window has room / resets)."""
        entries = self._expire(key, now)
        used = self._used.get(key, 0)
        if used + weight > self.limit:
            need = used + weight - self.limit
            freed = 0
            reset = self.window_s
            for stamp, units in entries:
                freed += units
                if freed >= need:
                    reset = stamp + self.window_s - now
                    break
            return False, max(self.limit - used, 0), max(reset, 0.0)
        entries.append((now, weight))
        self._used[key] = used + weight
        reset = entries[0][0] + self.window_s - now
        return True, self.limit - used - weight, max(reset, 0.0)

    def remaining(self, key: str, now: float) -> int:
        self._expire(key, now)
        return max(self.limit - self._used.get(key, 0), 0)

    def reset(self) -> None:
        self._log.clear()
        self._used.clear()


class _ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _error(status: int, message: str, *, code: int | None = None, info: str = ERROR_INFO) -> Response:
    body: dict[str, Any] = {"success": False, "error": message, "error_info": info, "data": None, "additional_data": None}
    if code is not None:
        body["errorCode"] = code
    return Response.json(status, body)


def _bad_request(message: str) -> _ApiError:
    return _ApiError(_error(400, message, code=400))


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


class _Table:
    """One object type: API-shaped records by id, with update/add/delete times in epoch seconds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: dict[int, dict[str, Any]] = {}
        self.update_ts: dict[int, int] = {}
        self.add_ts: dict[int, int] = {}
        self.deleted_ts: dict[int, int] = {}
        self.next_id = 1

    def allocate_id(self) -> int:
        record_id = self.next_id
        self.next_id += 1
        return record_id

    def live(self, record_id: int) -> dict[str, Any] | None:
        if record_id in self.deleted_ts:
            return None
        return self.rows.get(record_id)

    def live_ids(self) -> list[int]:
        return [i for i in self.rows if i not in self.deleted_ts]


class PipedriveSimulator(SimulatorBase):
    """Pipedrive API v2 over real HTTP. See the module docstring and :class:`PipedriveSimConfig`.

    Python-side API for tests: :meth:`records`, :meth:`count`, :meth:`modify`, :meth:`create`,
    :meth:`delete`, :meth:`field_keys`, :meth:`tokens_used`, plus ``clock``, ``faults``, ``stats``,
    :meth:`fail_next` and :meth:`reset_rate_limits`.
    """

    provider = "pipedrive"
    server_name = "pipedrive-simulator"

    def __init__(self, config: PipedriveSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or PipedriveSimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._lock = threading.RLock()
        self._limit_lock = threading.Lock()
        self._tokens = frozenset(cfg.tokens)
        self._burst = _WeightedWindow(cfg.effective_burst_limit, cfg.burst_window_s)
        self._search = _WeightedWindow(cfg.search_burst_limit, cfg.burst_window_s)
        self._tz = ZoneInfo(cfg.company_timezone)
        self._budget_day: date | None = None
        self._spent = 0
        self._spent_total = 0
        self._rng = random.Random(f"{cfg.seed}-mutations")
        self._keys = {path: {name: field_key(path, name, cfg.seed) for name in names} for path, names in CUSTOM_FIELDS.items()}
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        self.reference_ts = int((cfg.reference_time or clock.now()).timestamp())
        self._tables = {path: _Table(path) for path in PATHS}
        self._data = {path: FakeData(f"{cfg.seed}-{path}") for path in PATHS}
        for path in ("organizations", "persons", "deals"):
            self._seed(path, getattr(cfg, path))
        self.webhooks: WebhookEmitter | None = None
        if cfg.webhook_url:
            self.webhooks = WebhookEmitter(
                cfg.webhook_url,
                sign=self._sign_delivery,
                build_body=lambda events: [(json_dumps(e), {}) for e in events],
                on_retry=_bump_attempt,
                batch_max=1,
                max_attempts=cfg.webhook_max_attempts,
                retry_base_s=cfg.webhook_retry_base_s,
                retry_max_s=max(150.0, cfg.webhook_retry_base_s),
            )

    # ---- data --------------------------------------------------------------------------------

    def _seed(self, path: str, count: int) -> None:
        table = self._tables[path]
        rng = self._data[path].rng
        end = self.reference_ts
        start = end - int(self.config.history_days * 86_400)
        for _ in range(count):
            added = start + int(rng.random() * (end - start + 1))
            updated = added + int(rng.random() * (end - added + 1))
            self._insert(table, self._generate(path), added, updated)

    def _generate(self, path: str) -> dict[str, Any]:
        data = self._data[path]
        rng = data.rng
        keys = self._keys[path]
        if path == "persons":
            p = data.person()
            name = " ".join(x for x in (p["first_name"], p["last_name"]) if x)
            custom = {keys["Company"]: p["company"], keys["Job title"]: p["job_title"], keys["Lifecycle stage"]: data.pick(LIFECYCLE),
                      keys["CPF/CNPJ"]: p["document"], keys["crm_record_id"]: None}
            orgs = self._tables["organizations"].live_ids()
            return {
                "name": name, "first_name": p["first_name"], "last_name": p["last_name"],
                "emails": [{"value": p["email"], "primary": True, "label": "work"}] if p["email"] else [],
                "phones": [{"value": p["phone"], "primary": True, "label": "mobile"}] if p["phone"] else [],
                "owner_id": data.pick(OWNER_IDS), "org_id": rng.choice(orgs) if orgs and rng.random() < 0.5 else None,
                "visible_to": 3, "label_ids": [], "custom_fields": custom,
            }
        if path == "organizations":
            o = data.organization()
            address = {"value": f"{o['city']}, {o['country']}", "street_number": None, "route": None, "locality": o["city"],
                       "admin_area_level_1": o["state"], "country": o["country"], "postal_code": None}
            custom = {keys["Domain"]: o["domain"], keys["CPF/CNPJ"]: o["document"], keys["Phone"]: o["phone"], keys["Industry"]: o["industry"], keys["crm_record_id"]: None}
            return {"name": o["name"], "owner_id": data.pick(OWNER_IDS), "address": address, "visible_to": 3, "label_ids": [], "custom_fields": custom}
        d = data.deal()
        stage = rng.choice(list(STAGES))
        status = "open" if stage < 6 else rng.choice(("won", "lost"))
        close = date.fromtimestamp(self.reference_ts) + timedelta(days=rng.randint(-60, 60))
        persons = self._tables["persons"].live_ids()
        return {
            "title": d["name"], "value": float(d["amount"]) if d["amount"] else 0, "currency": d["currency"], "status": status,
            "stage_id": stage, "pipeline_id": 1, "owner_id": data.pick(OWNER_IDS),
            "person_id": rng.choice(persons) if persons and rng.random() < 0.6 else None, "org_id": None,
            "expected_close_date": close.isoformat(), "probability": None, "close_time": None, "won_time": None, "lost_time": None,
            "lost_reason": None, "is_archived": False, "custom_fields": {keys["crm_record_id"]: None},
        }

    def _insert(self, table: _Table, values: dict[str, Any], added: int, updated: int) -> dict[str, Any]:
        record_id = table.allocate_id()
        obj = {"id": record_id, **values, "add_time": iso(added), "update_time": iso(updated), "is_deleted": False}
        table.rows[record_id] = obj
        table.add_ts[record_id] = added
        table.update_ts[record_id] = updated
        return obj

    def _now_ts(self) -> int:
        return int(self.clock.timestamp())

    # ---- routes --------------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        entity = r"/api/v2/(?P<path>persons|organizations|deals)"
        router.add("GET", entity, self._api(self._list, "list"), name="GET /api/v2/{entity}")
        router.add("POST", entity, self._api(self._create, "write"), name="POST /api/v2/{entity}")
        router.add("GET", entity + r"/search", self._api(self._search_endpoint, "search"), name="GET /api/v2/{entity}/search")
        item = entity + r"/(?P<id>[^/]+)"
        router.add("GET", item, self._api(self._get, "get"), name="GET /api/v2/{entity}/{id}")
        router.add("PATCH", item, self._api(self._update, "write"), name="PATCH /api/v2/{entity}/{id}")
        router.add("DELETE", item, self._api(self._delete_endpoint, "delete"), name="DELETE /api/v2/{entity}/{id}")
        router.add("GET", r"/v1/(?P<fields>personFields|organizationFields|dealFields)", self._api(self._fields, "fields"), name="GET /v1/{entity}Fields")

    def not_found_response(self, request: Request) -> Response:
        return _error(404, "Unknown method .", code=404)

    def method_not_allowed_response(self, request: Request) -> Response:
        return _error(405, f"Method {request.method} not allowed", code=405)

    def internal_error_response(self, request: Request) -> Response:
        return _error(500, "Internal server error", code=500)

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            token = self._authenticate(request)
            response = _error(429, self.config.burst_429_error, code=429)
            response.headers.update(self._burst_headers(token, 0, self.config.burst_window_s) if token else {})
            if self.config.retry_after_on_429:
                response.headers["Retry-After"] = str(math.ceil(self.config.burst_window_s))
            return response
        messages = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}
        return _error(status, messages.get(status, f"HTTP {status}"), code=status)

    def _api(self, handler: Callable[[Request], Response], kind: str) -> Callable[[Request], Response]:
        """Wrap a handler with auth, the token budget, burst limits, headers and error mapping."""

        def wrapped(request: Request) -> Response:
            token = self._authenticate(request)
            if token is None:
                return _error(401, "unauthorized access", code=401)
            rejection, headers = self._charge(token, kind)
            if rejection is not None:
                return rejection
            try:
                with self._lock:
                    response = handler(request)
            except _ApiError as exc:
                response = exc.response
            except InvalidJSONBody as exc:
                response = _error(400, f"Invalid JSON body: {exc}", code=400)
            response.headers.update(headers)
            return response

        return wrapped

    # ---- auth and limits ---------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str | None:
        token = (request.header("x-api-token") or "").strip()
        if not token:
            scheme, _, bearer = (request.header("Authorization") or "").partition(" ")
            token = bearer.strip() if scheme.lower() == "bearer" else ""
        if not token and self.config.accept_query_token:
            token = (request.query_value("api_token") or "").strip()
        return token if token in self._tokens else None

    def _roll_budget(self) -> None:
        today = self.clock.now().astimezone(self._tz).date()
        if today != self._budget_day:
            self._budget_day = today
            self._spent = 0

    def _seconds_until_midnight(self) -> float:
        local = self.clock.now().astimezone(self._tz)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=self._tz)
        return max(0.0, (midnight.astimezone(timezone.utc) - local.astimezone(timezone.utc)).total_seconds())

    def _burst_headers(self, token: str | None, remaining: int | None, reset: float) -> dict[str, str]:
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return {}
        import time as _time

        if remaining is None:
            remaining = self._burst.remaining(token or "", _time.monotonic())
        headers = {
            "x-ratelimit-limit": str(cfg.effective_burst_limit),
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(max(1, math.ceil(reset))),
        }
        budget = cfg.effective_daily_budget
        if cfg.send_daily_headers and budget is not None:
            self._roll_budget()
            headers["x-daily-ratelimit-token-limit"] = str(budget)
            headers["x-daily-ratelimit-token-remaining"] = str(max(0, budget - self._spent))
        return headers

    def _charge(self, token: str, kind: str) -> tuple[Response | None, dict[str, str]]:
        """Daily budget, burst and search windows for one call; (429 or None, headers)."""
        import time as _time

        cfg = self.config
        if not cfg.rate_limits_enabled:
            return None, {}
        cost = cfg.token_costs.get(kind, 1)
        weight = cost if cfg.burst_unit == "tokens" else 1
        with self._limit_lock:
            now = _time.monotonic()
            self._roll_budget()
            budget = cfg.effective_daily_budget
            if budget is not None and self._spent + cost > budget:
                self.stats_recorder.record_rate_limited("DAILY")
                response = _error(429, cfg.daily_429_error, code=429)
                response.headers.update(self._burst_headers(token, None, cfg.burst_window_s))
                if cfg.retry_after_on_429:
                    response.headers["Retry-After"] = str(math.ceil(self._seconds_until_midnight()))
                return response, {}
            if kind == "search" and self._search.remaining(token, now) < 1:
                allowed, remaining, reset = self._search.check(token, 1, now)
                return self._over_limit("SEARCH", token, remaining, reset, self.config.search_burst_limit), {}
            allowed, remaining, reset = self._burst.check(token, weight, now)
            if not allowed:
                return self._over_limit("BURST", token, remaining, reset, cfg.effective_burst_limit), {}
            if kind == "search":
                self._search.check(token, 1, now)
            self._spent += cost
            self._spent_total += cost
            headers = self._burst_headers(token, remaining, reset)
            if kind == "search":
                headers.update({"x-ratelimit-limit": str(cfg.search_burst_limit), "x-ratelimit-remaining": str(self._search.remaining(token, now))})
            return None, headers

    def _over_limit(self, policy: str, token: str, remaining: int, reset: float, limit: int) -> Response:
        self.stats_recorder.record_rate_limited(policy)
        response = _error(429, self.config.burst_429_error, code=429)
        headers = self._burst_headers(token, remaining, reset)
        headers["x-ratelimit-limit"] = str(limit)
        response.headers.update(headers)
        if self.config.retry_after_on_429:
            response.headers["Retry-After"] = str(max(1, math.ceil(reset)))
        return response

    def reset_rate_limits(self) -> None:
        """Forget burst and search usage and today's spent tokens."""
        with self._limit_lock:
            self._burst.reset()
            self._search.reset()
            self._spent = 0

    def tokens_used(self) -> int:
        """Tokens charged since start (all days)."""
        with self._limit_lock:
            return self._spent_total

    # ---- helpers -----------------------------------------------------------------------------

    def _table(self, request: Request) -> _Table:
        return self._tables[request.params["path"]]

    def _record_id(self, request: Request) -> int:
        raw = request.params.get("id", "")
        if not raw.isdigit():
            raise _bad_request(f"id must be an integer, got {raw!r}")
        return int(raw)

    def _not_found(self, table: _Table) -> _ApiError:
        return _ApiError(_error(404, f"{PATHS[table.path].capitalize()} not found", code=404))

    def _render(self, table: _Table, obj: dict[str, Any], custom_keys: list[str] | None = None) -> dict[str, Any]:
        out = dict(obj)
        custom = obj.get("custom_fields") or {}
        if custom_keys is not None:
            custom = {k: v for k, v in custom.items() if k in custom_keys}
        out["custom_fields"] = dict(custom)
        return out

    def _timestamp_param(self, request: Request, name: str) -> int | None:
        raw = request.query_value(name)
        if raw in (None, ""):
            return None
        match = _RFC3339.match(raw)
        if not match:
            raise _bad_request(f"{name} must be an RFC3339 date-time such as 2025-01-01T10:20:00Z, got {raw!r}")
        if match.group("frac") and self.config.reject_fractional_seconds:
            raise _bad_request(f"{name} must not have fractional seconds, got {raw!r}")
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())

    def _limit_param(self, request: Request, maximum: int) -> int:
        raw = request.query_value("limit")
        if raw in (None, ""):
            return 100
        if not raw.isdigit() or int(raw) < 1:
            raise _bad_request(f"limit must be a positive integer, got {raw!r}")
        limit = int(raw)
        if limit > maximum:
            if self.config.list_limit_oversize == "reject":
                raise _bad_request(f"limit must not be greater than {maximum}")
            limit = maximum
        return limit

    @staticmethod
    def _encode_cursor(payload: list[Any]) -> str:
        return base64.urlsafe_b64encode(json_dumps(payload)).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(raw: str) -> list[Any]:
        try:
            value = json_loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (ValueError, TypeError):
            raise _bad_request("Invalid cursor") from None
        if not isinstance(value, list) or len(value) < 2:
            raise _bad_request("Invalid cursor")
        return value

    # ---- endpoints -----------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        table = self._table(request)
        limit = self._limit_param(request, LIST_LIMIT_MAX)
        since = self._timestamp_param(request, "updated_since")
        until = self._timestamp_param(request, "updated_until")
        sort_by = request.query_value("sort_by") or "id"
        direction = request.query_value("sort_direction") or "asc"
        if sort_by not in ("id", "update_time", "add_time"):
            raise _bad_request(f"sort_by must be one of id, update_time, add_time, got {sort_by!r}")
        if direction not in ("asc", "desc"):
            raise _bad_request(f"sort_direction must be asc or desc, got {direction!r}")
        statuses = request.query_list("status")
        if table.path == "deals":
            unknown = set(statuses) - {"open", "won", "lost", "deleted"}
            if unknown:
                raise _bad_request(f"status must be open, won, lost or deleted, got {sorted(unknown)}")
        elif statuses:
            raise _bad_request("status is only supported for deals")
        ids = request.query_list("ids")
        if len(ids) > IDS_MAX:
            raise _bad_request(f"ids must not contain more than {IDS_MAX} values")
        if any(not i.isdigit() for i in ids):
            raise _bad_request("ids must be integers")
        custom = request.query_list("custom_fields") or None
        if custom is not None and len(custom) > 15:
            raise _bad_request("custom_fields must not contain more than 15 keys")

        retention = self._now_ts() - self.config.deleted_retention_days * 86_400
        want_deleted = "deleted" in statuses
        live_statuses = set(statuses) - {"deleted"}

        def selected(record_id: int) -> bool:
            obj = table.rows.get(record_id)
            if obj is None:
                return False
            deleted_at = table.deleted_ts.get(record_id)
            if deleted_at is not None:
                if not (want_deleted and deleted_at >= retention):
                    return False
            elif statuses and obj.get("status") not in live_statuses:
                return False
            ts = table.update_ts[record_id]
            return (since is None or ts >= since) and (until is None or ts < until)

        candidates = [int(i) for i in dict.fromkeys(ids)] if ids else list(table.rows)
        key_of: Callable[[int], tuple]
        if sort_by == "id":
            key_of = lambda i: (i,)  # noqa: E731
        elif sort_by == "update_time":
            key_of = lambda i: (table.update_ts[i], i)  # noqa: E731
        else:
            key_of = lambda i: (table.add_ts[i], i)  # noqa: E731
        keys = sorted((key_of(i) for i in candidates if selected(i)), reverse=direction == "desc")
        raw_cursor = request.query_value("cursor")
        if raw_cursor:
            cursor = self._decode_cursor(raw_cursor)
            if cursor[0] != f"{sort_by}:{direction}":
                raise _bad_request("cursor does not belong to this sort order")
            after = tuple(cursor[1:])
            keys = [k for k in keys if (k > after if direction == "asc" else k < after)]
        page = keys[:limit]
        next_cursor = self._encode_cursor([f"{sort_by}:{direction}", *page[-1]]) if len(keys) > limit else None
        data = [self._render(table, table.rows[k[-1]], custom) for k in page]
        return Response.json(200, {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}})

    def _get(self, request: Request) -> Response:
        table = self._table(request)
        record_id = self._record_id(request)
        obj = table.rows.get(record_id)
        if obj is None:
            raise self._not_found(table)
        deleted_at = table.deleted_ts.get(record_id)
        if deleted_at is not None:
            retention = self._now_ts() - self.config.deleted_retention_days * 86_400
            if self.config.deleted_get == "404" or deleted_at < retention:
                raise self._not_found(table)
        return Response.json(200, {"success": True, "data": self._render(table, obj)})

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise _bad_request("Request body must be a JSON object")
        return body

    def _validated(self, table: _Table, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        """The fields a create/update sets, checked like Pipedrive does (400 with a message)."""
        path = table.path
        allowed = {
            "persons": {"name", "first_name", "last_name", "emails", "phones", "owner_id", "org_id", "visible_to", "label_ids", "custom_fields", "add_time"},
            "organizations": {"name", "owner_id", "address", "visible_to", "label_ids", "custom_fields", "add_time"},
            "deals": {"title", "value", "currency", "status", "stage_id", "pipeline_id", "owner_id", "person_id", "org_id", "expected_close_date",
                      "probability", "lost_reason", "visible_to", "label_ids", "custom_fields", "add_time", "close_time", "won_time", "lost_time", "is_archived"},
        }[path]
        unknown = set(body) - allowed
        if unknown:
            raise _bad_request(f"Unknown parameter(s): {', '.join(sorted(unknown))}")
        changes = dict(body)
        if "custom_fields" in changes:
            custom = changes["custom_fields"]
            if not isinstance(custom, dict):
                raise _bad_request("custom_fields must be an object")
            known = set(self._keys[path].values())
            bad = set(custom) - known
            if bad:
                raise _bad_request(f"Custom field(s) not found: {', '.join(sorted(bad))}")
            merged = dict((current or {}).get("custom_fields") or {k: None for k in known})
            merged.update(custom)
            changes["custom_fields"] = merged
        for name in ("emails", "phones"):
            if name in changes:
                values = changes[name] or []
                if not isinstance(values, list) or not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in values):
                    raise _bad_request(f"{name} must be an array of objects with a string value")
                if name == "emails" and self.config.validate_emails:
                    for v in values:
                        if not _EMAIL.match(v["value"].strip()):
                            raise _bad_request(f"Invalid email address: {v['value']}")
                changes[name] = [{"value": v["value"], "primary": bool(v.get("primary")), "label": v.get("label") or "work"} for v in values]
        if path == "persons":
            if "name" not in changes and ("first_name" in changes or "last_name" in changes):
                first = changes.get("first_name", (current or {}).get("first_name"))
                last = changes.get("last_name", (current or {}).get("last_name"))
                changes["name"] = " ".join(x for x in (first, last) if x)
            if "name" in changes and "first_name" not in changes and "last_name" not in changes:
                first, _, last = str(changes["name"] or "").strip().partition(" ")
                changes["first_name"], changes["last_name"] = first or None, last or None
        title_field = "title" if path == "deals" else "name"
        if current is None or title_field in changes:
            value = changes.get(title_field, (current or {}).get(title_field))
            if not isinstance(value, str) or not value.strip():
                raise _bad_request(f"{title_field.capitalize()} must be given")
        if path == "deals":
            if "value" in changes and changes["value"] is not None and not isinstance(changes["value"], (int, float)):
                raise _bad_request("value must be a number")
            if changes.get("stage_id") is not None and changes["stage_id"] not in STAGES:
                raise _bad_request(f"Stage with id {changes['stage_id']} not found")
            if changes.get("pipeline_id") is not None and changes["pipeline_id"] not in PIPELINES:
                raise _bad_request(f"Pipeline with id {changes['pipeline_id']} not found")
            if changes.get("status") is not None and changes["status"] not in ("open", "won", "lost"):
                raise _bad_request("status must be open, won or lost")
            if changes.get("expected_close_date"):
                try:
                    date.fromisoformat(str(changes["expected_close_date"]))
                except ValueError:
                    raise _bad_request("expected_close_date must be YYYY-MM-DD") from None
        return changes

    def _create(self, request: Request) -> Response:
        table = self._table(request)
        changes = self._validated(table, self._body(request), None)
        obj = self._create_record(table, changes, source="api")
        return Response.json(200, {"success": True, "data": self._render(table, obj)})

    def _create_record(self, table: _Table, changes: dict[str, Any], *, source: str) -> dict[str, Any]:
        defaults: dict[str, Any] = {"owner_id": self.config.user_id, "visible_to": 3, "label_ids": [], "custom_fields": {k: None for k in self._keys[table.path].values()}}
        if table.path == "persons":
            defaults |= {"name": None, "first_name": None, "last_name": None, "emails": [], "phones": [], "org_id": None}
        elif table.path == "organizations":
            defaults |= {"name": None, "address": None}
        else:
            defaults |= {"title": None, "value": 0, "currency": "BRL", "status": "open", "stage_id": 1, "pipeline_id": 1, "person_id": None, "org_id": None,
                         "expected_close_date": None, "probability": None, "close_time": None, "won_time": None, "lost_time": None, "lost_reason": None, "is_archived": False}
        now = self._now_ts()
        obj = self._insert(table, defaults | changes, now, now)
        self._emit(table, "create", obj, None, source)
        return obj

    def _update(self, request: Request) -> Response:
        table = self._table(request)
        record_id = self._record_id(request)
        current = table.live(record_id)
        if current is None:
            raise self._not_found(table)
        changes = self._validated(table, self._body(request), current)
        obj = self._apply(table, record_id, changes, source="api")
        return Response.json(200, {"success": True, "data": self._render(table, obj)})

    def _apply(self, table: _Table, record_id: int, changes: dict[str, Any], *, source: str) -> dict[str, Any]:
        obj = table.rows[record_id]
        previous = {k: obj.get(k) for k, v in changes.items() if obj.get(k) != v}
        if previous.get("custom_fields") is not None:
            old, new = previous["custom_fields"], changes["custom_fields"]
            previous["custom_fields"] = {k: old.get(k) for k in new if old.get(k) != new.get(k)}
        obj.update(changes)
        now = self._now_ts()
        obj["update_time"] = iso(now)
        table.update_ts[record_id] = now
        self._emit(table, "change", obj, previous, source)
        return obj

    def _delete_endpoint(self, request: Request) -> Response:
        table = self._table(request)
        record_id = self._record_id(request)
        if table.live(record_id) is None:
            raise self._not_found(table)
        self._delete_record(table, record_id, source="api")
        return Response.json(200, {"success": True, "data": {"id": record_id}})

    def _delete_record(self, table: _Table, record_id: int, *, source: str) -> None:
        obj = table.rows[record_id]
        now = self._now_ts()
        obj["is_deleted"] = True
        obj["update_time"] = iso(now)
        table.update_ts[record_id] = now
        table.deleted_ts[record_id] = now
        self._emit(table, "delete", None, dict(obj), source)

    def _search_endpoint(self, request: Request) -> Response:
        table = self._table(request)
        term = (request.query_value("term") or "").strip()
        exact = (request.query_value("exact_match") or "false").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise _bad_request("Search term must be at least 2 characters long" if not exact else "term must not be empty")
        fields = request.query_list("fields") or list(SEARCH_FIELDS[table.path])
        bad = set(fields) - set(SEARCH_FIELDS[table.path])
        if bad:
            raise _bad_request(f"fields must be among {', '.join(SEARCH_FIELDS[table.path])}, got {', '.join(sorted(bad))}")
        limit = self._limit_param(request, SEARCH_LIMIT_MAX)
        raw_cursor = request.query_value("cursor")
        offset = int(self._decode_cursor(raw_cursor)[1]) if raw_cursor else 0
        folded = term.casefold()

        def hit(value: Any) -> bool:
            if value is None:
                return False
            text = str(value).casefold()
            return text == folded if exact else folded in text

        matches = []
        for record_id in sorted(table.live_ids()):
            obj = table.rows[record_id]
            values: list[Any] = []
            if "custom_fields" in fields:
                values += [v for v in (obj.get("custom_fields") or {}).values()]
            if "email" in fields:
                values += [e["value"] for e in obj.get("emails") or []]
            if "phone" in fields:
                values += [p["value"] for p in obj.get("phones") or []]
            if "name" in fields:
                values.append(obj.get("name"))
            if "title" in fields:
                values.append(obj.get("title"))
            if "address" in fields and isinstance(obj.get("address"), dict):
                values.append(obj["address"].get("value"))
            if any(hit(v) for v in values):
                matches.append(obj)
        page = matches[offset : offset + limit]
        items = [{"result_score": 1.0, "item": self._search_item(table, obj)} for obj in page]
        next_cursor = self._encode_cursor(["offset", offset + limit]) if offset + limit < len(matches) else None
        return Response.json(200, {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": next_cursor}})

    def _search_item(self, table: _Table, obj: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"id": obj["id"], "type": PATHS[table.path], "owner": {"id": obj.get("owner_id")}, "visible_to": obj.get("visible_to"),
                                "custom_fields": [str(v) for v in (obj.get("custom_fields") or {}).values() if v not in (None, "")], "notes": []}
        if table.path == "persons":
            item |= {"name": obj.get("name"), "emails": [e["value"] for e in obj.get("emails") or []], "phones": [p["value"] for p in obj.get("phones") or []],
                     "organization": {"id": obj["org_id"]} if obj.get("org_id") else None}
        elif table.path == "organizations":
            item |= {"name": obj.get("name"), "address": (obj.get("address") or {}).get("value")}
        else:
            item |= {"title": obj.get("title"), "value": obj.get("value"), "currency": obj.get("currency"), "status": obj.get("status")}
        return item

    def _fields(self, request: Request) -> Response:
        path = FIELDS_PATHS[request.params["fields"]]
        standard = {"persons": ("name", "email", "phone", "org_id", "owner_id"), "organizations": ("name", "address", "owner_id"),
                    "deals": ("title", "value", "currency", "stage_id", "pipeline_id", "expected_close_date", "owner_id")}[path]
        data = [{"id": n + 1, "key": key, "name": key.replace("_", " ").capitalize(), "field_type": "varchar", "edit_flag": False} for n, key in enumerate(standard)]
        data += [{"id": 9000 + n, "key": key, "name": name, "field_type": CUSTOM_FIELDS[path][name], "edit_flag": True}
                 for n, (name, key) in enumerate(self._keys[path].items())]
        start = int(request.query_value("start") or 0)
        limit = self._limit_param(request, 500)
        page = data[start : start + limit]
        more = start + limit < len(data)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return Response.json(200, {"success": True, "data": page, "additional_data": {"pagination": pagination}})

    # ---- webhooks ------------------------------------------------------------------------------

    def _emit(self, table: _Table, action: str, data: dict[str, Any] | None, previous: dict[str, Any] | None, source: str) -> None:
        if self.webhooks is None:
            return
        cfg = self.config
        obj = data if data is not None else previous or {}
        entity = PATHS[table.path]
        host = f"{cfg.company_domain}.pipedrive.com"
        if cfg.webhook_version == "2.0":
            event = {
                "meta": {
                    "action": action, "entity": entity, "entity_id": str(obj.get("id")), "id": str(uuid.uuid4()),
                    "company_id": str(cfg.company_id), "user_id": str(cfg.user_id), "correlation_id": str(uuid.uuid4()),
                    "is_bulk_edit": False, "timestamp": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "type": "general", "version": "2.0", "webhook_id": "55", "webhook_owner_id": str(cfg.user_id),
                    "change_source": source, "attempt": 1, "host": host, "permitted_user_ids": [str(cfg.user_id)],
                },
                "data": None if action == "delete" else dict(data or {}),
                "previous": None if action == "create" else dict(previous or {}),
            }
        else:
            legacy = {"create": "added", "change": "updated", "delete": "deleted"}[action]
            now = self.clock.timestamp()
            current = None if action == "delete" else {**(data or {}), "active_flag": True}
            event = {
                "v": 1, "matches_filters": {"current": [], "previous": []},
                "meta": {"v": 1, "action": legacy, "object": entity, "id": obj.get("id"), "company_id": cfg.company_id, "user_id": cfg.user_id,
                         "host": host, "timestamp": int(now), "timestamp_micro": int(now * 1_000_000), "permitted_user_ids": [cfg.user_id],
                         "trans_pending": False, "is_bulk_update": False, "webhook_id": "55"},
                "retry": 0, "current": current, "previous": None if action == "create" else dict(previous or {}), "event": f"{legacy}.{entity}",
            }
        self.webhooks.enqueue(event)

    def _sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        if self.config.webhook_user and self.config.webhook_password:
            from crm_pipelines.webhooks.signatures import sign_pipedrive

            return {"Authorization": sign_pipedrive(self.config.webhook_user, self.config.webhook_password)}
        return {}

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.flush(timeout_s=5)
        super().stop()
        if self.webhooks is not None:
            self.webhooks.stop()

    # ---- Python-side API -------------------------------------------------------------------------

    def _entity_table(self, entity: str) -> _Table:
        path = ENTITY_OF.get(entity)
        if path is None:
            raise ValueError(f"unknown entity {entity!r}; expected persons, organizations or deals")
        return self._tables[path]

    def field_keys(self, entity: str) -> dict[str, str]:
        """Custom field name -> 40-character key."""
        return dict(self._keys[self._entity_table(entity).path])

    def records(self, entity: str, deleted: bool = False) -> dict[str, dict[str, Any]]:
        """id -> API-shaped object, for live (or deleted) records."""
        table = self._entity_table(entity)
        with self._lock:
            ids = list(table.deleted_ts) if deleted else table.live_ids()
            return {str(i): self._render(table, table.rows[i]) for i in ids}

    def count(self, entity: str, deleted: bool = False) -> int:
        table = self._entity_table(entity)
        with self._lock:
            return len(table.deleted_ts) if deleted else len(table.rows) - len(table.deleted_ts)

    def modify(self, entity: str, n: int | None = None, ids: Iterable[str | int] | None = None) -> list[str]:
        """Change a field or two of ``n`` seeded-random live records (or of ``ids``), stamped now."""
        table = self._entity_table(entity)
        with self._lock:
            if ids is not None:
                chosen = [int(i) for i in ids]
                for record_id in chosen:
                    if table.live(record_id) is None:
                        raise KeyError(f"{table.path} {record_id} does not exist or is deleted")
            else:
                chosen = self._rng.sample(table.live_ids(), min(1 if n is None else n, len(table.rows) - len(table.deleted_ts)))
            data = self._data[table.path]
            keys = self._keys[table.path]
            for record_id in chosen:
                obj = table.rows[record_id]
                if table.path == "persons":
                    custom = dict(obj["custom_fields"]) | {keys["Job title"]: data.job_title() or "Consultor"}
                    changes: dict[str, Any] = {"custom_fields": custom, "phones": [{"value": data.phone(), "primary": True, "label": "mobile"}]}
                elif table.path == "organizations":
                    changes = {"custom_fields": dict(obj["custom_fields"]) | {keys["Industry"]: data.industry(), keys["Phone"]: data.phone()}}
                else:
                    changes = {"value": float(data.amount()), "stage_id": self._rng.choice(list(STAGES)[:5])}
                self._apply(table, record_id, changes, source="app")
            return [str(i) for i in chosen]

    def create(self, entity: str, n: int = 1) -> list[str]:
        """Create ``n`` generated records stamped with the simulated now; returns their ids."""
        table = self._entity_table(entity)
        with self._lock:
            return [str(self._create_record(table, self._generate(table.path), source="app")["id"]) for _ in range(n)]

    def delete(self, entity: str, target: int | Iterable[str | int]) -> list[str]:
        """Delete ``target`` ids, or ``target`` seeded-random live records when it is an int."""
        table = self._entity_table(entity)
        with self._lock:
            if isinstance(target, int):
                chosen = self._rng.sample(table.live_ids(), min(target, len(table.rows) - len(table.deleted_ts)))
            else:
                chosen = [int(i) for i in ([target] if isinstance(target, str) else target)]
            done = []
            for record_id in chosen:
                if table.live(record_id) is not None:
                    self._delete_record(table, record_id, source="app")
                    done.append(str(record_id))
            return done

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.apply_mutation(spec, check_entity=self._entity_table)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            counts = {path: {"live": len(t.rows) - len(t.deleted_ts), "deleted": len(t.deleted_ts)} for path, t in self._tables.items()}
        return {"objects": counts, "rate_limits_enabled": self.config.rate_limits_enabled, "plan": self.config.plan,
                "burst_limit": self.config.effective_burst_limit, "burst_unit": self.config.burst_unit,
                "daily_token_budget": self.config.effective_daily_budget, "tokens_used": self.tokens_used()}

    # ---- command line ----------------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--persons", type=int, default=1000)
        parser.add_argument("--organizations", type=int, default=100)
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--history-days", type=float, default=30.0)
        parser.add_argument("--reference-time", default=None, help="ISO-8601 instant the seeded data ends at")
        parser.add_argument("--plan", choices=sorted(PLANS), default="lite")
        parser.add_argument("--seats", type=int, default=1)
        parser.add_argument("--burst-limit", type=int, default=None, help="override the plan's burst limit per 2 s")
        parser.add_argument("--burst-unit", choices=("requests", "tokens"), default="requests")
        parser.add_argument("--daily-token-budget", type=int, default=None, help="override the plan's budget; 0 disables it")
        parser.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
        parser.add_argument("--no-rate-limits", action="store_true", help="turn every rate limit off")
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--webhook-user", default=None)
        parser.add_argument("--webhook-password", default=None)

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> PipedriveSimulator:
        config = PipedriveSimConfig(
            seed=args.seed, persons=args.persons, organizations=args.organizations, deals=args.deals, history_days=args.history_days,
            reference_time=parse_datetime(args.reference_time) if args.reference_time else None,
            tokens=tuple(args.token) if args.token else (DEFAULT_TOKEN,), plan=args.plan, seats=args.seats, burst_limit=args.burst_limit,
            burst_unit=args.burst_unit, daily_token_budget=args.daily_token_budget, retry_after_on_429=args.retry_after,
            rate_limits_enabled=not args.no_rate_limits, faults=args.faults,
            webhook_url=args.webhook_url, webhook_user=args.webhook_user, webhook_password=args.webhook_password,
        )
        return cls(config, host=args.host, port=args.port)


def _bump_attempt(events: list[dict[str, Any]], attempt: int) -> None:
    for event in events:
        if isinstance(event.get("meta"), dict) and "attempt" in event["meta"]:
            event["meta"]["attempt"] = attempt + 1
        if "retry" in event:
            event["retry"] = attempt


__all__ = ["DEFAULT_TOKEN", "PipedriveSimConfig", "PipedriveSimulator", "field_key"]
