"""Local HubSpot CRM v3 simulator (contacts, companies, deals) served over real HTTP.

Reproduces the parts of ``api.hubapi.com`` a sync client meets: object listing with ``after``
cursors, single-object reads and writes, the search endpoint (filter groups, operators, one sort,
200-per-page and 10,000-total caps, its own per-second limiter and no rate-limit headers), batch
read/create/update/upsert/archive with 207 partial failures, the ten-second burst and daily limits
with the ``X-HubSpot-RateLimit-*`` headers and 429 bodies, and HubSpot's error bodies.

Facts that the provider reference marks as unconfirmed are switches on :class:`HubSpotSimConfig`
(list ``limit`` > 100 clamped or rejected, search ``limit`` > 200 clamped or rejected, filter-count
limits, search rate and its scope, ISO dates in search filters, ``Retry-After`` on 429s, daily
headers, the daily-limit scope and time zone).

Choices where the reference is silent: search pages never reach past ``search_total_cap`` (a page
is cut short at the cap, and when more matches exist it still carries ``paging.next.after`` equal
to the cap); a request whose ``after`` is at or beyond the cap gets 400 ``VALIDATION_ERROR``.
``total`` is always the real number of matches. Writes made by one request share one timestamp
(the simulated now). Batch results are shuffled with a seeded RNG. Injected faults never consume
rate-limit budget.

Data is stored compactly: one ``__slots__`` row per record holding its id, creation, modification
and archive times (epoch ms) and a list of property values aligned with the object's schema.
Search on the modification-date property uses a sorted index of ``(modified_ms << 44) | id``.
"""

from __future__ import annotations

import argparse
import bisect
import fnmatch
import gc
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.webhooks import WebhookEmitter
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import (
    FaultConfig,
    InvalidJSONBody,
    Request,
    Response,
    Router,
    SimClock,
    SimulatorBase,
    json_dumps,
    parse_datetime,
    utc_iso_ms,
)

DEFAULT_TOKEN = "sim-hubspot-token"
ENTITIES = ("contacts", "companies", "deals")
OBJECT_TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals"}
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL"}

LIST_LIMIT_MAX = 100
BATCH_INPUT_MAX = 100
SEARCH_QUERY_MAX_CHARS = 3000
ID_BITS = 44
ID_MASK = (1 << ID_BITS) - 1
DAY_MS = 86_400_000

LIFECYCLE_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
    "evangelist", "other",
)
DEAL_STAGES = (
    "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
    "contractsent", "closedwon", "closedlost",
)
PIPELINES = ("default",)
OWNER_IDS = ("90210001", "90210002", "90210003", "90210004", "90210005")

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

SEARCH_OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})
_RANGE_OPERATORS = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_TOKEN_SPLIT = re.compile(r"[\s,;:()\[\]{}<>\"'|/\\]+")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


#: Custom unique-value property that integrations create in a portal to key their own records
#: (crm_pipelines keys its creates with it, so a repeated upsert never creates a duplicate).
INTEGRATION_ID_PROPERTY = "crm_record_id"


def _default_id_properties() -> dict[str, tuple[str, ...]]:
    return {"contacts": ("email", INTEGRATION_ID_PROPERTY), "companies": (INTEGRATION_ID_PROPERTY,), "deals": (INTEGRATION_ID_PROPERTY,)}


