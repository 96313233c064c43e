"""Local HubSpot CRM v3 simulator (contacts, companies, deals) served over real HTTP.

Reproduces the parts of ``api.hubapi.com`` a sync client meets: object listing with ``after``
cursors, single-object reads and writes, the search endpoint (filter groups, operators, one sort,
200-per-page and 10,000-total caps, its own per-second limiter and no rate-limit headers), batch
read/create/update/upsert/archive with 207 partial failures, merges, the ten-second burst and
daily limits with the ``X-HubSpot-RateLimit-*`` headers and 429 bodies, HubSpot's error bodies,
and webhooks (arrays of events signed v1 and v3, ``portalId`` naming the account).

Facts that the provider reference marks as unconfirmed are switches on :class:`HubSpotSimConfig`
(list ``limit`` > 100 clamped or rejected, search ``limit`` > 200 clamped or rejected, filter-count
limits, search rate and its scope, ISO dates in search filters, ``Retry-After`` on 429s, daily
headers, the daily-limit scope and time zone).

Choices where the reference is silent: search pages never reach past ``search_total_cap`` (a page
is cut short at the cap, and when more matches exist it still carries ``paging.next.after`` equal
to the cap); a request whose ``after`` is at or beyond the cap gets 400 ``VALIDATION_ERROR``.
``total`` is always the real number of matches. Writes made by one request share one timestamp
(the simulated now). Batch results are shuffled with a seeded RNG. Injected faults never consume
rate-limit budget. Each portal (account) has its own token(s), records and limits.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from operator import itemgetter
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from crm_pipelines.providers.hubspot.api import BATCH_MAX, LIST_PAGE_MAX, SEARCH_PAGE_MAX, SEARCH_TOTAL_CAP
from crm_pipelines.simulator.clock import parse_datetime, utc_iso_ms
from crm_pipelines.simulator.config import AccountSpec, SimConfig
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.formats import EMAIL_RE
from crm_pipelines.simulator.ratelimit import Quota, SlidingWindowLimiter, retry_after as retry_after_header
from crm_pipelines.simulator.server import Account, ApiError, Request, Response, Simulator, api, capped, json_dumps
from crm_pipelines.simulator.store import Record, RecordStore

DEFAULT_TOKEN = "sim-hubspot-token"
ENTITIES = ("contacts", "companies", "deals")
OBJECT_TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals"}
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL"}

SEARCH_QUERY_MAX_CHARS = 3000
DAY_MS = 86_400_000

LIFECYCLE_STAGES = tuple("subscriber lead marketingqualifiedlead salesqualifiedlead opportunity customer evangelist other".split())
DEAL_STAGES = tuple("appointmentscheduled qualifiedtobuy presentationscheduled decisionmakerboughtin contractsent closedwon closedlost".split())
OWNER_IDS = tuple(f"9021000{n}" for n in range(1, 6))

#: Answers to injected faults: status -> (message, category).
FAULT_ANSWERS = {
    423: ("Too much data was synced too fast; wait at least 2 seconds before retrying.", "LOCKED"),
    477: ("A migration of this account is in progress; retry later.", "MIGRATION_IN_PROGRESS"),
    500: ("internal error", "INTERNAL_ERROR"),
    502: ("Bad Gateway: the upstream service did not answer in time.", "BAD_GATEWAY"),
    503: ("Service Unavailable: please retry later.", "SERVICE_UNAVAILABLE"),
    504: ("Gateway Timeout: the request took too long.", "GATEWAY_TIMEOUT"),
}
#: The rate-limit headers of every answer but search's: the burst window's limit, remaining calls and length; the day's limit and remaining.
USAGE_HEADERS = ("X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining", "X-HubSpot-RateLimit-Interval-Milliseconds",
                 "X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining")
RATE_LIMIT_MESSAGES = {"DAILY": "You have reached your daily limit.", "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit."}

MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes."
)
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

#: Range operators as inclusive ``(low, high)`` bounds (``None``: open) of a filter's value.
_RANGE_BOUNDS: dict[str, Callable[[Any], tuple[Any, Any]]] = {
    "EQ": lambda f: (f.value, f.value), "GT": lambda f: (f.value + 1, None), "GTE": lambda f: (f.value, None),
    "LT": lambda f: (None, f.value - 1), "LTE": lambda f: (None, f.value), "BETWEEN": lambda f: (f.value, f.high),
}
#: How each operator compares a record's set value with the filter; ``text`` gives the raw text.
_OPERATORS: dict[str, Callable[[Any, Any, Callable[[], str]], bool]] = {
    "HAS_PROPERTY": lambda v, f, text: True, "NOT_HAS_PROPERTY": lambda v, f, text: False,
    "EQ": lambda v, f, text: v == f.value, "NEQ": lambda v, f, text: v != f.value,
    "IN": lambda v, f, text: v in f.values, "NOT_IN": lambda v, f, text: v not in f.values,
    "CONTAINS_TOKEN": lambda v, f, text: _contains_token(text(), f.value),
    "NOT_CONTAINS_TOKEN": lambda v, f, text: not _contains_token(text(), f.value),
    "LT": lambda v, f, text: v < f.value, "LTE": lambda v, f, text: v <= f.value,
    "GT": lambda v, f, text: v > f.value, "GTE": lambda v, f, text: v >= f.value,
    "BETWEEN": lambda v, f, text: f.value <= v <= f.high,
}
#: The operators a record without the property matches.
_MATCH_UNSET = frozenset(("NOT_HAS_PROPERTY", "NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN"))
_TOKEN_SPLIT = re.compile(r"[\s,;:()\[\]{}<>\"'|/\\]+")


#: What test mutations change on each object type: property -> new value from (generator, RNG).
RANDOM_CHANGES: dict[str, dict[str, Callable[[FakeData, random.Random], str | None]]] = {
    "contacts": {"jobtitle": lambda data, rng: data.job_title() or "Consultor", "phone": lambda data, rng: data.phone(),
                 "lifecyclestage": lambda data, rng: rng.choice(LIFECYCLE_STAGES), "city": lambda data, rng: data.location()[0]},
    "companies": {"industry": lambda data, rng: data.industry(), "phone": lambda data, rng: data.phone(), "city": lambda data, rng: data.location()[0]},
    "deals": {"amount": lambda data, rng: data.amount(), "dealstage": lambda data, rng: rng.choice(DEAL_STAGES)},
}


#: Custom unique-value property that integrations create in a portal to key their own records
#: (crm_pipelines keys its creates with it, so a repeated upsert never creates a duplicate).
INTEGRATION_ID_PROPERTY = "crm_record_id"


#: Custom properties configured in every simulated portal: name -> (type, fieldType, label, options).
def _text(label: str) -> tuple[str, str, str, tuple[str, ...]]:
    return ("string", "text", label, ())


def _select(label: str, *options: str) -> tuple[str, str, str, tuple[str, ...]]:
    return ("enumeration", "select", label, options)


CUSTOM_PROPERTIES: dict[str, dict[str, tuple[str, str, str, tuple[str, ...]]]] = {
    "contacts": {"cpf_cnpj": _text("CPF/CNPJ"), "favorite_color": _text("Favorite color"),
                 "loyalty_tier": _select("Loyalty tier", "bronze", "silver", "gold"), "lead_channel": _text("Lead channel")},
    "companies": {"cpf_cnpj": _text("CPF/CNPJ"), "employee_band": _text("Employee band"), "account_tier": _select("Account tier", "standard", "key")},
    "deals": {"deal_source": _text("Deal source"), "priority_level": _select("Priority level", "low", "medium", "high")},
}
for _props in CUSTOM_PROPERTIES.values():
    _props[INTEGRATION_ID_PROPERTY] = _text("CRM record id")


def _default_id_properties() -> dict[str, tuple[str, ...]]:
    return {"contacts": ("email", INTEGRATION_ID_PROPERTY), "companies": (INTEGRATION_ID_PROPERTY,), "deals": (INTEGRATION_ID_PROPERTY,)}


@dataclass
class HubSpotSimConfig(SimConfig):
    """Everything the HubSpot simulator can be told (shared settings in :class:`SimConfig`).

    Data: ``contacts``/``companies``/``deals`` counts per portal; ``tokens`` of the default portal,
    whose ``portalId`` is ``webhook_portal_id``.

    Limits: ``burst_limit`` per ``burst_window_s`` per token, ``daily_limit`` per
    ``daily_limit_scope`` ("account" or "token"; ``None`` disables it) resetting at midnight in
    ``account_timezone``; search ``search_rate_per_s`` per ``search_rate_scope``.

    Unconfirmed provider facts, as switches: ``list_limit_oversize`` / ``search_limit_oversize``,
    ``search_max_groups`` / ``search_max_filters_per_group`` / ``search_max_filters_total``,
    ``search_429_policy_name``, ``search_accept_iso_dates``, ``retry_after_on_429``,
    ``send_daily_headers``, ``search_counts_toward_daily``.

    ``search_visibility_delay_s`` imitates the search index lag (records modified less than this
    many simulated seconds ago are not yet returned by search; 0 = immediately visible).
    ``id_properties`` lists the properties usable as ``idProperty`` besides ``hs_object_id``.
    ``token_scopes`` (token -> granted scopes such as ``crm.objects.contacts.read``) restricts
    tokens; a token without an entry, or ``None`` for the whole mapping, has every scope.

    Webhooks: with ``webhook_url`` set, every creation, property change, merge and deletion is
    delivered as HubSpot does: JSON arrays of up to ``webhook_batch_max`` events, signed v1 and v3
    with ``webhook_client_secret``, retried with an incremented ``attemptNumber``.
    """

    COUNTS: ClassVar[tuple[str, ...]] = ("contacts", "companies", "deals")

    contacts: int = 100
    companies: int = 20
    deals: int = 40
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)

    burst_limit: int = 100
    burst_window_s: float = 10.0
    daily_limit: int | None = 250_000
    daily_limit_scope: Literal["account", "token"] = "account"
    account_timezone: str = "UTC"
    send_daily_headers: bool = True
    retry_after_on_429: bool = False

    search_rate_per_s: int = 5
    search_rate_scope: Literal["account", "token"] = "token"
    search_429_policy_name: str = "SECONDLY"
    search_counts_toward_daily: bool = True
    search_limit_max: int = SEARCH_PAGE_MAX
    search_limit_oversize: Literal["clamp", "reject"] = "reject"
    search_total_cap: int = SEARCH_TOTAL_CAP
    search_max_groups: int = 5
    search_max_filters_per_group: int = 6
    search_max_filters_total: int = 18
    search_accept_iso_dates: bool = True
    search_visibility_delay_s: float = 0.0

    list_limit_oversize: Literal["clamp", "reject"] = "clamp"
    batch_input_max: int = BATCH_MAX
    validate_enumerations: bool = True
    id_properties: dict[str, tuple[str, ...]] = field(default_factory=_default_id_properties)
    token_scopes: dict[str, tuple[str, ...]] | None = None
    webhook_client_secret: str = "sim-hubspot-client-secret"
    webhook_app_id: int = 54321
    webhook_portal_id: int = 62515
    webhook_batch_max: int = 100

    def check(self) -> None:
        if not self.tokens:
            raise ValueError("at least one token is required")


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

    @cached_property
    def synthesized(self) -> tuple[str, ...]:
        """Properties computed from the row itself (id and timestamps)."""
        return ("hs_object_id", "createdate", self.delta_property)

    @cached_property
    def all_properties(self) -> tuple[str, ...]:
        return self.stored + self.synthesized

    def kind(self, name: str) -> str:
        """``date``, ``number`` or ``string``: how search compares the property."""
        if name in ("createdate", self.delta_property) or name in self.stored_dates:
            return "date"
        if name == "hs_object_id" or name in self.numeric:
            return "number"
        return "string"


def _schema(entity: str, delta_property: str, stored: str, defaults: str, enumerations: Mapping[str, tuple[str, ...]], **facts: str) -> _Schema:
    """One object type, declared with space-separated names: its built-in stored properties
    (the portal's custom ones follow), default read properties and ``facts`` (fields of
    :class:`_Schema`); the custom properties' options join ``enumerations``."""
    custom = CUSTOM_PROPERTIES[entity]
    names = tuple(dict.fromkeys((*stored.split(), INTEGRATION_ID_PROPERTY, *custom)))
    options = enumerations | {name: spec[3] for name, spec in custom.items() if spec[3]}
    typed = {key: (tuple if key in ("required_any", "required_all", "text_search") else frozenset)(value.split()) for key, value in facts.items()}
    return _Schema(entity, delta_property, names, tuple(defaults.split()), enumerations=options, **typed)