@dataclass
class HubSpotSimConfig:
    """Everything the HubSpot simulator can be told; every field has a working default.

    Data: ``seed``, ``contacts``/``companies``/``deals`` counts, ``history_days`` (seeded records
    were created and last modified within this many days before ``reference_time``),
    ``reference_time`` (``None`` = now; set it for fully reproducible data). The simulated clock
    starts at ``clock_start``, else at ``reference_time``, else at the wall clock.

    Limits: ``burst_limit`` per ``burst_window_s`` per token, ``daily_limit`` per
    ``daily_limit_scope`` ("account" or "token"; ``None`` disables it) resetting at midnight in
    ``account_timezone``; search ``search_rate_per_s`` per ``search_rate_scope``;
    ``rate_limits_enabled=False`` turns every limit (and the rate-limit headers) off.

    Unconfirmed provider facts, as switches: ``list_limit_oversize`` / ``search_limit_oversize``
    ("clamp" or "reject"), ``search_max_groups`` / ``search_max_filters_per_group`` /
    ``search_max_filters_total``, ``search_429_policy_name``, ``search_accept_iso_dates``,
    ``retry_after_on_429``, ``send_daily_headers``, ``search_counts_toward_daily``.

    ``search_visibility_delay_s`` imitates the search index lag (records modified less than this
    many simulated seconds ago are not yet returned by search; 0 = immediately visible).
    ``id_properties`` lists the properties usable as ``idProperty`` besides ``hs_object_id``.
    ``token_scopes`` (token -> granted scopes such as ``crm.objects.contacts.read``) restricts
    tokens; a token without an entry, or ``None`` for the whole mapping, has every scope.

    Webhooks: with ``webhook_url`` set, every creation, property change and deletion (through
    the API or the Python methods) is delivered there as HubSpot does: JSON arrays of up to
    ``webhook_batch_max`` events, signed v1 and v3 with ``webhook_client_secret``, retried up to
    ``webhook_max_attempts`` times with a growing delay and an incremented ``attemptNumber``.
    """

    seed: int = 1
    contacts: int = 100
    companies: int = 20
    deals: int = 40
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)

    rate_limits_enabled: bool = True
    burst_limit: int = 100
    burst_window_s: float = 10.0
    daily_limit: int | None = 250_000
    daily_limit_scope: str = "account"
    account_timezone: str = "UTC"
    send_daily_headers: bool = True
    retry_after_on_429: bool = False

    search_rate_per_s: int = 5
    search_rate_scope: str = "token"
    search_429_policy_name: str = "SECONDLY"
    search_counts_toward_daily: bool = True
    search_limit_max: int = 200
    search_limit_oversize: str = "reject"
    search_total_cap: int = 10_000
    search_max_groups: int = 5
    search_max_filters_per_group: int = 6
    search_max_filters_total: int = 18
    search_accept_iso_dates: bool = True
    search_visibility_delay_s: float = 0.0

    list_limit_oversize: str = "clamp"
    batch_input_max: int = BATCH_INPUT_MAX
    validate_enumerations: bool = True
    id_properties: dict[str, tuple[str, ...]] = field(default_factory=_default_id_properties)
    token_scopes: dict[str, tuple[str, ...]] | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    webhook_url: str | None = None
    webhook_client_secret: str = "sim-hubspot-client-secret"
    webhook_app_id: int = 54321
    webhook_portal_id: int = 62515
    webhook_batch_max: int = 100
    webhook_max_attempts: int = 10
    webhook_retry_base_s: float = 0.5

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent settings."""
        for name in ("contacts", "companies", "deals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.list_limit_oversize not in ("clamp", "reject") or self.search_limit_oversize not in ("clamp", "reject"):
            raise ValueError("list_limit_oversize/search_limit_oversize must be 'clamp' or 'reject'")
        if self.daily_limit_scope not in ("account", "token") or self.search_rate_scope not in ("account", "token"):
            raise ValueError("daily_limit_scope/search_rate_scope must be 'account' or 'token'")
        if not self.tokens:
            raise ValueError("at least one token is required")
        self.faults.validate()


# --------------------------------------------------------------------------------------------
# Schemas and storage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    """Static facts about one object type."""

    entity: str
    delta_property: str
    stored: tuple[str, ...]
    default_properties: tuple[str, ...]
    required_any: tuple[str, ...] = ()
    required_all: tuple[str, ...] = ()
    read_only_stored: frozenset[str] = frozenset()
    numeric: frozenset[str] = frozenset()
    stored_dates: frozenset[str] = frozenset()
    text_search: tuple[str, ...] = ()
    enumerations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def synthesized(self) -> tuple[str, ...]:
        """Properties computed from the row itself (id and timestamps)."""
        return ("hs_object_id", "createdate", self.delta_property)

    @property
    def all_properties(self) -> tuple[str, ...]:
        return self.stored + self.synthesized

    def kind(self, name: str) -> str:
        """``date``, ``number`` or ``string``: how search compares the property."""
        if name in ("createdate", self.delta_property) or name in self.stored_dates:
            return "date"
        if name == "hs_object_id" or name in self.numeric:
            return "number"
        return "string"


SCHEMAS: dict[str, _Schema] = {
    "contacts": _Schema(
        entity="contacts",
        delta_property="lastmodifieddate",
        stored=(
            "email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle", "lifecyclestage",
            "hubspot_owner_id", "hs_additional_emails", "city", "state", "country", "cpf_cnpj",
            INTEGRATION_ID_PROPERTY,
        ),
        default_properties=("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        required_any=("email", "firstname", "lastname"),
        numeric=frozenset({"hubspot_owner_id"}),
        text_search=("firstname", "lastname", "email", "phone", "mobilephone", "company"),
        enumerations={"lifecyclestage": LIFECYCLE_STAGES},
    ),
    "companies": _Schema(
        entity="companies",
        delta_property="hs_lastmodifieddate",
        stored=(
            "name", "domain", "hs_additional_domains", "phone", "industry", "city", "state", "country",
            "hubspot_owner_id", "cpf_cnpj", INTEGRATION_ID_PROPERTY,
        ),
        default_properties=("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        required_any=("name", "domain"),
        numeric=frozenset({"hubspot_owner_id"}),
        text_search=("name", "domain", "phone"),
    ),
    "deals": _Schema(
        entity="deals",
        delta_property="hs_lastmodifieddate",
        stored=(
            "dealname", "amount", "dealstage", "pipeline", "closedate", "hubspot_owner_id", "deal_currency_code",
            "hs_is_closed", "hs_is_closed_won", INTEGRATION_ID_PROPERTY,
        ),
        default_properties=(
            "amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id",
            "pipeline",
        ),
        required_all=("dealname", "dealstage", "pipeline"),
        read_only_stored=frozenset({"hs_is_closed", "hs_is_closed_won"}),
        numeric=frozenset({"amount", "hubspot_owner_id"}),
        stored_dates=frozenset({"closedate"}),
        text_search=("dealname",),
        enumerations={"dealstage": DEAL_STAGES, "pipeline": PIPELINES},
    ),
}

ID_BASES = {"contacts": 1_001, "companies": 5_000_000_001, "deals": 9_000_000_001}


class _Row:
    """One stored record: id, timestamps (epoch ms) and schema-aligned property values."""

    __slots__ = ("id", "created_ms", "updated_ms", "archived_ms", "values")

    def __init__(self, id_: int, created_ms: int, updated_ms: int, values: list[str | None]) -> None:
        self.id = id_
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived_ms: int | None = None
        self.values = values


class _ObjectStore:
    """Rows of one object type plus the id lists and indexes the endpoints need.

    Not thread-safe by itself; the simulator serializes access with its lock.
    """

    def __init__(self, schema: _Schema, data: FakeData, id_rng: random.Random) -> None:
        self.schema = schema
        self.data = data
        self.id_rng = id_rng
        self.slot = {name: i for i, name in enumerate(schema.stored)}
        self.rows: dict[int, _Row] = {}
        self.live_ids: list[int] = []
        self.archived_ids: list[int] = []
        self.delta_index: list[int] = []
        self.next_id = ID_BASES[schema.entity]
        self._unique: dict[str, dict[str, int]] = {}
        #: Called as ``listener(kind, row, changes)`` on creation, property change and deletion
        #: (set once the seeded data exists, so generation emits nothing).
        self.listener: Callable[[str, _Row, Mapping[str, str | None]], None] | None = None

    def fit(self, values: list[str | None]) -> list[str | None]:
        """Pad generated values with ``None`` for schema properties the generator does not fill."""
        missing = len(self.schema.stored) - len(values)
        if missing > 0:
            values.extend([None] * missing)
        return values

    # ---- ids and indexes ------------------------------------------------------------------

    def allocate_id(self) -> int:
        """A new id above every existing one (with small random gaps, as in HubSpot)."""
        new_id = self.next_id
        self.next_id += 1 + int(self.id_rng.random() * 3)
        return new_id

    def value(self, row: _Row, name: str) -> str | None:
        slot = self.slot.get(name)
        if slot is not None:
            return row.values[slot]
        if name == "hs_object_id":
            return str(row.id)
        if name == "createdate":
            return utc_iso_ms(row.created_ms)
        if name == self.schema.delta_property:
            return utc_iso_ms(row.updated_ms)
        return None

    def unique_index(self, name: str) -> dict[str, int]:
        """Lower-cased value -> id over live rows (built on first use, then maintained)."""
        index = self._unique.get(name)
        if index is None:
            index = {}
            slot = self.slot[name]
            for row_id in self.live_ids:
                value = self.rows[row_id].values[slot]
                if value:
                    index.setdefault(value.lower(), row_id)
            self._unique[name] = index
        return index

    def find_by(self, name: str, value: str) -> _Row | None:
        """The live row whose ``name`` equals ``value`` (``hs_object_id`` or an indexed property)."""
        if name == "hs_object_id":
            row = self.rows.get(int(value)) if value.isdigit() else None
            return row if row is not None and row.archived_ms is None else None
        row_id = self.unique_index(name).get(value.lower())
        return None if row_id is None else self.rows[row_id]

    def _unindex_values(self, row: _Row) -> None:
        for name, index in self._unique.items():
            value = row.values[self.slot[name]]
            if value and index.get(value.lower()) == row.id:
                del index[value.lower()]

    def _index_values(self, row: _Row) -> None:
        for name, index in self._unique.items():
            value = row.values[self.slot[name]]
            if value:
                index.setdefault(value.lower(), row.id)

    # ---- writes ---------------------------------------------------------------------------

    def insert(self, row: _Row) -> None:
        """Add a new live row (its id must exceed every existing id)."""
        self.rows[row.id] = row
        self.live_ids.append(row.id)
        bisect.insort(self.delta_index, (row.updated_ms << ID_BITS) | row.id)
        self._index_values(row)
        if self.listener is not None:
            self.listener("creation", row, {n: v for n, v in zip(self.schema.stored, row.values) if v is not None})

    def update(self, row: _Row, changes: Mapping[str, str | None], now_ms: int) -> None:
        """Apply property changes and move the row to ``now_ms`` in the delta index."""
        self._unindex_values(row)
        changed = {name: value for name, value in changes.items() if row.values[self.slot[name]] != value}
        for name, value in changes.items():
            row.values[self.slot[name]] = value
        self._index_values(row)
        self.touch(row, now_ms)
        if self.listener is not None and changed:
            self.listener("propertyChange", row, changed)

    def touch(self, row: _Row, now_ms: int) -> None:
        """Set the row's modification time, keeping the delta index sorted."""
        old_key = (row.updated_ms << ID_BITS) | row.id
        position = bisect.bisect_left(self.delta_index, old_key)
        if position < len(self.delta_index) and self.delta_index[position] == old_key:
            del self.delta_index[position]
        row.updated_ms = now_ms
        bisect.insort(self.delta_index, (now_ms << ID_BITS) | row.id)

    def archive(self, row: _Row, now_ms: int) -> None:
        """Move a live row to the archive (recycle bin)."""
        if row.archived_ms is not None:
            return
        self._unindex_values(row)
        key = (row.updated_ms << ID_BITS) | row.id
        position = bisect.bisect_left(self.delta_index, key)
        if position < len(self.delta_index) and self.delta_index[position] == key:
            del self.delta_index[position]
        position = bisect.bisect_left(self.live_ids, row.id)
        if position < len(self.live_ids) and self.live_ids[position] == row.id:
            del self.live_ids[position]
        bisect.insort(self.archived_ids, row.id)
        row.archived_ms = now_ms
        if self.listener is not None:
            self.listener("deletion", row, {})