SCHEMAS: dict[str, _Schema] = {
    "contacts": _schema(
        "contacts", "lastmodifieddate",
        "email firstname lastname phone mobilephone company jobtitle lifecyclestage hubspot_owner_id hs_additional_emails city state country cpf_cnpj",
        "createdate email firstname hs_object_id lastmodifieddate lastname", {"lifecyclestage": LIFECYCLE_STAGES},
        required_any="email firstname lastname", numeric="hubspot_owner_id", text_search="firstname lastname email phone mobilephone company",
    ),
    "companies": _schema(
        "companies", "hs_lastmodifieddate", "name domain hs_additional_domains phone industry city state country hubspot_owner_id cpf_cnpj",
        "createdate domain hs_lastmodifieddate hs_object_id name", {},
        required_any="name domain", numeric="hubspot_owner_id", text_search="name domain phone",
    ),
    "deals": _schema(
        "deals", "hs_lastmodifieddate", "dealname amount dealstage pipeline closedate hubspot_owner_id deal_currency_code hs_is_closed hs_is_closed_won",
        "amount closedate createdate dealname dealstage hs_lastmodifieddate hs_object_id pipeline", {"dealstage": DEAL_STAGES, "pipeline": ("default",)},
        required_all="dealname dealstage pipeline", read_only_stored="hs_is_closed hs_is_closed_won", numeric="amount hubspot_owner_id",
        stored_dates="closedate", text_search="dealname",
    ),
}

ID_BASES = {"contacts": 1_001, "companies": 5_000_000_001, "deals": 9_000_000_001}


class _Objects(RecordStore):
    """One object type of a portal: its records, schema and data generator."""

    def __init__(self, schema: _Schema, seed: str, id_properties: Iterable[str]) -> None:
        super().__init__(schema.entity, first_id=ID_BASES[schema.entity], gaps=random.Random(f"{seed}-{schema.entity}-ids"),
                         indexed={"email", *id_properties} if schema.entity == "contacts" else set(id_properties))
        self.schema = schema
        self.data = FakeData(f"{seed}-{schema.entity}")

    def synthesized(self, row: Record) -> dict[str, str]:
        """The properties computed from the row itself (:attr:`_Schema.synthesized`): its id and timestamps."""
        return dict(zip(self.schema.synthesized, (str(row.id), utc_iso_ms(row.created), utc_iso_ms(row.updated))))

    def value(self, row: Record, name: str) -> str | None:
        """A property's value as the API shows it (id and timestamps synthesized)."""
        return self.synthesized(row)[name] if name in self.schema.synthesized else row.values.get(name)

    def by_id(self, raw_id: str) -> Record | None:
        """The row (live or archived) whose object id is ``raw_id``."""
        return self.get(int(raw_id)) if raw_id.isdigit() else None

    def find_by(self, name: str, value: str, archived: bool = False) -> Record | None:
        """The record whose ``name`` equals ``value``: by object id (``hs_object_id``) the live or, if
        asked, archived one; by an indexed property a live one."""
        if name == "hs_object_id":
            row = self.by_id(value)
            return row if row is not None and (row.deleted is not None) == archived else None
        return None if archived else self.find(name, value)