class _ApiError(Exception):
    """Raised inside handlers to answer with a ready HubSpot error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": _correlation_id(), "category": category}
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    return Response.json(status, _error_body(message, category, **extra))


def _validation_error(message: str, **extra: Any) -> _ApiError:
    return _ApiError(_error(400, message, "VALIDATION_ERROR", **extra))


@dataclass
class _Filter:
    """One compiled search filter."""

    prop: str
    operator: str
    kind: str
    value: Any = None
    high: Any = None
    values: tuple[Any, ...] = ()


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


class HubSpotSimulator(SimulatorBase):
    """HubSpot CRM v3 over real HTTP. See the module docstring and :class:`HubSpotSimConfig`.

    Python-side API for tests in the same process: :meth:`records`, :meth:`count`,
    :meth:`modify`, :meth:`create`, :meth:`archive`, plus ``clock``, ``faults``, ``stats``,
    :meth:`reset_stats`, :meth:`fail_next` and :meth:`reset_rate_limits` from the base class.
    """

    provider = "hubspot"
    server_name = "hubspot-simulator"

    def __init__(self, config: HubSpotSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or HubSpotSimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._lock = threading.RLock()
        self._limit_lock = threading.Lock()
        self._tokens = frozenset(cfg.tokens)
        self._burst = SlidingWindowLimiter(cfg.burst_limit, cfg.burst_window_s)
        self._daily = DailyCounter(cfg.daily_limit, clock.now, tz=ZoneInfo(cfg.account_timezone))
        self._search_limiter = SlidingWindowLimiter(max(1, cfg.search_rate_per_s), 1.0)
        self._mutation_rng = random.Random(f"{cfg.seed}-mutations")
        self._shuffle_rng = random.Random(f"{cfg.seed}-shuffle")
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        reference = cfg.reference_time or clock.now()
        self.reference_ms = int(reference.timestamp() * 1000)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small acyclic objects: collection passes would only cost time
        try:
            self._stores = {entity: self._generate(entity) for entity in ENTITIES}
        finally:
            if gc_was_enabled:
                gc.enable()
        self.webhooks: WebhookEmitter | None = None
        self._event_ids = iter(range(1, 1 << 62))
        if cfg.webhook_url:
            self.webhooks = WebhookEmitter(
                cfg.webhook_url,
                sign=self._sign_delivery,
                build_body=lambda events: [(json_dumps(events), {})],
                on_retry=_bump_attempt_numbers,
                batch_max=cfg.webhook_batch_max,
                max_attempts=cfg.webhook_max_attempts,
                retry_base_s=cfg.webhook_retry_base_s,
            )
            for entity, store in self._stores.items():
                store.listener = self._webhook_listener(entity)

    # ---- data generation ------------------------------------------------------------------

    def _generate(self, entity: str) -> _ObjectStore:
        cfg = self.config
        data = FakeData(f"{cfg.seed}-{entity}")
        store = _ObjectStore(SCHEMAS[entity], data, random.Random(f"{cfg.seed}-{entity}-ids"))
        count = getattr(cfg, entity)
        end_ms = self.reference_ms
        start_ms = end_ms - int(cfg.history_days * DAY_MS)
        rng = data.rng
        build = {"contacts": self._seed_contact, "companies": self._seed_company, "deals": self._seed_deal}[entity]
        rows = store.rows
        live_ids = store.live_ids
        keys = []
        for _ in range(count):
            created = start_ms + int(rng.random() * (end_ms - start_ms + 1))
            updated = created + int(rng.random() * (end_ms - created + 1))
            row = _Row(store.allocate_id(), created, updated, store.fit(build(data, rng)))
            rows[row.id] = row
            live_ids.append(row.id)
            keys.append((updated << ID_BITS) | row.id)
        keys.sort()
        store.delta_index = keys
        return store

    @staticmethod
    def _seed_contact(data: FakeData, rng: random.Random) -> list[str | None]:
        person = data.person()
        return [
            person["email"], person["first_name"], person["last_name"], person["phone"], person["mobile"],
            person["company"], person["job_title"], data.pick(LIFECYCLE_STAGES),
            data.pick(OWNER_IDS) if rng.random() < 0.8 else None, None,
            person["city"], person["state"], person["country"], person["document"],
        ]

    @staticmethod
    def _seed_company(data: FakeData, rng: random.Random) -> list[str | None]:
        org = data.organization()
        return [
            org["name"], org["domain"], None, org["phone"], org["industry"], org["city"], org["state"],
            org["country"], data.pick(OWNER_IDS) if rng.random() < 0.8 else None, org["document"],
        ]

    def _seed_deal(self, data: FakeData, rng: random.Random) -> list[str | None]:
        deal = data.deal()
        stage = data.pick(DEAL_STAGES)
        close_ms = self.reference_ms + int((rng.random() - 0.5) * 120 * DAY_MS)
        return [
            deal["name"], deal["amount"], stage, "default", utc_iso_ms(close_ms),
            data.pick(OWNER_IDS) if rng.random() < 0.8 else None, deal["currency"],
            *_closed_flags(stage),
        ]

    # ---- routes ---------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        obj = r"/crm/v3/objects/(?P<obj>[^/]+)"
        router.add("GET", obj, self._api(self._list), name="GET /crm/v3/objects/{obj}")
        router.add("POST", obj, self._api(self._create_one, write=True), name="POST /crm/v3/objects/{obj}")
        router.add("POST", obj + r"/search", self._api(self._search, search=True), name="POST /crm/v3/objects/{obj}/search")
        for op in ("read", "create", "update", "upsert", "archive"):
            handler = self._api(getattr(self, f"_batch_{op}"), write=op != "read")
            router.add("POST", obj + rf"/batch/{op}", handler, name=f"POST /crm/v3/objects/{{obj}}/batch/{op}")
        router.add("POST", obj + r"/merge", self._api(self._merge_endpoint, write=True), name="POST /crm/v3/objects/{obj}/merge")
        item = obj + r"/(?P<id>[^/]+)"
        router.add("GET", item, self._api(self._get_one), name="GET /crm/v3/objects/{obj}/{id}")
        router.add("PATCH", item, self._api(self._update_one, write=True), name="PATCH /crm/v3/objects/{obj}/{id}")
        router.add("DELETE", item, self._api(self._delete_one, write=True), name="DELETE /crm/v3/objects/{obj}/{id}")

    def not_found_response(self, request: Request) -> Response:
        return _error(404, f"Unknown path: {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def method_not_allowed_response(self, request: Request) -> Response:
        return _error(405, f"HTTP method {request.method} is not supported by this resource", "METHOD_NOT_ALLOWED")

    def internal_error_response(self, request: Request) -> Response:
        return _error(500, "internal error", "INTERNAL_ERROR")

    def fault_response(self, status: int, request: Request) -> Response:
        """Injected answers with HubSpot-style bodies: a TEN_SECONDLY_ROLLING 429 (with the
        rate-limit headers when the request carries a valid token), 423, 477 (with
        ``Retry-After``) and 5xx."""
        if status == 429:
            token = self._authenticate(request)
            headers = self._usage_headers(token, 0) if token is not None else {}
            return self._rate_limited("TEN_SECONDLY_ROLLING", headers, retry_after=self.config.burst_window_s)
        messages = {
            423: ("Too much data was synced too fast; wait at least 2 seconds before retrying.", "LOCKED"),
            477: ("A migration of this account is in progress; retry later.", "MIGRATION_IN_PROGRESS"),
            500: ("internal error", "INTERNAL_ERROR"),
            502: ("Bad Gateway: the upstream service did not answer in time.", "BAD_GATEWAY"),
            503: ("Service Unavailable: please retry later.", "SERVICE_UNAVAILABLE"),
            504: ("Gateway Timeout: the request took too long.", "GATEWAY_TIMEOUT"),
        }
        message, category = messages.get(status, (f"HTTP {status}", "UNKNOWN_ERROR"))
        response = _error(status, message, category)
        if status == 477:
            response.headers["Retry-After"] = "2"
        return response

    def _api(self, handler: Any, *, search: bool = False, write: bool = False) -> Any:
        """Wrap a handler with auth, rate limiting, scopes, rate-limit headers and error mapping."""

        def wrapped(request: Request) -> Response:
            token = self._authenticate(request)
            if token is None:
                return _error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
            rejection, headers = (self._gate_search(token) if search else self._gate(token))
            if rejection is not None:
                return rejection
            try:
                self._check_scope(token, request.params.get("obj", ""), write)
                response = handler(request)
            except _ApiError as exc:
                response = exc.response
            except InvalidJSONBody as exc:
                response = _error(400, f"Invalid input JSON: {exc}", "VALIDATION_ERROR")
            response.headers.update(headers)
            return response

        return wrapped

    # ---- auth and limits --------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str | None:
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token not in self._tokens:
            return None
        return token

    def _check_scope(self, token: str, obj: str, write: bool) -> None:
        """403 MISSING_SCOPES when ``token_scopes`` restricts this token and lacks the scope."""
        granted = None if self.config.token_scopes is None else self.config.token_scopes.get(token)
        entity = OBJECT_TYPE_IDS.get(obj, obj)
        if granted is None or entity not in self._stores:
            return
        required = f"crm.objects.{entity}.{'write' if write else 'read'}"
        if required not in granted:
            raise _ApiError(_error(
                403,
                "This app hasn't been granted all required scopes to make this call. "
                "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.", "context": {"requiredGranularScopes": [required]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            ))

    def _daily_key(self, token: str) -> str:
        return token if self.config.daily_limit_scope == "token" else "account"

    def _usage_headers(self, token: str | None, remaining: int | None) -> dict[str, str]:
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return {}
        if remaining is None:
            remaining = self._burst.remaining(token) if token is not None else 0
        headers = {
            "X-HubSpot-RateLimit-Max": str(cfg.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, remaining)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(cfg.burst_window_s * 1000)),
        }
        if cfg.send_daily_headers and cfg.daily_limit is not None:
            daily_remaining = self._daily.remaining(self._daily_key(token)) if token is not None else 0
            headers["X-HubSpot-RateLimit-Daily"] = str(cfg.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, daily_remaining or 0))
        return headers

    def _rate_limited(self, policy: str, headers: Mapping[str, str], retry_after: float) -> Response:
        messages = {
            "DAILY": "You have reached your daily limit.",
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        }
        body = {
            "status": "error",
            "message": messages.get(policy, f"You have reached your {policy.lower()} limit."),
            "errorType": "RATE_LIMIT",
            "correlationId": _correlation_id(),
            "policyName": policy,
            "requestId": _correlation_id(),
        }
        all_headers = dict(headers)
        if self.config.retry_after_on_429:
            all_headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return Response.json(429, body, all_headers)

    def _gate(self, token: str) -> tuple[Response | None, dict[str, str]]:
        """Burst and daily limits for a non-search call; returns (429 or None, headers)."""
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return None, {}
        daily_key = self._daily_key(token)
        with self._limit_lock:
            if self._daily.remaining(daily_key) == 0:
                self.stats_recorder.record_rate_limited("DAILY")
                headers = self._usage_headers(token, None)
                return self._rate_limited("DAILY", headers, self._daily.seconds_until_reset()), headers
            decision = self._burst.try_acquire(token)
            if not decision.allowed:
                self.stats_recorder.record_rate_limited("TEN_SECONDLY_ROLLING")
                headers = self._usage_headers(token, 0)
                return self._rate_limited("TEN_SECONDLY_ROLLING", headers, decision.retry_after_s), headers
            self._daily.try_acquire(daily_key)
            return None, self._usage_headers(token, decision.remaining)

    def _gate_search(self, token: str) -> tuple[Response | None, dict[str, str]]:
        """Search has its own per-second limiter and sends no rate-limit headers."""
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return None, {}
        daily_key = self._daily_key(token)
        with self._limit_lock:
            if cfg.search_counts_toward_daily and self._daily.remaining(daily_key) == 0:
                self.stats_recorder.record_rate_limited("DAILY")
                return self._rate_limited("DAILY", {}, self._daily.seconds_until_reset()), {}
            key = token if cfg.search_rate_scope == "token" else "account"
            decision = self._search_limiter.try_acquire(key)
            if not decision.allowed:
                policy = cfg.search_429_policy_name
                self.stats_recorder.record_rate_limited(policy)
                return self._rate_limited(policy, {}, decision.retry_after_s), {}
            if cfg.search_counts_toward_daily:
                self._daily.try_acquire(daily_key)
        return None, {}

    # ---- webhooks -------------------------------------------------------------------------

    def _webhook_listener(self, entity: str) -> Callable[[str, _Row, Mapping[str, str | None]], None]:
        singular = SINGULAR[entity].lower()

        def listener(kind: str, row: _Row, changes: Mapping[str, str | None]) -> None:
            base = {
                "subscriptionId": 2000 + ENTITIES.index(entity),
                "portalId": self.config.webhook_portal_id,
                "appId": self.config.webhook_app_id,
                "occurredAt": row.archived_ms if kind == "deletion" else row.updated_ms,
                "attemptNumber": 0,
                "objectId": row.id,
                "changeSource": "API",
            }
            if kind == "merge":
                merged = int(changes["mergedObjectId"])
                self.webhooks.enqueue(base | {"eventId": next(self._event_ids), "subscriptionType": f"{singular}.merge", "primaryObjectId": row.id,
                                              "mergedObjectIds": [merged], "newObjectId": row.id, "numberOfPropertiesMoved": int(changes["numberOfPropertiesMoved"])})
            elif kind == "propertyChange":
                for name, value in changes.items():
                    self.webhooks.enqueue(base | {"eventId": next(self._event_ids), "subscriptionType": f"{singular}.propertyChange", "propertyName": name, "propertyValue": "" if value is None else value})
            else:
                flag = {"creation": "CREATED", "deletion": "DELETED"}[kind]
                self.webhooks.enqueue(base | {"eventId": next(self._event_ids), "subscriptionType": f"{singular}.{kind}", "changeFlag": flag})

        return listener

    def _sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        """HubSpot's v1 and v3 signature headers (v3 stamped with the real time, as HubSpot does)."""
        from crm_pipelines.webhooks.signatures import sign_hubspot_v1, sign_hubspot_v3

        secret = self.config.webhook_client_secret
        timestamp = int(time.time() * 1000)
        return {
            "X-HubSpot-Signature": sign_hubspot_v1(secret, body),
            "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, timestamp),
            "X-HubSpot-Request-Timestamp": str(timestamp),
        }

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.flush(timeout_s=5)
        super().stop()
        if self.webhooks is not None:
            self.webhooks.stop()

    def reset_rate_limits(self) -> None:
        """Forget burst, search and daily usage."""
        with self._limit_lock:
            self._burst.reset()
            self._search_limiter.reset()
            self._daily.reset()

    # ---- helpers --------------------------------------------------------------------------

    def _store(self, name: str) -> _ObjectStore:
        entity = OBJECT_TYPE_IDS.get(name, name)
        store = self._stores.get(entity)
        if store is None:
            raise _ApiError(_error(404, f"Unable to infer object type from: {name}", "OBJECT_NOT_FOUND"))
        return store

    def _render(
        self,
        store: _ObjectStore,
        row: _Row,
        properties: Iterable[str] | None,
        *,
        only_set: bool = False,
    ) -> dict[str, Any]:
        """The API shape of a row. ``properties=None`` means the object's default set."""
        schema = store.schema
        names = set(schema.default_properties if properties is None else properties)
        names.update(schema.synthesized)
        props: dict[str, str | None] = {}
        for name in sorted(names):
            if name in store.slot or name in schema.synthesized:
                value = store.value(row, name)
                if value is not None or not only_set:
                    props[name] = value
        obj: dict[str, Any] = {
            "id": str(row.id),
            "properties": props,
            "createdAt": utc_iso_ms(row.created_ms),
            "updatedAt": utc_iso_ms(row.updated_ms),
            "archived": row.archived_ms is not None,
        }
        if row.archived_ms is not None:
            obj["archivedAt"] = utc_iso_ms(row.archived_ms)
        return obj

    def _body_object(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise _validation_error("Invalid input JSON: expected a JSON object")
        return body

    @staticmethod
    def _requested_properties(request: Request) -> list[str] | None:
        names = request.query_list("properties")
        return names or None

    def _shuffled(self, items: list[Any]) -> list[Any]:
        with self._lock:
            self._shuffle_rng.shuffle(items)
        return items

    def _batch_envelope(self, started: str, results: list[Any], errors: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": utc_iso_ms(self.clock.now_ms()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        return body

    def _batch_inputs(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
            raise _validation_error("Invalid input JSON: 'inputs' must be an array of objects")
        limit = self.config.batch_input_max
        if len(inputs) > limit:
            raise _validation_error(f"Batch input size {len(inputs)} is over the maximum of {limit} inputs")
        return inputs

    def _not_found_error(self, store: _ObjectStore, ids: list[str]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": (
                f"Could not get some {SINGULAR[store.schema.entity]} objects, they may be deleted or not exist. "
                "Check that ids are valid."
            ),
            "context": {"ids": ids},
        }

    def _id_property(self, store: _ObjectStore, name: str | None) -> str:
        if name is None or name == "hs_object_id":
            return "hs_object_id"
        if name not in self.config.id_properties.get(store.schema.entity, ()):
            raise _validation_error(
                f"{name} is not a unique property of {store.schema.entity}; it cannot be used as idProperty",
                errors=[{"message": f"Invalid idProperty: {name}", "code": "INVALID_ID_PROPERTY"}],
            )
        return name

    # ---- property validation --------------------------------------------------------------

    def _normalize_properties(
        self, store: _ObjectStore, properties: Any, *, creating: bool
    ) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
        """Convert values to strings and collect HubSpot-style validation error details."""
        schema = store.schema
        errors: list[dict[str, Any]] = []
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            return {}, [{"message": "properties must be an object", "code": "INVALID_INPUT"}]
        out: dict[str, str | None] = {}
        for name, raw in properties.items():
            if name in schema.synthesized or name in schema.read_only_stored:
                errors.append({
                    "message": f'"{name}" is a read only property; its value cannot be set.',
                    "code": "READ_ONLY_VALUE",
                    "context": {"propertyName": [name]},
                })
                continue
            if name not in store.slot:
                errors.append({
                    "message": f'Property "{name}" does not exist',
                    "code": "PROPERTY_DOESNT_EXIST",
                    "context": {"propertyName": [name]},
                })
                continue
            if raw is None:
                out[name] = None
                continue
            if isinstance(raw, bool):
                value = "true" if raw else "false"
            elif isinstance(raw, (int, float, str)):
                value = str(raw)
            else:
                errors.append({"message": f'Invalid value for "{name}"', "code": "INVALID_VALUE", "context": {"propertyName": [name]}})
                continue
            if name == "email" and value and not _EMAIL_RE.match(value):
                errors.append({"message": f"Email address {value} is invalid", "code": "INVALID_EMAIL", "context": {"propertyName": [name]}})
                continue
            if name in schema.stored_dates and value:
                try:
                    value = utc_iso_ms(int(parse_datetime(value).timestamp() * 1000))
                except ValueError:
                    errors.append({"message": f"{value} is not a valid date", "code": "INVALID_DATE", "context": {"propertyName": [name]}})
                    continue
            options = schema.enumerations.get(name)
            if self.config.validate_enumerations and options and value and value not in options:
                errors.append({
                    "message": f"{value} was not one of the allowed options: {list(options)}",
                    "code": "INVALID_OPTION",
                    "context": {"propertyName": [name]},
                })
                continue
            out[name] = value
        if creating and not errors:
            if schema.required_any and not any(out.get(name) for name in schema.required_any):
                errors.append({
                    "message": f"At least one of {', '.join(schema.required_any)} is required",
                    "code": "REQUIRED_PROPERTY",
                    "context": {"propertyName": list(schema.required_any)},
                })
            missing = [name for name in schema.required_all if not out.get(name)]
            if missing:
                errors.append({
                    "message": f"Missing required properties: {', '.join(missing)}",
                    "code": "REQUIRED_PROPERTY",
                    "context": {"propertyName": missing},
                })
        if "dealstage" in out and out["dealstage"]:
            out["hs_is_closed"], out["hs_is_closed_won"] = _closed_flags(out["dealstage"])
        return out, errors

    @staticmethod
    def _validation_body(details: list[dict[str, Any]], trace_id: str | None = None) -> dict[str, Any]:
        summary = [
            {"isValid": False, "message": d["message"], "error": d.get("code", "INVALID"), "name": (d.get("context") or {}).get("propertyName", [""])[0]}
            for d in details
        ]
        return _error_body(
            "Property values were not valid: " + json.dumps(summary, ensure_ascii=False),
            "VALIDATION_ERROR",
            errors=details,
            context={"objectWriteTraceId": [trace_id]} if trace_id is not None else None,
        )

    def _conflict(self, store: _ObjectStore, values: Mapping[str, str | None], exclude_id: int | None = None) -> int | None:
        """Id of another live contact already using ``values['email']``, if any."""
        if store.schema.entity != "contacts":
            return None
        email = values.get("email")
        if not email:
            return None
        existing = store.find_by("email", email)
        if existing is not None and existing.id != exclude_id:
            return existing.id
        return None

    @staticmethod
    def _conflict_body(existing_id: int, trace_id: str | None = None) -> dict[str, Any]:
        return _error_body(
            f"Contact already exists. Existing ID: {existing_id}",
            "CONFLICT",
            context={"objectWriteTraceId": [trace_id]} if trace_id is not None else None,
        )

    def _new_row(self, store: _ObjectStore, values: Mapping[str, str | None], now_ms: int) -> _Row:
        slots = [None] * len(store.schema.stored)
        row = _Row(store.allocate_id(), now_ms, now_ms, slots)
        for name, value in values.items():
            slots[store.slot[name]] = value
        store.insert(row)
        return row

    # ---- list / get / single writes ----------------------------------------------------------

    def _list(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        limit = _int_param(request.query_value("limit"), 10, "limit")
        if limit < 1:
            raise _validation_error("limit must be at least 1")
        if limit > LIST_LIMIT_MAX:
            if self.config.list_limit_oversize == "reject":
                raise _validation_error(f"limit must be less than or equal to {LIST_LIMIT_MAX}, got {limit}")
            limit = LIST_LIMIT_MAX
        after_text = request.query_value("after")
        after = _int_param(after_text, 0, "after") if after_text else 0
        archived = (request.query_value("archived") or "false").lower() == "true"
        properties = self._requested_properties(request)
        with self._lock:
            ids = store.archived_ids if archived else store.live_ids
            start = bisect.bisect_left(ids, after)
            page_ids = ids[start : start + limit]
            next_id = ids[start + limit] if start + limit < len(ids) else None
            results = [self._render(store, store.rows[row_id], properties) for row_id in page_ids]
        body: dict[str, Any] = {"results": results}
        if next_id is not None:
            query = [("after", str(next_id)), ("limit", str(limit))]
            query += [(k, v) for k, values in request.query.items() if k not in ("after", "limit") for v in values]
            link = f"{self.base_url}{request.path}?{urlencode(query)}"
            body["paging"] = {"next": {"after": str(next_id), "link": link}}
        return Response.json(200, body)

    def _lookup(self, store: _ObjectStore, request: Request) -> _Row:
        raw_id = request.params["id"]
        archived = (request.query_value("archived") or "false").lower() == "true"
        id_property = self._id_property(store, request.query_value("idProperty"))
        row: _Row | None
        if id_property == "hs_object_id":
            row = store.rows.get(int(raw_id)) if raw_id.isdigit() else None
            if row is not None and (row.archived_ms is not None) != archived:
                row = None
        else:
            row = None if archived else store.find_by(id_property, raw_id)
        if row is None:
            raise _ApiError(_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND", context={"id": [raw_id]}))
        return row

    def _get_one(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        with self._lock:
            row = self._lookup(store, request)
            return Response.json(200, self._render(store, row, self._requested_properties(request)))

    def _create_one(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        with self._lock:
            values = self._checked_input(store, body.get("properties"), creating=True, exclude_id=None, trace_id=None, errors=[])
            row = self._new_row(store, values, self.clock.now_ms())
            return Response.json(201, self._written(store, row, None))

    def _update_one(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        with self._lock:
            row = self._lookup(store, request)
            values = self._checked_input(store, body.get("properties"), creating=False, exclude_id=row.id, trace_id=None, errors=[])
            store.update(row, values, self.clock.now_ms())
            return Response.json(200, self._written(store, row, None))

    def _delete_one(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        raw_id = request.params["id"]
        with self._lock:
            row = store.rows.get(int(raw_id)) if raw_id.isdigit() else None
            if row is not None:
                store.archive(row, self.clock.now_ms())
        return Response.empty(204)

    def _merge_endpoint(self, request: Request) -> Response:
        """``POST .../merge`` with ``primaryObjectId`` and ``objectIdToMerge``: the primary survives."""
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        primary, merged = str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", ""))
        with self._lock:
            row = self._merge_rows(store, primary, merged)
            return Response.json(200, self._render(store, row, list(store.schema.stored), only_set=True))

    def _merge_rows(self, store: _ObjectStore, primary_id: str, merged_id: str) -> _Row:
        rows = [store.rows.get(int(i)) if i.isdigit() else None for i in (primary_id, merged_id)]
        if any(r is None or r.archived_ms is not None for r in rows) or primary_id == merged_id:
            raise _validation_error(f"cannot merge {merged_id} into {primary_id}: both must be distinct live records")
        primary, merged = rows
        fills = {name: merged.values[store.slot[name]] for name in store.schema.stored
                 if primary.values[store.slot[name]] in (None, "") and merged.values[store.slot[name]] not in (None, "")}
        listener, store.listener = store.listener, None  # HubSpot sends one merge event, not the parts
        try:
            now_ms = self.clock.now_ms()
            store.archive(merged, now_ms)
            store.update(primary, fills, now_ms)
        finally:
            store.listener = listener
        if listener is not None:
            listener("merge", primary, {"mergedObjectId": str(merged.id), "numberOfPropertiesMoved": str(len(fills))})
        return primary

    # ---- batch endpoints ------------------------------------------------------------------

    def _batch_read(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        inputs = self._batch_inputs(body)
        archived = (request.query_value("archived") or "false").lower() == "true"
        id_property = self._id_property(store, body.get("idProperty"))
        properties = _property_list(body.get("properties"))
        started = utc_iso_ms(self.clock.now_ms())
        results, missing, seen = [], [], set()
        with self._lock:
            for item in inputs:
                raw_id = str(item.get("id", ""))
                if id_property == "hs_object_id":
                    row = store.rows.get(int(raw_id)) if raw_id.isdigit() else None
                    if row is not None and (row.archived_ms is not None) != archived:
                        row = None
                else:
                    row = None if archived else store.find_by(id_property, raw_id)
                if row is None:
                    missing.append(raw_id)
                elif row.id not in seen:
                    seen.add(row.id)
                    results.append(self._render(store, row, properties))
        errors = [self._not_found_error(store, missing)] if missing else []
        return Response.json(207 if errors else 200, self._batch_envelope(started, self._shuffled(results), errors))

    def _checked_input(
        self,
        store: _ObjectStore,
        properties: Mapping[str, Any] | None,
        *,
        creating: bool,
        exclude_id: int | None,
        trace_id: str | None,
        errors: list[dict[str, Any]],
    ) -> dict[str, str | None] | None:
        """Validate one batch input and check it against unique properties.

        Without a trace id (``trace_id`` None) the first bad input fails the whole batch (400, or
        409 for a duplicate); with one, the error is added to ``errors`` and None is returned.
        """
        values, details = self._normalize_properties(store, properties, creating=creating)
        if details:
            if trace_id is None:
                raise _ApiError(Response.json(400, self._validation_body(details)))
            errors.append(self._validation_body(details, trace_id))
            return None
        existing = self._conflict(store, values, exclude_id=exclude_id)
        if existing is not None:
            if trace_id is None:
                raise _ApiError(Response.json(409, self._conflict_body(existing)))
            errors.append(self._conflict_body(existing, trace_id))
            return None
        return values

    def _written(self, store: _ObjectStore, row: _Row, trace_id: str | None) -> dict[str, Any]:
        """A batch result for a written row, carrying its trace id when the input had one."""
        result = self._render(store, row, list(store.schema.stored), only_set=True)
        if trace_id is not None:
            result["objectWriteTraceId"] = trace_id
        return result

    def _batch_create(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        inputs = self._batch_inputs(self._body_object(request))
        traced = bool(inputs) and all(item.get("objectWriteTraceId") is not None for item in inputs)
        started = utc_iso_ms(self.clock.now_ms())
        with self._lock:
            now_ms = self.clock.now_ms()
            if not traced:
                batch_emails: set[str] = set()
                validated = []
                for item in inputs:
                    values = self._checked_input(store, item.get("properties"), creating=True, exclude_id=None, trace_id=None, errors=[])
                    email = (values.get("email") or "").lower() if store.schema.entity == "contacts" else ""
                    if email and email in batch_emails:
                        raise _validation_error(f"Duplicate email in batch input: {values['email']}")
                    batch_emails.add(email)
                    validated.append(values)
                rows = [self._new_row(store, values, now_ms) for values in validated]
                results = [self._render(store, row, list(store.schema.stored), only_set=True) for row in rows]
                return Response.json(201, self._batch_envelope(started, self._shuffled(results), []))
            results, errors = [], []
            for item in inputs:
                trace_id = str(item["objectWriteTraceId"])
                values = self._checked_input(store, item.get("properties"), creating=True, exclude_id=None, trace_id=trace_id, errors=errors)
                if values is not None:
                    results.append(self._written(store, self._new_row(store, values, now_ms), trace_id))
        status = 207 if errors else 201
        return Response.json(status, self._batch_envelope(started, self._shuffled(results), errors))

    def _batch_update(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        inputs = self._batch_inputs(body)
        traced = bool(inputs) and all(item.get("objectWriteTraceId") is not None for item in inputs)
        raw_ids = [str(item.get("id", "")) for item in inputs]
        duplicates = sorted({raw for raw in raw_ids if raw_ids.count(raw) > 1})
        if duplicates:
            raise _validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        started = utc_iso_ms(self.clock.now_ms())
        with self._lock:
            now_ms = self.clock.now_ms()
            planned: list[tuple[_Row, dict[str, str | None], str | None]] = []
            missing: list[str] = []
            errors: list[dict[str, Any]] = []
            for item, raw_id in zip(inputs, raw_ids):
                id_property = self._id_property(store, item.get("idProperty"))
                row = store.find_by(id_property, raw_id)
                trace_id = str(item["objectWriteTraceId"]) if traced else None
                if row is None:
                    missing.append(raw_id)
                    continue
                values = self._checked_input(store, item.get("properties"), creating=False, exclude_id=row.id, trace_id=trace_id, errors=errors)
                if values is not None:
                    planned.append((row, values, trace_id))
            results = []
            for row, values, trace_id in planned:
                store.update(row, values, now_ms)
                results.append(self._written(store, row, trace_id))
        if missing:
            errors.insert(0, self._not_found_error(store, missing))
        return Response.json(207 if errors else 200, self._batch_envelope(started, self._shuffled(results), errors))

    def _batch_upsert(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        inputs = self._batch_inputs(body)
        traced = bool(inputs) and all(item.get("objectWriteTraceId") is not None for item in inputs)
        keys = [(str(item.get("idProperty") or "hs_object_id"), str(item.get("id", "")).lower()) for item in inputs]
        duplicates = sorted({key[1] for key in keys if keys.count(key) > 1})
        if duplicates:
            raise _validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        started = utc_iso_ms(self.clock.now_ms())
        with self._lock:
            now_ms = self.clock.now_ms()
            plans: list[tuple[_Row | None, dict[str, str | None], str | None]] = []
            missing: list[str] = []
            errors: list[dict[str, Any]] = []
            for item in inputs:
                raw_id = str(item.get("id", ""))
                id_property = self._id_property(store, item.get("idProperty"))
                trace_id = str(item["objectWriteTraceId"]) if traced else None
                row = store.find_by(id_property, raw_id)
                if row is None and id_property == "hs_object_id":
                    missing.append(raw_id)
                    continue
                properties = dict(item.get("properties") or {})
                if row is None:
                    properties.setdefault(id_property, raw_id)
                values = self._checked_input(store, properties, creating=row is None, exclude_id=row.id if row else None, trace_id=trace_id, errors=errors)
                if values is not None:
                    plans.append((row, values, trace_id))
            results = []
            for row, values, trace_id in plans:
                is_new = row is None
                if row is None:
                    row = self._new_row(store, values, now_ms)
                else:
                    store.update(row, values, now_ms)
                results.append(self._written(store, row, trace_id) | {"new": is_new})
        if missing:
            errors.insert(0, self._not_found_error(store, missing))
        return Response.json(207 if errors else 200, self._batch_envelope(started, self._shuffled(results), errors))

    def _batch_archive(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        inputs = self._batch_inputs(self._body_object(request))
        with self._lock:
            now_ms = self.clock.now_ms()
            for item in inputs:
                raw_id = str(item.get("id", ""))
                row = store.rows.get(int(raw_id)) if raw_id.isdigit() else None
                if row is not None:
                    store.archive(row, now_ms)
        return Response.empty(204)

    # ---- search ---------------------------------------------------------------------------

    def _search(self, request: Request) -> Response:
        store = self._store(request.params["obj"])
        body = self._body_object(request)
        cfg = self.config
        groups = self._compile_groups(store, body.get("filterGroups") or [])
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > SEARCH_QUERY_MAX_CHARS):
            raise _validation_error(f"query must be a string of at most {SEARCH_QUERY_MAX_CHARS} characters")
        sort_prop, descending = self._parse_sort(store, body.get("sorts"))
        limit = _int_param(body.get("limit"), 10, "limit")
        if limit < 1:
            raise _validation_error("limit must be at least 1")
        if limit > cfg.search_limit_max:
            if cfg.search_limit_oversize == "reject":
                raise _validation_error(
                    f"Limit must be less than or equal to {cfg.search_limit_max}",
                    errors=[{"message": f"limit {limit} is greater than {cfg.search_limit_max}", "code": "INVALID_LIMIT"}],
                )
            limit = cfg.search_limit_max
        after = _int_param(body.get("after"), 0, "after")
        if after < 0:
            raise _validation_error("after must be a non-negative offset")
        if after >= cfg.search_total_cap:
            raise _validation_error(
                f"Cannot page beyond {cfg.search_total_cap} results; narrow the search instead",
                errors=[{"message": f"after {after} is not below the {cfg.search_total_cap} result limit", "code": "PAGING_LIMIT"}],
            )
        properties = _property_list(body.get("properties"))

        with self._lock:
            window = None if query else self._pure_delta_window(store, groups, sort_prop, descending)
            if window is not None:  # the delta-sync shape: answered from the index without a scan
                start, stop = window
                total = max(0, stop - start)
                end = min(after + limit, cfg.search_total_cap)
                keys = store.delta_index[start + after : min(start + end, stop)] if total else []
                results = [self._render(store, store.rows[key & ID_MASK], properties) for key in keys]
                body_out = {"total": total, "results": results}
                if end < total and results:
                    body_out["paging"] = {"next": {"after": str(end)}}
                return Response.json(200, body_out)
            matches, ordered_by_delta = self._matching_rows(store, groups)
            if query:
                matches = [row for row in matches if self._matches_query(store, row, query)]
            total = len(matches)
            matches = self._sorted(store, matches, sort_prop, descending, ordered_by_delta)
            end = min(after + limit, cfg.search_total_cap)
            page = matches[after:end]
            results = [self._render(store, row, properties) for row in page]
        body_out: dict[str, Any] = {"total": total, "results": results}
        if end < total and page:
            body_out["paging"] = {"next": {"after": str(end)}}
        return Response.json(200, body_out)

    def _compile_groups(self, store: _ObjectStore, raw_groups: Any) -> list[list[_Filter]]:
        cfg = self.config
        if not isinstance(raw_groups, list):
            raise _validation_error("Invalid input JSON: 'filterGroups' must be an array")
        if len(raw_groups) > cfg.search_max_groups:
            raise _validation_error(f"Too many filter groups: {len(raw_groups)}; the maximum is {cfg.search_max_groups}")
        total = 0
        groups: list[list[_Filter]] = []
        for raw_group in raw_groups:
            filters = raw_group.get("filters") if isinstance(raw_group, dict) else None
            if not isinstance(filters, list):
                raise _validation_error("Invalid input JSON: each filter group needs a 'filters' array")
            if len(filters) > cfg.search_max_filters_per_group:
                raise _validation_error(
                    f"Too many filters in a group: {len(filters)}; the maximum is {cfg.search_max_filters_per_group}"
                )
            total += len(filters)
            if total > cfg.search_max_filters_total:
                raise _validation_error(f"Too many filters in total; the maximum is {cfg.search_max_filters_total}")
            groups.append([self._compile_filter(store, raw) for raw in filters])
        return groups

    def _compile_filter(self, store: _ObjectStore, raw: Any) -> _Filter:
        if not isinstance(raw, dict):
            raise _validation_error("Invalid input JSON: a filter must be an object")
        prop = raw.get("propertyName")
        operator = raw.get("operator", "EQ")
        if operator not in SEARCH_OPERATORS:
            raise _validation_error(f"Unknown filter operator: {operator}")
        if not isinstance(prop, str) or prop not in store.schema.all_properties:
            raise _validation_error(
                f'Property "{prop}" does not exist',
                errors=[{"message": f'Property "{prop}" does not exist', "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [str(prop)]}}],
            )
        kind = store.schema.kind(prop)
        compiled = _Filter(prop, operator, kind)
        if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            return compiled
        if operator in ("IN", "NOT_IN"):
            values = raw.get("values")
            if not isinstance(values, list) or not values:
                raise _validation_error(f"Operator {operator} needs a non-empty 'values' array")
            compiled.values = tuple(self._filter_value(kind, v, prop) for v in values)
            return compiled
        if "value" not in raw or raw["value"] is None:
            raise _validation_error(f"Operator {operator} on {prop} needs a 'value'")
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            compiled.value = str(raw["value"]).casefold()
            return compiled
        compiled.value = self._filter_value(kind, raw["value"], prop)
        if operator == "BETWEEN":
            if raw.get("highValue") is None:
                raise _validation_error(f"Operator BETWEEN on {prop} needs a 'highValue'")
            compiled.high = self._filter_value(kind, raw["highValue"], prop)
        return compiled

    def _filter_value(self, kind: str, raw: Any, prop: str) -> Any:
        text = str(raw).strip()
        try:
            if kind == "date":
                if re.fullmatch(r"-?\d+", text):
                    return int(text)
                if not self.config.search_accept_iso_dates:
                    raise ValueError("ISO dates disabled")
                return int(parse_datetime(text).timestamp() * 1000)
            if kind == "number":
                return float(text)
        except ValueError:
            raise _validation_error(f"{text} is not a valid {kind} value for property {prop}") from None
        return text.casefold()

    def _typed_value(self, store: _ObjectStore, row: _Row, prop: str, kind: str) -> Any:
        """The row's value of ``prop`` in comparable form, or ``None`` when unset/unparsable."""
        if prop == "createdate":
            return row.created_ms
        if prop == store.schema.delta_property:
            return row.updated_ms
        if prop == "hs_object_id":
            return float(row.id)
        raw = row.values[store.slot[prop]]
        if raw is None or raw == "":
            return None
        try:
            if kind == "date":
                return int(parse_datetime(raw).timestamp() * 1000)
            if kind == "number":
                return float(raw)
        except ValueError:
            return None
        return raw.casefold()

    def _row_matches(self, store: _ObjectStore, row: _Row, filters: list[_Filter]) -> bool:
        for flt in filters:
            value = self._typed_value(store, row, flt.prop, flt.kind)
            op = flt.operator
            if op == "HAS_PROPERTY":
                ok = value is not None
            elif op == "NOT_HAS_PROPERTY":
                ok = value is None
            elif op == "NEQ":
                ok = value is None or value != flt.value
            elif op == "NOT_IN":
                ok = value is None or value not in flt.values
            elif op == "NOT_CONTAINS_TOKEN":
                ok = value is None or not _contains_token(str(store.value(row, flt.prop) or ""), flt.value)
            elif value is None:
                ok = False
            elif op == "EQ":
                ok = value == flt.value
            elif op == "IN":
                ok = value in flt.values
            elif op == "CONTAINS_TOKEN":
                ok = _contains_token(str(store.value(row, flt.prop) or ""), flt.value)
            else:
                try:
                    if op == "LT":
                        ok = value < flt.value
                    elif op == "LTE":
                        ok = value <= flt.value
                    elif op == "GT":
                        ok = value > flt.value
                    elif op == "GTE":
                        ok = value >= flt.value
                    else:  # BETWEEN, inclusive
                        ok = flt.value <= value <= flt.high
                except TypeError:
                    ok = False
            if not ok:
                return False
        return True

    def _delta_range(self, store: _ObjectStore, filters: list[_Filter]) -> tuple[int, int] | None:
        """Inclusive ms bounds implied by the group's range filters on the delta property."""
        low, high, found = -(1 << 62), 1 << 62, False
        for flt in filters:
            if flt.prop != store.schema.delta_property or flt.operator not in _RANGE_OPERATORS:
                continue
            found = True
            value = flt.value
            if flt.operator == "EQ":
                low, high = max(low, value), min(high, value)
            elif flt.operator == "GT":
                low = max(low, value + 1)
            elif flt.operator == "GTE":
                low = max(low, value)
            elif flt.operator == "LT":
                high = min(high, value - 1)
            elif flt.operator == "LTE":
                high = min(high, value)
            else:
                low, high = max(low, value), min(high, flt.high)
        return (low, high) if found else None

    def _pure_delta_window(
        self, store: _ObjectStore, groups: list[list[_Filter]], sort_prop: str | None, descending: bool
    ) -> tuple[int, int] | None:
        """Index positions ``[start, stop)`` when the search is one group of range filters on the
        delta property sorted ascending by it; ``None`` for any other search."""
        if len(groups) != 1 or sort_prop != store.schema.delta_property or descending:
            return None
        filters = groups[0]
        if not filters or any(f.prop != store.schema.delta_property or f.operator not in _RANGE_OPERATORS for f in filters):
            return None
        bounds = self._delta_range(store, filters)
        assert bounds is not None
        low, high = bounds
        if self.config.search_visibility_delay_s > 0:
            high = min(high, self.clock.now_ms() - int(self.config.search_visibility_delay_s * 1000))
        if low > high:
            return 0, 0
        index = store.delta_index
        start = bisect.bisect_left(index, max(low, 0) << ID_BITS)
        stop = bisect.bisect_right(index, (max(high, 0) << ID_BITS) | ID_MASK)
        return start, stop

    def _matching_rows(self, store: _ObjectStore, groups: list[list[_Filter]]) -> tuple[list[_Row], bool]:
        """Live rows matching any group; also says whether they are in (delta, id) order."""
        rows = store.rows
        visible_until = None
        if self.config.search_visibility_delay_s > 0:
            visible_until = self.clock.now_ms() - int(self.config.search_visibility_delay_s * 1000)
        if not groups:
            selected = [rows[row_id] for row_id in store.live_ids]
            if visible_until is not None:
                selected = [row for row in selected if row.updated_ms <= visible_until]
            return selected, False
        found: dict[int, _Row] = {}
        single_indexed = False
        for filters in groups:
            bounds = self._delta_range(store, filters)
            if bounds is not None:
                low, high = bounds
                if visible_until is not None:
                    high = min(high, visible_until)
                if low > high:
                    continue
                index = store.delta_index
                start = bisect.bisect_left(index, max(low, 0) << ID_BITS)
                stop = bisect.bisect_right(index, (max(high, 0) << ID_BITS) | ID_MASK)
                rest = [flt for flt in filters if not (flt.prop == store.schema.delta_property and flt.operator in _RANGE_OPERATORS)]
                candidates = (rows[key & ID_MASK] for key in index[start:stop])
                single_indexed = len(groups) == 1
            else:
                rest = filters
                candidates = (rows[row_id] for row_id in store.live_ids)
                if visible_until is not None:
                    candidates = (row for row in candidates if row.updated_ms <= visible_until)
            for row in candidates:
                if row.id not in found and (not rest or self._row_matches(store, row, rest)):
                    found[row.id] = row
        return list(found.values()), single_indexed

    def _matches_query(self, store: _ObjectStore, row: _Row, query: str) -> bool:
        terms = [term for term in query.casefold().split() if term]
        tokens: list[str] = []
        for prop in store.schema.text_search:
            value = row.values[store.slot[prop]]
            if value:
                tokens.extend(token for token in re.split(r"[^\w@.+-]+", value.casefold()) if token)
                tokens.append(value.casefold())
        return all(any(token.startswith(term) for token in tokens) for term in terms)

    def _parse_sort(self, store: _ObjectStore, sorts: Any) -> tuple[str | None, bool]:
        if not sorts:
            return None, False
        if not isinstance(sorts, list):
            raise _validation_error("Invalid input JSON: 'sorts' must be an array")
        if len(sorts) > 1:
            raise _validation_error("Only one sort rule is supported")
        rule = sorts[0]
        if isinstance(rule, str):
            descending = rule.startswith("-")
            prop = rule.lstrip("-")
        elif isinstance(rule, dict):
            prop = rule.get("propertyName")
            direction = str(rule.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise _validation_error(f"Unknown sort direction: {direction}")
            descending = direction == "DESCENDING"
        else:
            raise _validation_error("Invalid sort rule")
        if prop not in store.schema.all_properties:
            raise _validation_error(f'Property "{prop}" does not exist', errors=[{"message": f'Property "{prop}" does not exist', "code": "PROPERTY_DOESNT_EXIST"}])
        return prop, descending

    def _sorted(self, store: _ObjectStore, rows: list[_Row], prop: str | None, descending: bool, ordered_by_delta: bool) -> list[_Row]:
        """Sort by ``prop`` (rows without a value last), ties by id ascending; default by id."""
        if prop is None:
            rows.sort(key=lambda row: row.id)
            return rows
        if prop == store.schema.delta_property and ordered_by_delta and not descending:
            return rows
        rows.sort(key=lambda row: row.id)
        kind = store.schema.kind(prop)
        keyed = [(self._typed_value(store, row, prop, kind), row) for row in rows]
        with_value = [pair for pair in keyed if pair[0] is not None]
        without = [row for value, row in keyed if value is None]
        with_value.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ids stay ascending on ties
        return [row for _value, row in with_value] + without

    # ---- Python-side API ------------------------------------------------------------------

    def _entity_store(self, entity: str) -> _ObjectStore:
        store = self._stores.get(OBJECT_TYPE_IDS.get(entity, entity))
        if store is None:
            raise ValueError(f"unknown entity {entity!r}; expected one of {ENTITIES}")
        return store

    def records(self, entity: str, archived: bool = False) -> dict[str, dict[str, Any]]:
        """id -> API-shaped object with every property, for live (or archived) records."""
        store = self._entity_store(entity)
        with self._lock:
            ids = store.archived_ids if archived else store.live_ids
            return {str(i): self._render(store, store.rows[i], store.schema.all_properties) for i in ids}

    def count(self, entity: str, archived: bool = False) -> int:
        """How many live (or archived) records ``entity`` has."""
        store = self._entity_store(entity)
        with self._lock:
            return len(store.archived_ids if archived else store.live_ids)

    def modify(
        self,
        entity: str,
        n: int | None = None,
        ids: Iterable[str | int] | None = None,
        same_timestamp: bool = False,
    ) -> list[str]:
        """Change a few properties of ``n`` seeded-random live records (or of ``ids``).

        Modification times start at the simulated now. With ``same_timestamp`` every record gets
        that very millisecond; otherwise the change takes one millisecond per record: the records
        get consecutive milliseconds (in the order of the returned ids) and the clock is moved
        forward, if needed, so that no stamp lies in the future when the call returns.
        """
        store = self._entity_store(entity)
        with self._lock:
            if ids is not None:
                rows = []
                for raw in ids:
                    row = store.rows.get(int(raw))
                    if row is None or row.archived_ms is not None:
                        raise KeyError(f"{entity} {raw} does not exist or is archived")
                    rows.append(row)
            else:
                k = min(1 if n is None else n, len(store.live_ids))
                rows = [store.rows[i] for i in self._mutation_rng.sample(store.live_ids, k)]
            start_ms = self.clock.now_ms()
            for position, row in enumerate(rows):
                store.update(row, self._random_changes(store), start_ms if same_timestamp else start_ms + position)
            if not same_timestamp and len(rows) > 1:
                lag_ms = start_ms + len(rows) - 1 - self.clock.now_ms()
                if lag_ms > 0:
                    self.clock.advance(lag_ms / 1000)
            return [str(row.id) for row in rows]

    def _random_changes(self, store: _ObjectStore) -> dict[str, str | None]:
        rng, data = self._mutation_rng, store.data
        entity = store.schema.entity
        if entity == "contacts":
            options: dict[str, Any] = {
                "jobtitle": lambda: data.job_title() or "Consultor",
                "phone": data.phone,
                "lifecyclestage": lambda: rng.choice(LIFECYCLE_STAGES),
                "city": lambda: data.location()[0],
            }
        elif entity == "companies":
            options = {"industry": data.industry, "phone": data.phone, "city": lambda: data.location()[0]}
        else:
            options = {"amount": data.amount, "dealstage": lambda: rng.choice(DEAL_STAGES)}
        chosen = rng.sample(sorted(options), rng.randint(1, min(2, len(options))))
        changes = {name: options[name]() for name in chosen}
        if "dealstage" in changes:
            changes["hs_is_closed"], changes["hs_is_closed_won"] = _closed_flags(changes["dealstage"])
        return changes

    def create(self, entity: str, n: int = 1) -> list[str]:
        """Create ``n`` new generated records stamped with the simulated now; returns their ids."""
        store = self._entity_store(entity)
        build = {"contacts": self._seed_contact, "companies": self._seed_company, "deals": self._seed_deal}[store.schema.entity]
        with self._lock:
            now_ms = self.clock.now_ms()
            created = []
            for _ in range(n):
                row = _Row(store.allocate_id(), now_ms, now_ms, store.fit(build(store.data, store.data.rng)))
                store.insert(row)
                created.append(str(row.id))
            return created

    def archive(self, entity: str, target: int | Iterable[str | int]) -> list[str]:
        """Archive ``target`` ids, or ``target`` seeded-random live records when it is an int."""
        store = self._entity_store(entity)
        with self._lock:
            if isinstance(target, int):
                k = min(target, len(store.live_ids))
                chosen = self._mutation_rng.sample(store.live_ids, k)
            elif isinstance(target, str):
                chosen = [int(target)]
            else:
                chosen = [int(raw) for raw in target]
            now_ms = self.clock.now_ms()
            done = []
            for row_id in chosen:
                row = store.rows.get(row_id)
                if row is not None and row.archived_ms is None:
                    store.archive(row, now_ms)
                    done.append(str(row_id))
            return done

    def merge(self, entity: str, primary_id: str, merged_id: str) -> str:
        """Merge ``merged_id`` into ``primary_id`` as HubSpot does; returns the surviving id."""
        store = self._entity_store(entity)
        with self._lock:
            return str(self._merge_rows(store, str(primary_id), str(merged_id)).id)

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Admin mutation: ``{"entity", "modify", "create", "archive", "same_timestamp", "ids"}``."""
        entity = str(spec.get("entity", ""))
        self._entity_store(entity)
        unknown = set(spec) - {"entity", "modify", "create", "archive", "same_timestamp", "ids"}
        if unknown:
            raise ValueError(f"unknown mutation keys: {sorted(unknown)}")
        result: dict[str, Any] = {"entity": entity, "modified": [], "created": [], "archived": []}
        if spec.get("ids"):
            result["modified"] = self.modify(entity, ids=spec["ids"], same_timestamp=bool(spec.get("same_timestamp")))
        elif int(spec.get("modify") or 0) > 0:
            result["modified"] = self.modify(entity, n=int(spec["modify"]), same_timestamp=bool(spec.get("same_timestamp")))
        if int(spec.get("create") or 0) > 0:
            result["created"] = self.create(entity, int(spec["create"]))
        if int(spec.get("archive") or 0) > 0:
            result["archived"] = self.archive(entity, int(spec["archive"]))
        result["now"] = utc_iso_ms(self.clock.now_ms())
        return result

    def describe(self) -> dict[str, Any]:
        """Counts per object type, for ``GET /_simulator/health``."""
        with self._lock:
            counts = {
                entity: {"live": len(store.live_ids), "archived": len(store.archived_ids)}
                for entity, store in self._stores.items()
            }
        return {"objects": counts, "rate_limits_enabled": self.config.rate_limits_enabled}

    # ---- command line ---------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Options of ``python -m crm_pipelines.simulator hubspot``."""
        parser.add_argument("--contacts", type=int, default=1000)
        parser.add_argument("--companies", type=int, default=100)
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--history-days", type=float, default=30.0)
        parser.add_argument("--reference-time", default=None, help="ISO-8601 instant the seeded data ends at")
        parser.add_argument("--rate-limit", type=int, default=100, help="burst limit per --burst-window seconds")
        parser.add_argument("--burst-window", type=float, default=10.0)
        parser.add_argument("--daily-limit", type=int, default=250_000, help="0 disables the daily limit")
        parser.add_argument("--search-rate", type=int, default=5, help="search requests per second")
        parser.add_argument("--no-rate-limits", action="store_true", help="turn every rate limit off")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> HubSpotSimulator:
        """Build a simulator from parsed command-line options."""
        config = HubSpotSimConfig(
            seed=args.seed,
            contacts=args.contacts,
            companies=args.companies,
            deals=args.deals,
            history_days=args.history_days,
            reference_time=parse_datetime(args.reference_time) if args.reference_time else None,
            tokens=tuple(args.token) if args.token else (DEFAULT_TOKEN,),
            burst_limit=args.rate_limit,
            burst_window_s=args.burst_window,
            daily_limit=args.daily_limit or None,
            search_rate_per_s=args.search_rate,
            rate_limits_enabled=not args.no_rate_limits,
            faults=args.faults,
        )
        return cls(config, host=args.host, port=args.port)


def _bump_attempt_numbers(events: list[dict[str, Any]], attempt: int) -> None:
    for event in events:
        event["attemptNumber"] = attempt


def _closed_flags(stage: str) -> tuple[str, str]:
    """``hs_is_closed`` and ``hs_is_closed_won`` for a deal stage."""
    return ("true" if stage in ("closedwon", "closedlost") else "false", "true" if stage == "closedwon" else "false")


def _contains_token(value: str, token: str) -> bool:
    """HubSpot-like token match; ``*`` wildcards match against the whole value."""
    folded = value.casefold()
    if "*" in token:
        return fnmatch.fnmatchcase(folded, token)
    return folded == token or token in _TOKEN_SPLIT.split(folded)


def _property_list(raw: Any) -> list[str] | None:
    """The ``properties`` array of a JSON body (``None`` when absent or empty)."""
    if not raw:
        return None
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise _validation_error("Invalid input JSON: 'properties' must be an array of strings")
    return raw


def _int_param(raw: Any, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        return int(str(raw).strip())
    except ValueError:
        raise _validation_error(f"{name} must be an integer, got {raw!r}") from None


__all__ = ["DEFAULT_TOKEN", "HubSpotSimConfig", "HubSpotSimulator", "SCHEMAS"]