class Portal(Account):
    """A HubSpot account: its records and its burst, daily and search limits."""

    def __init__(self, sim: HubSpotSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg = sim.config
        self.quota = Quota(sim, "TEN_SECONDLY_ROLLING", cfg.burst_limit, cfg.burst_window_s, cfg.daily_limit, ZoneInfo(cfg.account_timezone))
        self.search = SlidingWindowLimiter(max(1, cfg.search_rate_per_s), 1.0)
        self.limiters = (*self.quota.limiters, self.search)
        self.shuffle_rng = random.Random(f"{self.seed}-shuffle")
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small acyclic objects: collection passes would only cost time
        try:
            self.stores = {entity: sim.generate(self, entity) for entity in ENTITIES}
        finally:
            if gc_was_enabled:
                gc.enable()


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return body | {key: value for key, value in extra.items() if value is not None}



def _trace(trace_id: str | None) -> dict[str, list[str]] | None:
    return None if trace_id is None else {"objectWriteTraceId": [trace_id]}


def _validation_body(details: list[dict[str, Any]], trace_id: str | None) -> dict[str, Any]:
    summary = [
        {"isValid": False, "message": d["message"], "error": d.get("code", "INVALID"), "name": (d.get("context") or {}).get("propertyName", [""])[0]}
        for d in details
    ]
    message = "Property values were not valid: " + json.dumps(summary, ensure_ascii=False)
    return _error_body(message, "VALIDATION_ERROR", errors=details, context=_trace(trace_id))


def _conflict_body(existing_id: int, trace_id: str | None) -> dict[str, Any]:
    return _error_body(f"Contact already exists. Existing ID: {existing_id}", "CONFLICT", context=_trace(trace_id))


def _not_found_errors(entity: str, ids: list[str]) -> list[dict[str, Any]]:
    """The error a batch answers for the ids it found no record for (none when it found all)."""
    message = f"Could not get some {SINGULAR[entity]} objects, they may be deleted or not exist. Check that ids are valid."
    return [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": message, "context": {"ids": ids}}] if ids else []


def _error(status: int, message: str, category: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return Response.json(status, _error_body(message, category, **extra), headers)


def _validation_error(message: str, **extra: Any) -> ApiError:
    return ApiError(_error(400, message, "VALIDATION_ERROR", **extra))


@dataclass
class _Filter:
    """One compiled search filter."""

    prop: str
    operator: str
    kind: str
    value: Any = None
    high: Any = None
    values: tuple[Any, ...] = ()

    def delta_bounds(self, delta_property: str) -> tuple[Any, Any] | None:
        """The bounds this filter puts on the delta property, if it is a range filter on it."""
        return _RANGE_BOUNDS[self.operator](self) if self.prop == delta_property and self.operator in _RANGE_BOUNDS else None

    def matches(self, value: Any, text: Callable[[], str]) -> bool:
        """Whether a record's comparable ``value`` (``None`` when unset) passes; ``text`` gives its raw text."""
        if value is None:
            return self.operator in _MATCH_UNSET
        try:
            return _OPERATORS[self.operator](value, self, text)
        except TypeError:
            return False


class HubSpotSimulator(Simulator):
    """HubSpot CRM v3 over real HTTP. See the module docstring and :class:`HubSpotSimConfig`.

    Python-side helpers for tests: :meth:`records`, :meth:`count`, :meth:`modify`, :meth:`create`,
    :meth:`archive`, :meth:`merge` (each takes ``account=`` for a portal other than the default).
    """

    provider = "hubspot"
    server_name = "hubspot-simulator"
    config_class = HubSpotSimConfig
    ANSWERS = {
        "unauthorized": (401, AUTH_MESSAGE, "INVALID_AUTHENTICATION"),
        "not_found": (404, "Unknown path: {request.method} {request.path}", "OBJECT_NOT_FOUND"),
        "method_not_allowed": (405, "HTTP method {request.method} is not supported by this resource", "METHOD_NOT_ALLOWED"),
        "internal_error": (500, "internal error", "INTERNAL_ERROR"),
        "invalid_json": (400, "Invalid input JSON: {error}", "VALIDATION_ERROR"),
        "not_an_object": (400, "Invalid input JSON: expected a JSON object", "VALIDATION_ERROR"),
    }
    account_class = Portal
    config: HubSpotSimConfig
    ENTITIES = {**{entity: entity for entity in ENTITIES}, **OBJECT_TYPE_IDS}
    SPREAD_MODIFICATIONS = True
    DELETE_WORD = ("archive", "archived")
    CLI_DEFAULTS = {"contacts": 1000, "companies": 100, "deals": 200}
    CLI_ALIASES = {"--rate-limit": "--burst-limit", "--burst-window": "--burst-window-s", "--search-rate": "--search-rate-per-s"}

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec(str(self.config.webhook_portal_id), self.config.tokens)

    def generate(self, portal: Portal, entity: str) -> _Objects:
        store = _Objects(SCHEMAS[entity], portal.seed, self.config.id_properties.get(entity, ()))
        store.shuffle_rng = portal.shuffle_rng
        store.seed([Record(store.allocate_id(), *self.seeded_history(store.data.rng), self.new_values(portal, store, entity))
                    for _ in range(portal.count_of(self, entity))])
        return store

    def new_values(self, portal: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        """A generated record's values, drawn in the order of the schema's stored properties (unset ones left out)."""
        data = store.data
        if store.name == "contacts":
            person = data.person()
            values = [*itemgetter("email", "first_name", "last_name", "phone", "mobile", "company", "job_title")(person),
                      data.pick(LIFECYCLE_STAGES), _owner(data), None, *itemgetter("city", "state", "country", "document")(person)]
        elif store.name == "companies":
            org = data.organization()
            values = [*itemgetter("name", "domain")(org), None, *itemgetter("phone", "industry", "city", "state", "country")(org), _owner(data),
                      org["document"]]
        else:
            deal, stage = data.deal(), data.pick(DEAL_STAGES)
            close_ms = self.reference_ms + int((data.rng.random() - 0.5) * 120 * DAY_MS)
            values = [deal["name"], deal["amount"], stage, "default", utc_iso_ms(close_ms), _owner(data), deal["currency"]]
        return _with_closed_flags({name: value for name, value in zip(store.schema.stored, values) if value is not None})

    def error_response(self, status: int, message: str, category: str) -> Response:
        return _error(status, message, category)

    def fault_response(self, status: int, request: Request) -> Response:
        """Injected answers with HubSpot-style bodies: a TEN_SECONDLY_ROLLING 429 (with the
        rate-limit headers when the request carries a valid token), 423, 477 (with
        ``Retry-After``) and 5xx."""
        if status == 429:
            portal = self.authenticate(request)
            headers = self._usage_headers(portal, request.token, 0) if isinstance(portal, Portal) else {}
            return self._rate_limited("TEN_SECONDLY_ROLLING", headers, retry_after=self.config.burst_window_s)
        message, category = FAULT_ANSWERS.get(status, (f"HTTP {status}", "UNKNOWN_ERROR"))
        return _error(status, message, category, headers={"Retry-After": "2"} if status == 477 else None)

    def admit(self, request: Request) -> Response | None:
        """Search has its own per-second limiter and sends no rate-limit headers; other calls count
        against the burst window and the daily limit. Then the token's scopes."""
        portal, token, meta = request.account, request.token, request.route.meta
        rejection, request.response_headers = self._gate(portal, token, search=bool(meta.get("search")))
        if rejection is not None:
            return rejection
        granted = None if self.config.token_scopes is None else self.config.token_scopes.get(token)
        entity = OBJECT_TYPE_IDS.get(request.params.get("obj", ""), request.params.get("obj", ""))
        required = f"crm.objects.{entity}.{'write' if meta.get('write') else 'read'}"
        if granted is not None and entity in ENTITIES and required not in granted:
            raise ApiError(_error(
                403, MISSING_SCOPES_MESSAGE, "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.", "context": {"requiredGranularScopes": [required]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            ))
        return None

    def _daily_key(self, token: str | None) -> str | None:
        return token if self.config.daily_limit_scope == "token" else "account"

    def _usage_headers(self, portal: Portal, token: str | None, remaining: int) -> dict[str, str]:
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return {}
        return portal.quota.headers(USAGE_HEADERS, remaining, int(cfg.burst_window_s * 1000), self._daily_key(token), daily=cfg.send_daily_headers)

    def _rate_limited(self, policy: str, headers: Mapping[str, str], retry_after: float) -> Response:
        body = {
            "status": "error", "message": RATE_LIMIT_MESSAGES.get(policy, f"You have reached your {policy.lower()} limit."), "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy, "requestId": str(uuid.uuid4()),
        }
        retry = retry_after_header(retry_after) if self.config.retry_after_on_429 else {}
        return Response.json(429, body, {**headers, **retry})

    def _gate(self, portal: Portal, token: str | None, *, search: bool = False) -> tuple[Response | None, dict[str, str]]:
        """Daily, then burst (or search: per-second, counted daily if so configured, no headers)
        limits; returns (429 or None, headers)."""
        cfg = self.config
        if not cfg.rate_limits_enabled:
            return None, {}
        key = token if cfg.search_rate_scope == "token" or not search else "account"
        policy, decision = portal.quota.take(key, self._daily_key(token), daily=cfg.search_counts_toward_daily or not search,
                                             window=(cfg.search_429_policy_name, portal.search) if search else None)
        headers = {} if search else self._usage_headers(portal, token, decision.remaining)
        return None if policy is None else self._rate_limited(policy, headers, decision.retry_after_s), headers

    def on_change(self, portal: Account, store: RecordStore, action: str, row: Record, previous: Mapping[str, Any]) -> None:
        kind = {"create": "creation", "update": "propertyChange", "delete": "deletion"}[action]
        self._event(portal, store.name, kind, row, {name: row.values.get(name) for name in previous})

    def _event(self, portal: Account, entity: str, kind: str, row: Record, changes: Mapping[str, Any]) -> None:
        if self.webhooks is None:
            return
        base = {
            "subscriptionId": 2000 + ENTITIES.index(entity), "portalId": int(portal.id) if portal.id.isdigit() else portal.id,
            "appId": self.config.webhook_app_id, "occurredAt": row.deleted if kind == "deletion" else row.updated,
            "attemptNumber": 0, "objectId": row.id, "changeSource": "API", "subscriptionType": f"{SINGULAR[entity].lower()}.{kind}",
        }
        if kind == "merge":
            extras = [{"primaryObjectId": row.id, "mergedObjectIds": [int(changes["mergedObjectId"])], "newObjectId": row.id,
                       "numberOfPropertiesMoved": int(changes["numberOfPropertiesMoved"])}]
        elif kind == "propertyChange":
            extras = [{"propertyName": name, "propertyValue": "" if value is None else value} for name, value in changes.items()]
        else:
            extras = [{"changeFlag": {"creation": "CREATED", "deletion": "DELETED"}[kind]}]
        for extra in extras:
            self.emit(base | {"eventId": next(self.event_ids)} | extra)

    def delivery_bodies(self, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
        return [(json_dumps(events), {})]

    def on_retry(self, events: list[dict[str, Any]], attempt: int) -> None:
        for event in events:
            event["attemptNumber"] = attempt

    def sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        """HubSpot's v1 and v3 signature headers (v3 stamped with the real time, as HubSpot does)."""
        from crm_pipelines.webhooks.signatures import sign_hubspot_v1, sign_hubspot_v3

        secret, timestamp = self.config.webhook_client_secret, int(time.time() * 1000)
        return {
            "X-HubSpot-Signature": sign_hubspot_v1(secret, body), "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, timestamp), "X-HubSpot-Request-Timestamp": str(timestamp),
        }

    def _store(self, request: Request) -> _Objects:
        name = request.params["obj"]
        store = request.account.stores.get(OBJECT_TYPE_IDS.get(name, name))
        if store is None:
            raise ApiError(_error(404, f"Unable to infer object type from: {name}", "OBJECT_NOT_FOUND"))
        return store

    @staticmethod
    def _render(store: _Objects, row: Record, properties: Iterable[str] | None, *, only_set: bool = False) -> dict[str, Any]:
        """The API shape of a row. ``properties=None`` means the object's default set."""
        shown, values = store.synthesized(row), row.values
        props = {name: shown[name] if name in shown else values.get(name) for name in _rendered_names(store.name, None if properties is None else tuple(properties))}
        props = {name: value for name, value in props.items() if value is not None} if only_set else props
        obj: dict[str, Any] = {"id": str(row.id), "properties": props, "createdAt": shown["createdate"], "updatedAt": shown[store.schema.delta_property],
                               "archived": row.deleted is not None}
        if row.deleted is not None:
            obj["archivedAt"] = utc_iso_ms(row.deleted)
        return obj

    def _batch_answer(self, status: int, store: _Objects, started: str, results: list[Any], errors: list[dict[str, Any]]) -> Response:
        """A batch answer: ``status``, or 207 with the errors; results in seeded-random order."""
        store.shuffle_rng.shuffle(results)
        body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": utc_iso_ms(self.clock.now_ms())}
        return Response.json(207 if errors else status, body | ({"numErrors": len(errors), "errors": errors} if errors else {}))

    def _batch(self, request: Request) -> tuple[_Objects, dict[str, Any], list[dict[str, Any]]]:
        """The object type, body and ``inputs`` (at most ``batch_input_max`` objects) of a batch request."""
        store, body = self._store(request), self.body_object(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
            raise _validation_error("Invalid input JSON: 'inputs' must be an array of objects")
        if len(inputs) > self.config.batch_input_max:
            raise _validation_error(f"Batch input size {len(inputs)} is over the maximum of {self.config.batch_input_max} inputs")
        return store, body, inputs

    def _id_property(self, store: _Objects, name: str | None) -> str:
        if name is None or name == "hs_object_id":
            return "hs_object_id"
        if name not in self.config.id_properties.get(store.schema.entity, ()):
            raise _validation_error(
                f"{name} is not a unique property of {store.schema.entity}; it cannot be used as idProperty",
                errors=[{"message": f"Invalid idProperty: {name}", "code": "INVALID_ID_PROPERTY"}],
            )
        return name

    def _normalize_properties(self, store: _Objects, properties: Any, *, creating: bool) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
        """Convert values to strings and collect HubSpot-style validation error details."""
        schema, errors, out = store.schema, [], {}
        if not isinstance(properties or {}, dict):
            return {}, [{"message": "properties must be an object", "code": "INVALID_INPUT"}]
        for name, raw in (properties or {}).items():
            if name in schema.synthesized or name in schema.read_only_stored:
                errors.append(_detail(f'"{name}" is a read only property; its value cannot be set.', "READ_ONLY_VALUE", name))
            elif name not in schema.stored:
                errors.append(_detail(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST", name))
            elif raw is None:
                out[name] = None
            elif not isinstance(raw, (bool, int, float, str)):
                errors.append(_detail(f'Invalid value for "{name}"', "INVALID_VALUE", name))
            else:
                value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
                options = schema.enumerations.get(name) if self.config.validate_enumerations else None
                if name == "email" and value and not EMAIL_RE.match(value):
                    errors.append(_detail(f"Email address {value} is invalid", "INVALID_EMAIL", name))
                elif name in schema.stored_dates and value and (value := _as_date(value)) is None:
                    errors.append(_detail(f"{raw} is not a valid date", "INVALID_DATE", name))
                elif options and value and value not in options:
                    errors.append(_detail(f"{value} was not one of the allowed options: {list(options)}", "INVALID_OPTION", name))
                else:
                    out[name] = value
        if creating and not errors:
            if schema.required_any and not any(out.get(name) for name in schema.required_any):
                errors.append(_detail(f"At least one of {', '.join(schema.required_any)} is required", "REQUIRED_PROPERTY", *schema.required_any))
            missing = [name for name in schema.required_all if not out.get(name)]
            if missing:
                errors.append(_detail(f"Missing required properties: {', '.join(missing)}", "REQUIRED_PROPERTY", *missing))
        return _with_closed_flags(out), errors

    @staticmethod
    def _conflict(store: _Objects, values: Mapping[str, str | None], exclude_id: int | None) -> int | None:
        """Id of another live contact already using ``values['email']``, if any."""
        existing = store.find_by("email", values["email"]) if store.name == "contacts" and values.get("email") else None
        return existing.id if existing is not None and existing.id != exclude_id else None

    @api("GET", "/crm/v3/properties/{obj}")
    def _properties(self, request: Request) -> Response:
        """The object's properties: HubSpot-defined ones (``hubspotDefined``) and the portal's custom ones."""
        store = self._store(request)
        entity = store.schema.entity
        custom = CUSTOM_PROPERTIES[entity]
        results = []
        for name in (*store.schema.stored, *store.schema.synthesized):
            kind, field_type, label, options = custom.get(name) or (
                "datetime" if store.schema.kind(name) == "date" else "number" if store.schema.kind(name) == "number" else "string",
                "text", name.replace("_", " ").capitalize(), store.schema.enumerations.get(name, ()))
            results.append({
                "name": name, "label": label, "type": "enumeration" if options and kind == "string" else kind, "fieldType": field_type,
                "groupName": f"{SINGULAR[entity].lower()}information", "hubspotDefined": name not in custom,
                "hasUniqueValue": name == INTEGRATION_ID_PROPERTY, "archived": False,
                "options": [{"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(options)],
                "modificationMetadata": {"archivable": name in custom, "readOnlyValue": name in store.schema.synthesized or name in store.schema.read_only_stored},
            })
        return Response.json(200, {"results": results})

    @api("GET", "/crm/v3/objects/{obj}")
    def _list(self, request: Request) -> Response:
        store = self._store(request)
        limit = _page_size(request.query_value("limit"), LIST_PAGE_MAX, self.config.list_limit_oversize,
                           lambda limit: _validation_error(f"limit must be less than or equal to {LIST_PAGE_MAX}, got {limit}"))
        after_text = request.query_value("after")
        after = _int_param(after_text, 0, "after") if after_text else 0
        page, next_id = store.page_after(after, limit, deleted=_archived(request))
        body: dict[str, Any] = {"results": [self._render(store, row, request.query_list("properties") or None) for row in page]}
        if next_id is not None:
            query = [("after", str(next_id)), ("limit", str(limit))]
            query += [(k, v) for k, values in request.query.items() if k not in ("after", "limit") for v in values]
            body["paging"] = {"next": {"after": str(next_id), "link": f"{self.base_url}{request.path}?{urlencode(query)}"}}
        return Response.json(200, body)

    def _lookup(self, store: _Objects, request: Request) -> Record:
        raw_id = request.params["id"]
        archived = _archived(request)
        row = store.find_by(self._id_property(store, request.query_value("idProperty")), raw_id, archived)
        if row is None:
            raise ApiError(_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND", context={"id": [raw_id]}))
        return row

    @api("GET", "/crm/v3/objects/{obj}/{id}")
    def _get_one(self, request: Request) -> Response:
        store = self._store(request)
        return Response.json(200, self._render(store, self._lookup(store, request), request.query_list("properties") or None))

    @api("POST", "/crm/v3/objects/{obj}", write=True)
    def _create_one(self, request: Request) -> Response:
        store = self._store(request)
        values = self._checked(store, self.body_object(request).get("properties"), creating=True)
        return Response.json(201, self._written(store, self.write(store, None, values, self.clock.now_ms()), None))

    @api("PATCH", "/crm/v3/objects/{obj}/{id}", write=True)
    def _update_one(self, request: Request) -> Response:
        store, body = self._store(request), self.body_object(request)
        row = self._lookup(store, request)
        values = self._checked(store, body.get("properties"), creating=False, exclude_id=row.id)
        return Response.json(200, self._written(store, self.write(store, row, values, self.clock.now_ms()), None))

    @api("DELETE", "/crm/v3/objects/{obj}/{id}", write=True)
    def _delete_one(self, request: Request) -> Response:
        return self._archive(self._store(request), [request.params["id"]])

    @api("POST", "/crm/v3/objects/{obj}/batch/archive", write=True)
    def _batch_archive(self, request: Request) -> Response:
        store, _body, inputs = self._batch(request)
        return self._archive(store, [item.get("id", "") for item in inputs])

    def _archive(self, store: _Objects, raw_ids: Iterable[Any]) -> Response:
        """Archive the live records among ``raw_ids``; unknown ids are ignored, as HubSpot does."""
        now_ms = self.clock.now_ms()
        for row in filter(None, map(store.by_id, map(str, raw_ids))):
            store.delete(row, now_ms)
        return Response.empty(204)

    @api("POST", "/crm/v3/objects/{obj}/merge", write=True)
    def _merge_endpoint(self, request: Request) -> Response:
        """``POST .../merge`` with ``primaryObjectId`` and ``objectIdToMerge``: the primary survives."""
        store, body = self._store(request), self.body_object(request)
        row = self._merge_rows(request.account, store, str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", "")))
        return Response.json(200, self._render(store, row, list(store.schema.stored), only_set=True))

    def _merge_rows(self, portal: Account, store: _Objects, primary_id: str, merged_id: str) -> Record:
        primary, merged = store.by_id(primary_id), store.by_id(merged_id)
        if primary is None or merged is None or primary.deleted is not None or merged.deleted is not None or primary_id == merged_id:
            raise _validation_error(f"cannot merge {merged_id} into {primary_id}: both must be distinct live records")
        fills = {name: merged[name] for name in store.schema.stored if primary[name] in (None, "") and merged[name] not in (None, "")}
        listener, store.on_change = store.on_change, None  # HubSpot sends one merge event, not the parts
        try:
            now_ms = self.clock.now_ms()
            store.delete(merged, now_ms)
            store.update(primary, fills, now_ms)
        finally:
            store.on_change = listener
        self._event(portal, store.name, "merge", primary, {"mergedObjectId": str(merged.id), "numberOfPropertiesMoved": str(len(fills))})
        return primary

    @api("POST", "/crm/v3/objects/{obj}/batch/read")
    def _batch_read(self, request: Request) -> Response:
        store, body, inputs = self._batch(request)
        archived = _archived(request)
        id_property = self._id_property(store, body.get("idProperty"))
        properties = _property_list(body.get("properties"))
        started = utc_iso_ms(self.clock.now_ms())
        found: dict[int, Record] = {}
        missing = []
        for raw_id in (str(item.get("id", "")) for item in inputs):
            row = store.find_by(id_property, raw_id, archived)
            if row is None:
                missing.append(raw_id)
            else:
                found.setdefault(row.id, row)
        results = [self._render(store, row, properties) for row in found.values()]
        return self._batch_answer(200, store, started, results, _not_found_errors(store.name, missing))

    def _checked(self, store: _Objects, properties: Mapping[str, Any] | None, *, creating: bool, exclude_id: int | None = None,
                 trace_id: str | None = None, errors: list[dict[str, Any]] | None = None) -> dict[str, str | None] | None:
        """Validate one input and check it against unique properties.

        Without a trace id (``trace_id`` None) a bad input fails the whole request (400, or 409 for
        a duplicate); with one, the error is added to ``errors`` and None is returned.
        """
        values, details = self._normalize_properties(store, properties, creating=creating)
        existing = None if details else self._conflict(store, values, exclude_id)
        if not details and existing is None:
            return values
        status, body = (400, _validation_body(details, trace_id)) if details else (409, _conflict_body(existing, trace_id))
        if trace_id is None:
            raise ApiError(Response.json(status, body))
        errors.append(body)
        return None

    def _written(self, store: _Objects, row: Record, trace_id: str | None) -> dict[str, Any]:
        """A write's result for a row, carrying its trace id when the input had one."""
        result = self._render(store, row, list(store.schema.stored), only_set=True)
        return result if trace_id is None else result | {"objectWriteTraceId": trace_id}

    @api("POST", "/crm/v3/objects/{obj}/batch/create", write=True, mode="create")
    @api("POST", "/crm/v3/objects/{obj}/batch/update", write=True, mode="update")
    @api("POST", "/crm/v3/objects/{obj}/batch/upsert", write=True, mode="upsert")
    def _batch_write(self, request: Request) -> Response:
        """Create records, or update those found by id or ``idProperty`` (an upsert creates those
        not found; each result says ``new``).

        Without trace ids the first bad input (or, for a create, an e-mail twice) fails the whole
        batch and nothing is written; with them each input is written or answers its own error.
        Traced creates are written one by one, so a later input conflicts with an earlier one.
        """
        mode = request.route.meta["mode"]
        store, _body, inputs = self._batch(request)
        if mode != "create":
            _refuse_duplicate_ids(inputs, upsert=mode == "upsert")
        traced = _traced(inputs)
        started, now_ms = utc_iso_ms(self.clock.now_ms()), self.clock.now_ms()
        plans, results, missing, errors, emails = [], [], [], [], set()
        at_once = mode == "create" and traced  # then a later input conflicts with an earlier one
        for item in inputs:
            target = (None, item.get("properties")) if mode == "create" else self._target(store, item, upsert=mode == "upsert")
            if target is None:
                missing.append(str(item.get("id", "")))
                continue
            row, properties = target
            trace_id = str(item["objectWriteTraceId"]) if traced else None
            values = self._checked(store, properties, creating=row is None, exclude_id=row.id if row else None, trace_id=trace_id, errors=errors)
            if values is None:
                continue
            if mode == "create" and not traced:
                _refuse_repeated_email(store, values, emails)
            if at_once:
                results.append(self._written(store, self.write(store, None, values, now_ms), trace_id))
            else:
                plans.append((row, values, trace_id))
        for row, values, trace_id in plans:
            result = self._written(store, self.write(store, row, values, now_ms), trace_id)
            results.append(result | {"new": row is None} if mode == "upsert" else result)
        return self._batch_answer(201 if mode == "create" else 200, store, started, results, _not_found_errors(store.name, missing) + errors)

    def _target(self, store: _Objects, item: dict[str, Any], *, upsert: bool) -> tuple[Record | None, Any] | None:
        """The row a batch update or upsert input names (``None`` for one an upsert creates) and the
        properties to write (those of a creation carry the ``idProperty`` value); ``None`` when the
        input names no record and creates none."""
        raw_id = str(item.get("id", ""))
        id_property = self._id_property(store, item.get("idProperty"))
        row = store.find_by(id_property, raw_id)
        if row is None and (not upsert or id_property == "hs_object_id"):
            return None
        properties = dict(item.get("properties") or {}) if upsert else item.get("properties")
        if row is None:
            properties.setdefault(id_property, raw_id)
        return row, properties

    @api("POST", "/crm/v3/objects/{obj}/search", search=True)
    def _search(self, request: Request) -> Response:
        store, body, cfg = self._store(request), self.body_object(request), self.config
        groups = self._compile_groups(store, body.get("filterGroups") or [])
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > SEARCH_QUERY_MAX_CHARS):
            raise _validation_error(f"query must be a string of at most {SEARCH_QUERY_MAX_CHARS} characters")
        sort_prop, descending = self._parse_sort(store, body.get("sorts"))
        limit = _page_size(body.get("limit"), cfg.search_limit_max, cfg.search_limit_oversize, lambda limit: _validation_error(
            f"Limit must be less than or equal to {cfg.search_limit_max}",
            errors=[{"message": f"limit {limit} is greater than {cfg.search_limit_max}", "code": "INVALID_LIMIT"}]))
        after = _int_param(body.get("after"), 0, "after")
        if after < 0:
            raise _validation_error("after must be a non-negative offset")
        if after >= cfg.search_total_cap:
            raise _validation_error(
                f"Cannot page beyond {cfg.search_total_cap} results; narrow the search instead",
                errors=[{"message": f"after {after} is not below the {cfg.search_total_cap} result limit", "code": "PAGING_LIMIT"}],
            )
        properties = _property_list(body.get("properties"))
        window = None if query else self._pure_delta_window(store, groups, sort_prop, descending)
        end = min(after + limit, cfg.search_total_cap)
        if window is not None:  # the delta-sync shape: answered from the index without a scan
            start, stop = window
            total, page = stop - start, [store.rows[row_id] for _, row_id in store.delta[start + after : min(start + end, stop)]]
        else:
            matches = [row for row in self._matching_rows(store, groups) if not query or self._matches_query(store, row, query)]
            total, page = len(matches), self._sorted(store, matches, sort_prop, descending)[after:end]
        answer = {"total": total, "results": [self._render(store, row, properties) for row in page]}
        return Response.json(200, answer | ({"paging": {"next": {"after": str(end)}}} if end < total and page else {}))

    def _compile_groups(self, store: _Objects, raw_groups: Any) -> list[list[_Filter]]:
        cfg = self.config
        if not isinstance(raw_groups, list):
            raise _validation_error("Invalid input JSON: 'filterGroups' must be an array")
        if len(raw_groups) > cfg.search_max_groups:
            raise _validation_error(f"Too many filter groups: {len(raw_groups)}; the maximum is {cfg.search_max_groups}")
        total, groups = 0, []
        for raw_group in raw_groups:
            filters = raw_group.get("filters") if isinstance(raw_group, dict) else None
            if not isinstance(filters, list):
                raise _validation_error("Invalid input JSON: each filter group needs a 'filters' array")
            if len(filters) > cfg.search_max_filters_per_group:
                raise _validation_error(f"Too many filters in a group: {len(filters)}; the maximum is {cfg.search_max_filters_per_group}")
            total += len(filters)
            if total > cfg.search_max_filters_total:
                raise _validation_error(f"Too many filters in total; the maximum is {cfg.search_max_filters_total}")
            groups.append([self._compile_filter(store, raw) for raw in filters])
        return groups

    def _compile_filter(self, store: _Objects, raw: Any) -> _Filter:
        if not isinstance(raw, dict):
            raise _validation_error("Invalid input JSON: a filter must be an object")
        prop, operator = raw.get("propertyName"), raw.get("operator", "EQ")
        if operator not in _OPERATORS:
            raise _validation_error(f"Unknown filter operator: {operator}")
        if not isinstance(prop, str) or prop not in store.schema.all_properties:
            message = f'Property "{prop}" does not exist'
            raise _validation_error(message, errors=[_detail(message, "PROPERTY_DOESNT_EXIST", str(prop))])
        compiled = _Filter(prop, operator, store.schema.kind(prop))
        if operator in ("IN", "NOT_IN"):
            values = raw.get("values")
            if not isinstance(values, list) or not values:
                raise _validation_error(f"Operator {operator} needs a non-empty 'values' array")
            compiled.values = tuple(self._filter_value(compiled.kind, value, prop) for value in values)
        elif operator not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            if raw.get("value") is None:
                raise _validation_error(f"Operator {operator} on {prop} needs a 'value'")
            tokens = operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
            compiled.value = str(raw["value"]).casefold() if tokens else self._filter_value(compiled.kind, raw["value"], prop)
            if operator == "BETWEEN":
                if raw.get("highValue") is None:
                    raise _validation_error(f"Operator BETWEEN on {prop} needs a 'highValue'")
                compiled.high = self._filter_value(compiled.kind, raw["highValue"], prop)
        return compiled

    def _filter_value(self, kind: str, raw: Any, prop: str) -> Any:
        """A filter's value in comparable form (dates as epoch ms or, if accepted, ISO text)."""
        text = str(raw).strip()
        try:
            if kind == "date" and re.fullmatch(r"-?\d+", text):
                return int(text)
            if kind == "date" and not self.config.search_accept_iso_dates:
                raise ValueError("ISO dates disabled")
            return _comparable(kind, text)
        except ValueError:
            raise _validation_error(f"{text} is not a valid {kind} value for property {prop}") from None

    @staticmethod
    def _typed_value(store: _Objects, row: Record, prop: str, kind: str) -> Any:
        """The row's value of ``prop`` in comparable form, or ``None`` when unset/unparsable."""
        if prop == "createdate":
            return row.created
        if prop == store.schema.delta_property:
            return row.updated
        if prop == "hs_object_id":
            return float(row.id)
        raw = row.values.get(prop)
        if raw is None or raw == "":
            return None
        try:
            return _comparable(kind, raw)
        except ValueError:
            return None

    def _row_matches(self, store: _Objects, row: Record, filters: list[_Filter]) -> bool:
        for flt in filters:
            if not flt.matches(self._typed_value(store, row, flt.prop, flt.kind), lambda: str(store.value(row, flt.prop) or "")):
                return False
        return True

    def _delta_range(self, store: _Objects, filters: list[_Filter]) -> tuple[int, int] | None:
        """Inclusive ms bounds implied by the group's range filters on the delta property, never
        past what search can see yet (``search_visibility_delay_s``)."""
        ranges = [bounds for flt in filters if (bounds := flt.delta_bounds(store.schema.delta_property)) is not None]
        if not ranges:
            return None
        low = max([-(1 << 62)] + [low for low, _ in ranges if low is not None])
        return low, min([self._visible_until()] + [high for _, high in ranges if high is not None])

    def _visible_until(self) -> int:
        """The last modification time search already sees."""
        delay_s = self.config.search_visibility_delay_s
        return self.clock.now_ms() - int(delay_s * 1000) if delay_s > 0 else 1 << 62

    def _pure_delta_window(self, store: _Objects, groups: list[list[_Filter]], sort_prop: str | None, descending: bool) -> tuple[int, int] | None:
        """Index positions ``[start, stop)`` when the search is one group of range filters on the
        delta property sorted ascending by it; ``None`` for any other search."""
        delta = store.schema.delta_property
        if len(groups) != 1 or sort_prop != delta or descending or not groups[0] or any(f.delta_bounds(delta) is None for f in groups[0]):
            return None
        low, high = self._delta_range(store, groups[0])
        return (0, 0) if low > high else store.delta_bounds(max(low, 0), max(high, 0))

    def _matching_rows(self, store: _Objects, groups: list[list[_Filter]]) -> list[Record]:
        """Live rows matching any group (every live row without groups) that search already sees."""
        visible_until, found = self._visible_until(), {}
        for filters in groups or [[]]:
            bounds = self._delta_range(store, filters)
            if bounds is None:
                rest, candidates = filters, (row for row in store.select() if row.updated <= visible_until)
            else:
                rest = [flt for flt in filters if flt.delta_bounds(store.schema.delta_property) is None]
                candidates = store.between(max(bounds[0], 0), max(bounds[1], 0)) if bounds[0] <= bounds[1] else []
            for row in candidates:
                if row.id not in found and self._row_matches(store, row, rest):
                    found[row.id] = row
        return list(found.values())

    def _matches_query(self, store: _Objects, row: Record, query: str) -> bool:
        terms = [term for term in query.casefold().split() if term]
        tokens: list[str] = []
        for prop in store.schema.text_search:
            value = row.values.get(prop)
            if value:
                tokens.extend(token for token in re.split(r"[^\w@.+-]+", value.casefold()) if token)
                tokens.append(value.casefold())
        return all(any(token.startswith(term) for token in tokens) for term in terms)

    def _parse_sort(self, store: _Objects, sorts: Any) -> tuple[str | None, bool]:
        if not sorts:
            return None, False
        if not isinstance(sorts, list):
            raise _validation_error("Invalid input JSON: 'sorts' must be an array")
        if len(sorts) > 1:
            raise _validation_error("Only one sort rule is supported")
        rule = sorts[0]
        if isinstance(rule, str):
            prop, descending = rule.lstrip("-"), rule.startswith("-")
        elif isinstance(rule, dict):
            prop, direction = rule.get("propertyName"), str(rule.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise _validation_error(f"Unknown sort direction: {direction}")
            descending = direction == "DESCENDING"
        else:
            raise _validation_error("Invalid sort rule")
        if prop not in store.schema.all_properties:
            raise _validation_error(f'Property "{prop}" does not exist', errors=[{"message": f'Property "{prop}" does not exist', "code": "PROPERTY_DOESNT_EXIST"}])
        return prop, descending

    def _sorted(self, store: _Objects, rows: list[Record], prop: str | None, descending: bool) -> list[Record]:
        """Sort by ``prop`` (rows without a value last), ties by id ascending; default by id."""
        rows.sort(key=lambda row: row.id)
        if prop is None:
            return rows
        kind = store.schema.kind(prop)
        keyed = [(self._typed_value(store, row, prop, kind), row) for row in rows]
        with_value = sorted((pair for pair in keyed if pair[0] is not None), key=lambda pair: pair[0], reverse=descending)  # stable on ties
        return [row for _value, row in with_value] + [row for value, row in keyed if value is None]

    def random_changes(self, portal: Account, store: _Objects, row: Record) -> dict[str, str | None]:
        rng, options = portal.rng, RANDOM_CHANGES[store.name]
        chosen = rng.sample(sorted(options), rng.randint(1, min(2, len(options))))
        return _with_closed_flags({name: options[name](store.data, rng) for name in chosen})

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return self._render(store, record, store.schema.all_properties)

    def records(self, entity: str, archived: bool = False, *, account: str | None = None) -> dict[str, dict[str, Any]]:
        return super().records(entity, archived, account=account)

    def count(self, entity: str, archived: bool = False, *, account: str | None = None) -> int:
        return super().count(entity, archived, account=account)

    def archive(self, entity: str, target: int | Iterable[str | int], *, account: str | None = None) -> list[str]:
        """Archive ``target`` ids, or ``target`` seeded-random live records when it is an int."""
        return self.delete(entity, target, account=account)

    def merge(self, entity: str, primary_id: str, merged_id: str, *, account: str | None = None) -> str:
        """Merge ``merged_id`` into ``primary_id`` as HubSpot does; returns the surviving id."""
        with self.lock:
            portal = self.account(account)
            return str(self._merge_rows(portal, self.entity_store(entity, account), str(primary_id), str(merged_id)).id)

    def mutation_time(self) -> str:
        return utc_iso_ms(self.clock.now_ms())

    def describe(self) -> dict[str, Any]:
        with self.lock:
            counts = {entity: {"live": store.count(), "archived": store.count(deleted=True)} for entity, store in self.account().stores.items()}
        return {"objects": counts, "rate_limits_enabled": self.config.rate_limits_enabled}


@lru_cache(maxsize=512)
def _rendered_names(entity: str, properties: tuple[str, ...] | None) -> tuple[str, ...]:
    """The known properties a read returns, in order: those asked for (or the defaults) and the synthesized ones."""
    schema = SCHEMAS[entity]
    names = set(schema.default_properties if properties is None else properties) | set(schema.synthesized)
    return tuple(sorted(name for name in names if name in schema.all_properties))


def _detail(message: str, code: str, *names: str) -> dict[str, Any]:
    """One HubSpot validation error detail about ``names``."""
    return {"message": message, "code": code, "context": {"propertyName": list(names)}}


def _as_date(text: str) -> str | None:
    """A date property value as HubSpot stores it, ``None`` when not a date."""
    try:
        return utc_iso_ms(int(parse_datetime(text).timestamp() * 1000))
    except ValueError:
        return None


def _owner(data: FakeData) -> str | None:
    """A seeded owner id for four records in five."""
    return data.pick(OWNER_IDS) if data.rng.random() < 0.8 else None


def _with_closed_flags(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the closed flags (``hs_is_closed``, ``hs_is_closed_won``) a deal stage among them implies."""
    stage = values.get("dealstage")
    if stage:
        values["hs_is_closed"] = "true" if stage in ("closedwon", "closedlost") else "false"
        values["hs_is_closed_won"] = "true" if stage == "closedwon" else "false"
    return values


def _comparable(kind: str, text: str) -> Any:
    """A property value as search compares it: epoch ms for dates, floats for numbers, folded text."""
    if kind == "date":
        return int(parse_datetime(text).timestamp() * 1000)
    return float(text) if kind == "number" else text.casefold()


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


def _archived(request: Request) -> bool:
    return (request.query_value("archived") or "false").lower() == "true"


def _refuse_duplicate_ids(inputs: list[dict[str, Any]], *, upsert: bool) -> None:
    """A batch update may name a record once; an upsert a value of each ``idProperty`` (in any case) once."""
    ids = [str(item.get("id", "")) for item in inputs]
    keys = [(str(item.get("idProperty") or "hs_object_id"), raw.lower()) if upsert else raw for item, raw in zip(inputs, ids)]
    duplicates = sorted({key[1] if upsert else key for key, times in Counter(keys).items() if times > 1})
    if duplicates:
        raise _validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")


def _refuse_repeated_email(store: _Objects, values: Mapping[str, str | None], emails: set[str]) -> None:
    """An untraced batch create refuses an e-mail address (in any case) its inputs repeat."""
    email = (values.get("email") or "").lower() if store.name == "contacts" else ""
    if email and email in emails:
        raise _validation_error(f"Duplicate email in batch input: {values['email']}")
    emails.add(email)


def _traced(inputs: list[dict[str, Any]]) -> bool:
    """Whether every input of a batch carries an ``objectWriteTraceId`` (each then answers on its own)."""
    return bool(inputs) and all(item.get("objectWriteTraceId") is not None for item in inputs)


def _page_size(raw: Any, maximum: int, oversize: str, refusal: Callable[[int], ApiError]) -> int:
    """The ``limit`` of a page (10 by default, at least 1); above ``maximum`` clamped or refused."""
    limit = _int_param(raw, 10, "limit")
    if limit < 1:
        raise _validation_error("limit must be at least 1")
    return capped(limit, maximum, oversize, lambda: refusal(limit))


def _int_param(raw: Any, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        return int(str(raw).strip())
    except ValueError:
        raise _validation_error(f"{name} must be an integer, got {raw!r}") from None


__all__ = ["DEFAULT_TOKEN", "HubSpotSimConfig", "HubSpotSimulator", "Portal", "SCHEMAS"]
