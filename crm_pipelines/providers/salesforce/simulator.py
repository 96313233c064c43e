"""Local Salesforce REST simulator (Contact, Account, Opportunity) served over real HTTP.

Reproduces what a sync client meets on ``login.salesforce.com`` and an org's instance:

* OAuth: ``POST /services/oauth2/token`` (refresh-token grant, form-encoded) issuing
  ``{access_token, instance_url, id, issued_at, signature, token_type, scope}``; bad credentials
  answer 400 ``{"error":"invalid_grant"|"invalid_client_id"|..., "error_description"}``. Sessions
  expire after ``session_lifetime_s`` of simulated time, or at once with :meth:`expire_sessions`
  (admin ``POST /_simulator/expire-sessions``): then 401 ``[{"errorCode":"INVALID_SESSION_ID"}]``.
* SOQL ``GET /services/data/vNN.0/query?q=`` and ``/queryAll`` (the subset in
  :mod:`simulator_soql`), ``totalSize/done/nextRecordsUrl/records[attributes]``, the
  ``Sforce-Query-Options: batchSize`` hint (200..2,000), cursors that expire after
  ``cursor_idle_timeout_s`` idle or with :meth:`expire_cursors` (400 ``INVALID_QUERY_LOCATOR``),
  at most ``max_open_cursors`` per session (the oldest is dropped), ``MALFORMED_QUERY`` /
  ``INVALID_FIELD`` / ``INVALID_TYPE`` errors, string comparisons case-insensitive.
* Deleted records stay in the recycle bin ``recycle_bin_days`` (``queryAll`` with
  ``IsDeleted = true``; ``/sobjects/{obj}/deleted/?start&end`` within that window;
  ``/sobjects/{obj}/updated/?start&end`` within 30 days).
* sObject Collections: ``POST`` (create), ``PATCH`` (update by Id), ``PATCH /{SObject}/{ExtId}``
  (upsert with ``created``), ``DELETE ?ids=``, ``GET /{SObject}?ids&fields``; at most 200 records
  (400 ``EXCEEDED_ID_LIMIT``), per-record results in request order, ``allOrNone`` rollback
  marking good rows ``ALL_OR_NONE_OPERATION_ROLLED_BACK``; per-record errors
  ``REQUIRED_FIELD_MISSING``, ``INVALID_EMAIL_ADDRESS``, ``STRING_TOO_LONG``, ``DUPLICATE_VALUE``,
  ``INVALID_FIELD_FOR_INSERT_UPDATE``, ``ENTITY_IS_DELETED``, ``INVALID_CROSS_REFERENCE_KEY`` and,
  with ``block_duplicate_emails``, ``DUPLICATES_DETECTED`` naming the matching record. An unknown
  field or a value of the wrong JSON type fails the whole request (400), as deserialization does.
* Limits: a rolling 24-hour allocation (``daily_api_limit``) counted per API call (the token
  endpoint, ``/services/data/`` and 401s are free), ``Sforce-Limit-Info: api-usage=N/M`` on
  every authenticated answer, 403 ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." once
  spent, ``/limits`` reflecting it; :meth:`add_api_usage` plays other users of the org. An
  injected 403 is the retryable ConcurrentRequests variant; an injected 429 has an error array.

Each org (account) has its own records, sessions, refresh tokens, cursors and allocation; a
session id starts with its org's id, and a request whose ``Host`` is another org's My Domain
(``{org}.my.salesforce.com``) is refused as Salesforce refuses a session on the wrong instance.

Bulk API 2.0 query and ingest jobs: see :mod:`simulator_bulk` (``bulk_processing_s`` of simulated
time before a job completes, ``bulk_upload_max_bytes`` per upload, the daily bulk allocations in
``/limits`` and their errors once spent).

Switches for facts the reference leaves open: ``accept_fractional_seconds`` (SOQL datetimes with
milliseconds), ``timestamp_resolution_ms`` (system timestamps are whole seconds by default),
``batch_size_out_of_range`` ("clamp" or "reject"), ``multi_currency`` (``CurrencyIsoCode`` exists),
``restricted_stage_picklist``, ``block_duplicate_emails``, ``max_uri_length`` (414 beyond it).

Writes made by one request share one timestamp (the simulated now, at the timestamp resolution).
Injected faults never consume the allocation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

from crm_pipelines.providers.salesforce.api import COLLECTION_MAX, QUERY_BATCH_MIN, QUERY_BATCH_SIZE, SOBJECTS
from crm_pipelines.providers.salesforce.simulator_bulk import BulkAllocations, BulkJobs
from crm_pipelines.providers.salesforce.simulator_soql import (
    NUMBER_KINDS, Query, SoqlError, format_datetime, ordered, parse, parse_datetime_literal, predicate,
)
from crm_pipelines.simulator.config import AccountSpec, SimConfig
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.formats import EMAIL_RE
from crm_pipelines.simulator.oauth import refresh_grant
from crm_pipelines.simulator.ratelimit import SlidingWindowLimiter
from crm_pipelines.simulator.server import Account, ApiError, Request, Response, Simulator, admin, admin_answer, api
from crm_pipelines.simulator.store import Record, RecordStore

DEFAULT_CLIENT_ID = "sim-salesforce-client-id"
DEFAULT_CLIENT_SECRET = "sim-salesforce-client-secret"
DEFAULT_REFRESH_TOKEN = "sim-salesforce-refresh-token"
ORG_ID = "00D5g00000SIMORG"
USER_ID = "0055g00000SIMUSR"
DAY_MS = 86_400_000
SUPPORTED_VERSIONS = tuple(f"{v}.0" for v in range(50, 67))
VERSION_LABELS = {"64.0": "Summer '25", "65.0": "Winter '26", "66.0": "Spring '26"}
TOO_MANY_RECORDS = f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this call"
ENTITY_OF = {sobject: entity for entity, sobject in SOBJECTS.items()}
KEY_PREFIX = {"Contact": "003", "Account": "001", "Opportunity": "006"}

STAGES = (
    "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
    "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost",
)
INDUSTRIES = (
    "Agriculture", "Banking", "Chemicals", "Communications", "Construction", "Consulting", "Education",
    "Electronics", "Energy", "Engineering", "Entertainment", "Finance", "Food & Beverage", "Healthcare",
    "Hospitality", "Insurance", "Manufacturing", "Media", "Retail", "Technology", "Transportation",
)
ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
OWNER_IDS = ("0055g00000Own01AAA", "0055g00000Own02AAA", "0055g00000Own03AAA")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
CONCURRENT_MESSAGE = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
TOTAL_REQUESTS_MESSAGE = "TotalRequests Limit exceeded."
#: The token endpoint's error and description for each failed check of a refresh-token grant, in the order they are made.
TOKEN_ERRORS = {"grant_type": ("unsupported_grant_type", "grant type not supported"), "client_id": ("invalid_client_id", "client identifier invalid"),
                "client_secret": ("invalid_client", "invalid client credentials"), "refresh_token": ("invalid_grant", "expired access/refresh token")}
#: Injected faults answered as Salesforce does (other 5xx: UNKNOWN_EXCEPTION).
FAULTS = {403: ("REQUEST_LIMIT_EXCEEDED", CONCURRENT_MESSAGE), 429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests; retry later."),
          503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable; please retry.")}


def id18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character Salesforce id."""
    return id15 + "".join(_SUFFIX[sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")] for start in range(0, 15, 5))


def base62(n: int, width: int = 10) -> str:
    return "".join(_BASE62[n // 62**power % 62] for power in reversed(range(width)))


@dataclass
class SalesforceSimConfig(SimConfig):
    """Everything the Salesforce simulator can be told (shared settings in :class:`SimConfig`).

    Data: ``contacts``/``companies``/``deals`` counts per org. Custom fields: ``document_field``
    (CPF/CNPJ text on Contact and Account) and ``external_id_field`` (unique external id on all
    three objects).

    Auth: ``client_id``/``client_secret`` of the connected app; ``refresh_tokens`` and ``tokens``
    (pre-issued access tokens that never expire by age) of the default org; ``session_lifetime_s``;
    ``instance_url`` (``None`` = this server's URL).

    Limits: ``daily_api_limit`` per rolling 24 hours (``None`` disables it); ``cursor_idle_timeout_s``,
    ``max_open_cursors``; ``recycle_bin_days``. Bulk API 2.0 per rolling 24 hours:
    ``bulk_query_jobs_per_day`` (10,000), ``bulk_query_storage_kb_per_day`` (1 TB of query results),
    ``bulk_batches_per_day`` (15,000 ingest batches of ``bulk_batch_records`` rows each). Other
    switches: see the module docstring.
    """

    COUNTS: ClassVar[tuple[str, ...]] = ("contacts", "companies", "deals")

    contacts: int = 100
    companies: int = 20
    deals: int = 40

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_tokens: tuple[str, ...] = (DEFAULT_REFRESH_TOKEN,)
    tokens: tuple[str, ...] = ()
    session_lifetime_s: float = 7200.0
    instance_url: str | None = None

    daily_api_limit: int | None = 100_000
    cursor_idle_timeout_s: float = 900.0
    max_open_cursors: int = 10
    recycle_bin_days: float = 15.0
    document_field: str = "CPF_CNPJ__c"
    external_id_field: str = "Crm_Record_Id__c"

    accept_fractional_seconds: bool = True
    timestamp_resolution_ms: int = 1000
    batch_size_out_of_range: Literal["clamp", "reject"] = "clamp"
    multi_currency: bool = True
    restricted_stage_picklist: bool = False
    block_duplicate_emails: bool = False
    max_uri_length: int = 16_384
    bulk_processing_s: float = 0.0
    bulk_upload_max_bytes: int = 100 * 1024 * 1024
    bulk_query_jobs_per_day: int = 10_000
    bulk_query_storage_kb_per_day: int = 1_000_000_000
    bulk_batches_per_day: int = 15_000
    bulk_batch_records: int = 10_000

    def check(self) -> None:
        for name in ("timestamp_resolution_ms", "daily_api_limit", "bulk_query_jobs_per_day", "bulk_query_storage_kb_per_day", "bulk_batches_per_day", "bulk_batch_records"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1" + (" or None" if name == "daily_api_limit" else ""))


def _full_name(rec: Record) -> str | None:
    return " ".join(v for v in (rec["FirstName"], rec["LastName"]) if v) or None


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # id string email phone url picklist textarea date datetime currency percent boolean reference
    length: int | None = None
    required: bool = False
    writable: bool = True
    label: str = ""
    external_id: bool = False
    compute: Callable[[Record], Any] | None = None  #: for fields computed from the record rather than stored

    def value(self, rec: Record) -> Any:
        return rec.values.get(self.name) if self.compute is None else self.compute(rec)


SYSTEM_FIELDS = (
    _Field("Id", "id", writable=False, label="Record ID", compute=lambda rec: rec.id),
    _Field("IsDeleted", "boolean", writable=False, label="Deleted", compute=lambda rec: rec.deleted is not None),
    _Field("CreatedDate", "datetime", writable=False, label="Created Date", compute=lambda rec: rec.created),
    _Field("CreatedById", "reference", writable=False, label="Created By ID", compute=lambda rec: USER_ID + "AAA"),
    _Field("LastModifiedDate", "datetime", writable=False, label="Last Modified Date"),
    _Field("LastModifiedById", "reference", writable=False, label="Last Modified By ID", compute=lambda rec: USER_ID + "AAA"),
    _Field("SystemModstamp", "datetime", writable=False, label="System Modstamp", compute=lambda rec: rec.updated),
    _Field("OwnerId", "reference", label="Owner ID"),
)
#: The configured CPF/CNPJ and external id fields (named by ``document_field`` and ``external_id_field``).
DOCUMENT = _Field("{document_field}", "string", 18, label="CPF/CNPJ")
EXTERNAL_ID = _Field("{external_id_field}", "string", 255, label="Crm Record Id", external_id=True)

#: Each sObject's fields after the system fields, custom ones (``__c``) last; ``CurrencyIsoCode`` only with ``multi_currency``.
SOBJECT_FIELDS: dict[str, tuple[_Field, ...]] = {
    "Account": (
        _Field("Name", "string", 255, required=True, label="Account Name"),
        _Field("Website", "url", 255, label="Website"),
        _Field("Phone", "phone", 40, label="Account Phone"),
        _Field("Industry", "picklist", 255, label="Industry"),
        _Field("Type", "picklist", 255, label="Account Type"),
        _Field("BillingCity", "string", 40, label="Billing City"),
        _Field("BillingState", "string", 80, label="Billing State/Province"),
        _Field("BillingCountry", "string", 80, label="Billing Country"),
        DOCUMENT, EXTERNAL_ID,
        _Field("Employee_Band__c", "string", 40, label="Employee Band"),
        _Field("Account_Tier__c", "picklist", 255, label="Account Tier"),
    ),
    "Contact": (
        _Field("FirstName", "string", 40, label="First Name"),
        _Field("LastName", "string", 80, required=True, label="Last Name"),
        _Field("Name", "string", 121, writable=False, label="Full Name", compute=_full_name),
        _Field("Email", "email", 80, label="Email"),
        _Field("Phone", "phone", 40, label="Business Phone"),
        _Field("MobilePhone", "phone", 40, label="Mobile Phone"),
        _Field("Title", "string", 128, label="Title"),
        _Field("AccountId", "reference", label="Account ID"),
        _Field("MailingCity", "string", 40, label="Mailing City"),
        _Field("MailingState", "string", 80, label="Mailing State/Province"),
        _Field("MailingCountry", "string", 80, label="Mailing Country"),
        DOCUMENT, EXTERNAL_ID,
        _Field("Favorite_Color__c", "string", 40, label="Favorite Color"),
        _Field("Loyalty_Tier__c", "picklist", 255, label="Loyalty Tier"),
        _Field("Lifecycle_Stage__c", "picklist", 255, label="Lifecycle Stage"),
        _Field("Lead_Channel__c", "string", 40, label="Lead Channel"),
    ),
    "Opportunity": (
        _Field("Name", "string", 120, required=True, label="Name"),
        _Field("StageName", "picklist", 255, required=True, label="Stage"),
        _Field("CloseDate", "date", required=True, label="Close Date"),
        _Field("Amount", "currency", label="Amount"),
        _Field("CurrencyIsoCode", "picklist", 3, label="Opportunity Currency"),
        _Field("Probability", "percent", label="Probability (%)"),
        _Field("AccountId", "reference", label="Account ID"),
        _Field("IsClosed", "boolean", writable=False, label="Closed", compute=lambda rec: (rec["StageName"] or "").startswith("Closed")),
        _Field("IsWon", "boolean", writable=False, label="Won", compute=lambda rec: rec["StageName"] == "Closed Won"),
        EXTERNAL_ID,
        _Field("Deal_Source__c", "string", 80, label="Deal Source"),
        _Field("Priority_Level__c", "picklist", 255, label="Priority Level"),
    ),
}


def _schema(cfg: SalesforceSimConfig, sobject: str) -> dict[str, _Field]:
    """The org's fields of ``sobject`` by lower-case name, in describe order."""
    fields = [replace(f, name=f.name.format_map(vars(cfg))) for f in (*SYSTEM_FIELDS, *SOBJECT_FIELDS[sobject])]
    return {f.name.lower(): f for f in fields if cfg.multi_currency or f.name != "CurrencyIsoCode"}


V = "/services/data/v{version}"
S = V + "/sobjects/{sobject}"
C = V + "/composite/sobjects"


class _SObjects(RecordStore):
    """Records of one sObject: ``updated`` is ``SystemModstamp``; ``LastModifiedDate`` (ms) is
    kept with the values; the external id is indexed."""

    def __init__(self, sobject: str, fields: dict[str, _Field], ext_field: str, seed: str) -> None:
        super().__init__(sobject, format_id=lambda n: id18(KEY_PREFIX[sobject] + "5g" + base62(n)), indexed=(ext_field,))
        self.sobject, self.fields, self.ext_field = sobject, fields, ext_field
        self.data = FakeData(f"{seed}-{sobject}")

    def field(self, name: str) -> _Field | None:
        return self.fields.get(name.lower())

    def render(self, rec: Record, names: Iterable[str], version: str) -> dict[str, Any]:
        """The record as JSON answers show it, with ``names`` (datetimes as Salesforce writes them, numbers as numbers)."""
        out: dict[str, Any] = {"attributes": {"type": self.sobject, "url": f"/services/data/v{version}/sobjects/{self.sobject}/{rec.id}"}}
        for f in (self.fields[name.lower()] for name in names):
            value = f.value(rec)
            out[f.name] = None if value is None else format_datetime(value) if f.kind == "datetime" else float(value) if f.kind in NUMBER_KINDS else value
        return out

    def owner(self, external_id: Any) -> str | None:
        """The live record holding ``external_id``."""
        ids = self.find_all(self.ext_field, external_id)
        return ids[0] if ids else None

    def by_id(self, record_id: Any) -> Record | None:
        """A record by its 18- or 15-character id."""
        rid = str(record_id or "")
        return self.rows.get(rid) or next((r for r in self.rows.values() if len(rid) == 15 and r.id[:15] == rid), None)


@dataclass
class _Cursor:
    """An open query's remaining rows, pages of ``batch`` from ``nextRecordsUrl``; ``token`` is the session's."""

    locator: str
    store: _SObjects
    fields: list[str]
    ids: list[str]
    batch: int
    last_used_ms: int
    token: str


class Org(Account):
    """A Salesforce org: its records, sessions (token -> issue time; ``None`` never expires),
    refresh tokens, open query cursors and rolling 24-hour API allocation."""

    def __init__(self, sim: SalesforceSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec, host=f"{spec.id.lower()}.my.salesforce.com")
        self.sessions: dict[str, int | None] = dict.fromkeys(spec.tokens)
        self.refresh_tokens = set(spec.refresh_tokens)
        self.cursors: dict[str, _Cursor] = {}
        self.jobs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  #: Bulk API 2.0 jobs: id -> (job, its data)
        self.job_serial = self.bulk_query_jobs = 0
        self.token_rng = random.Random(f"{self.seed}-tokens")
        self.usage = SlidingWindowLimiter(lambda: sim.config.daily_api_limit, 86_400, clock=sim.clock.timestamp, bucket_s=60)
        self.bulk_allocations = BulkAllocations(sim)
        self.limiters = (self.usage, *self.bulk_allocations.limiters)
        self.stores = {s: _SObjects(s, _schema(sim.config, s), sim.config.external_id_field, self.seed) for s in SOBJECT_FIELDS}
        self.account_pool: list[str] = []  #: the seeded Accounts, which seeded Contacts belong to
        for sobject, store in self.stores.items():
            sim.generate(self, store, self.count_of(sim, ENTITY_OF[sobject]))
            if sobject == "Account":
                self.account_pool = list(store.rows)

    def next_job_id(self) -> str:
        self.job_serial += 1
        return id18("7505g" + base62(self.job_serial))


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response.json(status, [{"message": message, "errorCode": code}], headers)


def _fail(status: int, code: str, message: str) -> ApiError:
    return ApiError(_error(status, code, message))


def _no_such(text: str, column: int, problem: str, custom: str, named: str) -> str:
    """Salesforce's message for a query naming an unknown object or field."""
    return (f"\n{text}\n^\nERROR at Row:1:Column:{column}\n{problem} If you are attempting to use a custom {custom}, be sure to append the "
            f"'__c' after the {named} name. Please reference your WSDL or the describe call for the appropriate names.")


def _record_error(code: str, message: str, fields: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or [], **extra}


def _deserialized(f: _Field, value: Any) -> Any:
    """A JSON value for field ``f`` as the org stores it; a value of the wrong type fails the whole request."""
    if f.kind == "boolean":
        return bool(value)
    number = f.kind in NUMBER_KINDS
    if number and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise _fail(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from {type(value).__name__} value for {f.name}")
    if not number and f.kind != "date" and isinstance(value, (dict, list)):
        raise _fail(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {type(value).__name__} for {f.name}")
    try:
        if number:
            return format(float(value), ".2f") if f.kind == "currency" else str(float(value))
        return date.fromisoformat(str(value)[:10]).isoformat() if f.kind == "date" else str(value)
    except ValueError:
        if number:
            raise _fail(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from VALUE_STRING value {value} for {f.name}") from None
        raise _fail(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING value {value} or request may be missing a required field") from None


def _duplicates_detected(twin_id: str) -> dict[str, Any]:
    """The per-record error of the standard Contact duplicate rule, naming the matching record."""
    return _record_error("DUPLICATES_DETECTED", "Use one of these records?", [], duplicateResult={
        "allowSave": False, "duplicateRule": "Standard_Contact_Duplicate_Rule", "duplicateRuleEntityType": "Contact",
        "errorMessage": "You're creating a duplicate record. We recommend you use an existing record instead.",
        "matchResults": [{"entityType": "Contact", "matchEngine": "ExactMatchEngine", "size": 1, "success": True,
                          "matchRecords": [{"record": {"attributes": {"type": "Contact"}, "Id": twin_id}, "matchConfidence": 100.0}]}],
    })


class SalesforceSimulator(BulkJobs, Simulator):
    """Salesforce REST over real HTTP. See the module docstring and :class:`SalesforceSimConfig`.

    Python-side helpers for tests (``account=`` names another org): :meth:`records`, :meth:`count`,
    :meth:`modify`, :meth:`touch`, :meth:`create`, :meth:`delete`, :meth:`set_fields`,
    :meth:`expire_sessions`, :meth:`expire_cursors`, :meth:`revoke_refresh_tokens`,
    :meth:`api_usage`, :meth:`add_api_usage`, :meth:`add_bulk_usage`.
    """

    provider = "salesforce"
    server_name = "salesforce-simulator"
    config_class = SalesforceSimConfig
    ANSWERS = {
        "unauthorized": (401, "INVALID_SESSION_ID", "Session expired or invalid"),
        "not_found": (404, "NOT_FOUND", "The requested resource does not exist"),
        "method_not_allowed": (405, "METHOD_NOT_ALLOWED", "HTTP Method '{request.method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE"),
        "internal_error": (500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567-89 (-1)"),
        "invalid_json": (400, "JSON_PARSER_ERROR", "Unexpected character: {error}"),
        "not_an_object": (400, "JSON_PARSER_ERROR", "The request body must be a JSON object"),
    }
    account_class = Org
    config: SalesforceSimConfig
    account_hosts = (".my.salesforce.com",)
    ENTITIES = {**{e: s for s, e in ENTITY_OF.items()}, **{s: s for s in ENTITY_OF}}
    CLI_DEFAULTS = {"contacts": 1000, "companies": 100, "deals": 200}
    CLI_ALIASES = {"--session-lifetime": "--session-lifetime-s", "--single-currency": "--no-multi-currency"}

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec(ORG_ID, self.config.tokens, self.config.refresh_tokens)

    def stamp(self, ms: int | None = None) -> int:
        """``ms`` (default: now) at the timestamp resolution (whole seconds by default)."""
        ms = self.clock.now_ms() if ms is None else ms
        return ms - ms % self.config.timestamp_resolution_ms

    def generate(self, org: Org, store: _SObjects, count: int) -> None:
        records = []
        for _ in range(count):
            created, updated = self.seeded_history(store.data.rng)
            rec = Record(store.allocate_id(), self.stamp(created), 0, self.new_values(org, store))
            rec.updated = rec.values["LastModifiedDate"] = max(self.stamp(updated), rec.created)
            records.append(rec)
        store.seed(records)

    def new_values(self, org: Account, store: RecordStore, entity: str | None = None) -> dict[str, Any]:
        """A generated record of ``store``'s sObject (seeded Contacts belong to seeded Accounts)."""
        data, rng, doc = store.data, store.data.rng, self.config.document_field
        if store.sobject == "Contact":
            person, pool = data.person(), org.account_pool
            account_id = pool[int(rng.random() * len(pool))] if pool and rng.random() < 0.7 else None
            return {
                "FirstName": person["first_name"], "LastName": person["last_name"] or data.last_name(),
                "Email": person["email"], "Phone": person["phone"], "MobilePhone": person["mobile"],
                "Title": person["job_title"], "AccountId": account_id, "MailingCity": person["city"],
                "MailingState": person["state"], "MailingCountry": person["country"], doc: person["document"],
                "OwnerId": data.pick(OWNER_IDS),
            }
        if store.sobject == "Account":
            company = data.organization()
            website = company["domain"]
            if website:
                style = rng.random()
                website = f"https://www.{website}" if style < 0.4 else f"www.{website}" if style < 0.7 else f"http://{website}/" if style < 0.8 else website
            return {
                "Name": company["name"], "Website": website, "Phone": company["phone"],
                "Industry": data.pick(INDUSTRIES) if rng.random() < 0.9 else None, "Type": data.pick(ACCOUNT_TYPES),
                "BillingCity": company["city"], "BillingState": company["state"], "BillingCountry": company["country"],
                doc: company["document"], "OwnerId": data.pick(OWNER_IDS),
            }
        deal = data.deal()
        close = date.fromtimestamp(self.reference.timestamp()) + timedelta(days=int((rng.random() - 0.5) * 120))
        return {
            "Name": deal["name"], "StageName": data.pick(STAGES), "CloseDate": close.isoformat(),
            "Amount": deal["amount"], "Probability": str(data.pick((10, 20, 50, 75, 90, 100))), "OwnerId": data.pick(OWNER_IDS),
        } | ({"CurrencyIsoCode": deal["currency"]} if self.config.multi_currency else {})

    def error_response(self, status: int, code: str, message: str) -> Response:
        return _error(status, code, message)

    def fault_response(self, status: int, request: Request) -> Response:
        """Injected answers shaped like Salesforce's: 403 is the retryable concurrent-request limit."""
        code, message = FAULTS.get(status) or (self.ANSWERS["internal_error"][1:] if status >= 500 else ("UNKNOWN_EXCEPTION", f"HTTP {status}"))
        return _error(status, code, message, self._limit_headers(self._by_token.get(self.credentials(request)) or self.account()))

    def credentials(self, request: Request) -> str | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() in ("bearer", "oauth") else None

    def authenticate(self, request: Request) -> Org | Response | None:
        """Versioned resources only: unknown versions are 404, over-long URIs 414, expired sessions 401."""
        if request.params.get("version", "") not in SUPPORTED_VERSIONS:
            return self.not_found_response(request)
        if len(request.raw_target) > self.config.max_uri_length:
            return _error(414, "URI_TOO_LONG", f"The request URI is longer than {self.config.max_uri_length} characters")
        org = super().authenticate(request)
        if not isinstance(org, Org):
            return None
        issued = org.sessions.get(request.token)
        if issued is not None and self.clock.now_ms() - issued > self.config.session_lifetime_s * 1000:
            self._end_session(org, request.token)
            return None
        return org

    def admit(self, request: Request) -> Response | None:
        """One call against the org's rolling 24-hour allocation; ``Sforce-Limit-Info`` on the answer."""
        if self.over_limit("", ("TotalRequests", request.account.usage)):
            return _error(403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS_MESSAGE, self._limit_headers(request.account))
        request.response_headers = self._limit_headers(request.account)
        return None

    def _limit_headers(self, org: Org) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={org.usage.used()}/{self.config.daily_api_limit or 5_000_000}"}

    def api_usage(self, *, account: str | None = None) -> dict[str, int | None]:
        """Calls counted in the last 24 simulated hours, and the allocation."""
        return {"used": self.account(account).usage.used(), "max": self.config.daily_api_limit}

    def add_api_usage(self, calls: int, *, account: str | None = None) -> dict[str, int | None]:
        """Count ``calls`` made by other users of the org (now)."""
        if calls > 0:
            self.account(account).usage.try_acquire(weight=calls, force=True)
        return self.api_usage(account=account)

    def add_bulk_usage(self, *, query_jobs: int = 0, storage_kb: int = 0, batches: int = 0, account: str | None = None) -> dict[str, dict[str, int]]:
        """Count Bulk API use by other users of the org (now); the org's bulk entries of ``/limits``."""
        return self.account(account).bulk_allocations.add(query_jobs, storage_kb, batches)

    @admin("GET", "api-usage")
    def _admin_api_usage(self, _request: Request) -> Response:
        return Response.json(200, self.api_usage())

    @admin("POST", "api-usage")
    def _admin_add_usage(self, request: Request) -> Response:
        return admin_answer(lambda body: Response.json(200, self.add_api_usage(int(body.get("add", 0)), account=body.get("account"))), request)

    def _end_session(self, org: Org, token: str) -> None:
        org.sessions.pop(token, None)
        self.unbind_token(token)

    @admin("POST", "expire-sessions")
    def _admin_expire_sessions(self, _request: Request) -> Response:
        return Response.json(200, {"expired": self.expire_sessions()})

    def expire_sessions(self) -> int:
        """Invalidate every access token (the next call gets 401 INVALID_SESSION_ID)."""
        with self.lock:
            ended = [(org, token) for org in self.accounts.values() for token in org.sessions]
            for org, token in ended:
                self._end_session(org, token)
            return len(ended)

    @admin("POST", "expire-cursors")
    def _admin_expire_cursors(self, _request: Request) -> Response:
        return Response.json(200, {"expired": self.expire_cursors()})

    def expire_cursors(self) -> int:
        """Drop every open query cursor (the next ``nextRecordsUrl`` gets INVALID_QUERY_LOCATOR)."""
        with self.lock:
            count = sum(len(org.cursors) for org in self.accounts.values())
            for org in self.accounts.values():
                org.cursors.clear()
            return count

    def revoke_refresh_tokens(self) -> None:
        """Refresh tokens stop working (the token endpoint answers ``invalid_grant``)."""
        with self.lock:
            for org in self.accounts.values():
                org.refresh_tokens.clear()

    @api("POST", "/services/oauth2/token", auth=False)
    def _token(self, request: Request) -> Response:
        """The refresh-token grant: a new session of the org holding the refresh token."""
        cfg = self.config
        failed, org, _ = refresh_grant(self, request, lambda o: o.refresh_tokens, (cfg.client_id, cfg.client_secret), TOKEN_ERRORS)
        if failed is not None:
            return Response.json(400, dict(zip(("error", "error_description"), TOKEN_ERRORS[failed])))
        issued, token = self.clock.now_ms(), f"{org.id}!AQ" + "".join(org.token_rng.choice(_BASE62) for _ in range(96))
        org.sessions[token] = issued
        self.bind_token(token, org)
        identity = f"{self.base_url}/id/{org.id}AAA/{USER_ID}AAA"
        signature = base64.b64encode(hmac.new(cfg.client_secret.encode(), f"{identity}{issued}".encode(), hashlib.sha256).digest()).decode()
        return Response.json(200, {
            "access_token": token, "instance_url": (cfg.instance_url if org.default else None) or self.base_url, "id": identity,
            "token_type": "Bearer", "issued_at": str(issued), "signature": signature, "scope": "api refresh_token",
        })

    @api("GET", "/services/data/?", name="GET /services/data/", auth=False)
    def _versions(self, _request: Request) -> Response:
        return Response.json(200, [{"label": VERSION_LABELS.get(v, f"Release {v}"), "url": f"/services/data/v{v}", "version": v} for v in SUPPORTED_VERSIONS])

    @api("GET", V + "/limits/?", name="GET /limits")
    def _limits(self, request: Request) -> Response:
        allowed = self.config.daily_api_limit or 5_000_000
        return Response.json(200, {
            "DailyApiRequests": {"Max": allowed, "Remaining": max(allowed - request.account.usage.used(), 0)},
            **request.account.bulk_allocations.limits(), "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        })

    def _batch_size(self, request: Request) -> int:
        """The ``Sforce-Query-Options: batchSize`` hint (200..2,000; default 2,000), out-of-range clamped or refused."""
        match = re.search(r"batchSize\s*=\s*(\d+)", request.header("Sforce-Query-Options") or "")
        size = int(match.group(1)) if match else QUERY_BATCH_SIZE
        if not QUERY_BATCH_MIN <= size <= QUERY_BATCH_SIZE and self.config.batch_size_out_of_range == "reject":
            raise _fail(400, "INVALID_BATCH_SIZE", f"batchSize must be between {QUERY_BATCH_MIN} and {QUERY_BATCH_SIZE}, got {size}")
        return min(max(size, QUERY_BATCH_MIN), QUERY_BATCH_SIZE)

    @api("GET", V + "/query/?", name="GET /query", all_rows=False)
    @api("GET", V + "/queryAll/?", name="GET /queryAll", all_rows=True)
    def _query(self, request: Request) -> Response:
        """The first page; more than a batch opens a cursor (the session's oldest dropped beyond ``max_open_cursors``)."""
        store, query, rows = self._select(request, request.query_value("q"), request.route.meta["all_rows"])
        if query.count:
            return Response.json(200, {"totalSize": len(rows), "done": True, "records": []})
        fields = [store.fields[n.lower()].name for n in query.fields]
        cursor = _Cursor("", store, fields, [r.id for r in rows], self._batch_size(request), self.clock.now_ms(), request.token)
        if len(rows) > cursor.batch:
            cursor.locator = "01g5g" + "".join(request.account.token_rng.choice(_BASE62) for _ in range(10))
            cursors = request.account.cursors
            mine = [c for c in cursors.values() if c.token == request.token]
            while len(mine) >= self.config.max_open_cursors:
                cursors.pop(mine.pop(0).locator, None)
            cursors[cursor.locator] = cursor
        return self._page(cursor, 0, request.params["version"])

    def _select(self, request: Request, text: str | None, all_rows: bool) -> tuple[_SObjects, Query, list[Record]]:
        """The records a SOQL query selects, in order (``queryAll`` adds the recycle bin)."""
        if not text:
            raise _fail(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            query = parse(text)
            store = self._queried(request, query, text)
            if not self.config.accept_fractional_seconds and re.search(r"T\d{2}:\d{2}:\d{2}\.\d", text):
                raise SoqlError("line 1: no viable alternative at character '.' (fractional seconds)")
            matches = predicate(store, query.where)
        except SoqlError as exc:
            raise _fail(400, exc.code, exc.message) from None
        horizon = self.clock.now_ms() - int(self.config.recycle_bin_days * DAY_MS)
        rows = [rec for rec in store.rows.values() if (rec.deleted is None or (all_rows and rec.deleted >= horizon)) and matches(rec)]
        return store, query, ordered(store, query, rows)

    def _page(self, cursor: _Cursor, offset: int, version: str) -> Response:
        store = cursor.store
        ids = cursor.ids[offset : offset + cursor.batch]
        records = [store.render(store.rows[i], cursor.fields, version) for i in ids if i in store.rows]
        end = offset + len(ids)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids), "records": records}
        if end < len(cursor.ids):
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.locator}-{end}"
        cursor.last_used_ms = self.clock.now_ms()
        return Response.json(200, body)

    @api("GET", V + "/query/{locator}-{offset}", name="GET /query/{locator}")
    @api("GET", V + "/queryAll/{locator}-{offset}", name="GET /query/{locator}")
    def _query_more(self, request: Request) -> Response:
        locator, offset = request.params["locator"], request.params["offset"]
        if not locator.startswith("01g") or not offset.isdigit():
            return self.not_found_response(request)
        cursor = request.account.cursors.get(locator)
        if cursor is not None and self.clock.now_ms() - cursor.last_used_ms > self.config.cursor_idle_timeout_s * 1000:
            del request.account.cursors[locator]
            cursor = None
        if cursor is None or int(offset) % cursor.batch or int(offset) >= len(cursor.ids):
            raise _fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, int(offset), request.params["version"])

    def _queried(self, request: Request, query: Query, text: str) -> _SObjects:
        """The queried sObject, once every field the query names is one of its fields."""
        store = self._sobjects(request.account, query.sobject)
        if store is None:
            raise SoqlError(_no_such(text[:80], 1, f"sObject type '{query.sobject}' is not supported.", "object", "entity"), "INVALID_TYPE")
        selected = [name.lower() for name in query.fields]
        twice = next((name for i, name in enumerate(query.fields) if name.lower() in selected[:i]), None)
        if twice is not None:
            raise SoqlError(f"duplicate field selected: {twice}")
        unknown = next((name for name in query.referenced_fields() if store.field(name) is None), None)
        if unknown is not None:
            raise SoqlError(_no_such(text[:120], text.find(unknown) + 1, f"No such column '{unknown}' on entity '{store.sobject}'.", "field", "custom field"), "INVALID_FIELD")
        return store

    @api("GET", S + "/updated/?", name="GET /sobjects/{SObject}/updated", deleted=False)
    @api("GET", S + "/deleted/?", name="GET /sobjects/{SObject}/deleted", deleted=True)
    def _replication(self, request: Request) -> Response:
        """Ids changed (30 days back at most) or deleted (while in the recycle bin) from ``start`` to ``end``, to the whole minute."""
        store, deleted = self._store(request), request.route.meta["deleted"]
        try:
            start, end = (parse_datetime_literal(request.query_value(name) or "") for name in ("start", "end"))
        except (ValueError, IndexError):
            raise _fail(400, "MALFORMED_QUERY", "start and end must be ISO-8601 datetimes, e.g. 2025-02-01T00:00:00+00:00") from None
        now, days = self.clock.now_ms(), self.config.recycle_bin_days if deleted else 30
        earliest = now - int(days * DAY_MS)
        if start < earliest:
            raise _fail(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {int(days)} days ago")
        if end <= start:
            raise _fail(400, "INVALID_REPLICATION_DATE", "endDate must be after startDate")
        latest = min(end, now) - min(end, now) % 60_000
        if not deleted:
            return Response.json(200, {"ids": [r.id for r in store.between(start, latest - 1)], "latestDateCovered": format_datetime(latest)})
        found = sorted((r for r in store.select(deleted=True) if start <= r.deleted < latest), key=lambda r: (r.deleted, r.id))
        return Response.json(200, {"deletedRecords": [{"id": r.id, "deletedDate": format_datetime(r.deleted)} for r in found],
                                   "earliestDateAvailable": format_datetime(earliest - earliest % 60_000), "latestDateCovered": format_datetime(latest)})

    @api("GET", S + "/describe/?", name="GET /sobjects/{SObject}/describe")
    def _describe(self, request: Request) -> Response:
        store = self._store(request)
        return Response.json(200, {"name": store.sobject, "keyPrefix": KEY_PREFIX[store.sobject], "queryable": True, "createable": True, "updateable": True, "fields": [
            {"name": f.name, "type": f.kind, "length": f.length or 0, "label": f.label or f.name, "nillable": not f.required, "createable": f.writable,
             "updateable": f.writable, "externalId": f.external_id, "unique": f.external_id, "custom": f.name.endswith("__c")} for f in store.fields.values()
        ]})

    def _records_body(self, request: Request) -> tuple[list[dict[str, Any]], bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _fail(400, "JSON_PARSER_ERROR", "The request body must be an object with a 'records' array")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", TOO_MANY_RECORDS)
        if not records:
            raise _fail(400, "INVALID_FIELD", "No records to process")
        return records, bool(body.get("allOrNone", False))

    def _typed_values(self, store: _SObjects, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Field values of one input record, type-checked as JSON deserialization does (400 on failure)."""
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "attributes":
                continue
            f = store.field(name)
            if f is None:
                raise _fail(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {store.sobject}")
            out[f.name] = None if value is None else _deserialized(f, value)
        return out

    def _record_problems(self, store: _SObjects, values: Mapping[str, Any], rec: Record | None = None) -> list[dict[str, Any]]:
        """What is wrong with writing ``values`` to ``rec`` (``None``: a new record), as per-record errors."""
        problems = []
        locked = [n for n in values if n != "Id" and not store.fields[n.lower()].writable]
        if locked:
            problems.append(_record_error("INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {', '.join(locked)}. Please check the security "
                                          "settings of this field and verify that it is read/write for your profile or permission set.", locked))
        merged = {**(rec.values if rec is not None else {}), **{k: v for k, v in values.items() if k != "Id"}}
        missing = [f.name for f in store.fields.values() if f.required and not merged.get(f.name)]
        if missing:
            problems.append(_record_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing))
        for name, value in values.items():
            f = store.fields[name.lower()]
            if value is None or name == "Id":
                continue
            if f.kind == "email" and not EMAIL_RE.match(str(value)):
                problems.append(_record_error("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]))
            if f.length and f.kind != "picklist" and len(str(value)) > f.length:
                problems.append(_record_error("STRING_TOO_LONG", f"{f.label}: data value too large: {str(value)[:40]} (max length={f.length})", [f.name]))
            if f.name == "StageName" and self.config.restricted_stage_picklist and value not in STAGES:
                problems.append(_record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"Stage: bad value for restricted picklist field: {value}", [f.name]))
        owner = store.owner(values[store.ext_field]) if values.get(store.ext_field) else None
        if owner is not None and (rec is None or owner != rec.id):
            problems.append(_record_error("DUPLICATE_VALUE", f"duplicate value found: {store.ext_field} duplicates value on record with id: {owner}", [store.ext_field]))
        email = str(values.get("Email") or "").lower()
        if self.config.block_duplicate_emails and store.sobject == "Contact" and email:
            twin = next((r for r in store.select() if (rec is None or r.id != rec.id) and (r.values.get("Email") or "").lower() == email), None)
            if twin is not None:
                problems.append(_duplicates_detected(twin.id))
        return problems

    def write(self, store: RecordStore, rec: Record | None, values: Mapping[str, Any], now: int) -> Record:
        """Create or change a record as a user does: ``LastModifiedDate`` and ``SystemModstamp`` move."""
        values = {k: v for k, v in values.items() if k != "Id"}
        if rec is None:
            return store.insert(values | {"OwnerId": values.get("OwnerId") or USER_ID + "AAA", "LastModifiedDate": now}, now)
        now = max(now, rec.updated)
        store.update(rec, values | {"LastModifiedDate": now}, now)
        return rec

    def _existing(self, store: _SObjects, record_id: Any) -> tuple[Record | None, list[dict[str, Any]]]:
        rid = str(record_id or "")
        rec = store.by_id(rid)
        if rec is None or not rid.startswith(KEY_PREFIX[store.sobject]):
            return None, [_record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])]
        if rec.deleted is not None:
            return None, [_record_error("ENTITY_IS_DELETED", "entity is deleted", [])]
        return rec, []

    def _target(self, store: _SObjects, operation: str, values: Mapping[str, Any], key: Any) -> tuple[Record | None, list[dict[str, Any]]]:
        """The record an insert, update, upsert or delete of ``values`` goes to (``key``: its id, or
        for an upsert its external id; ``None``: a new record) and what is wrong with the write."""
        if operation in ("update", "delete", "hardDelete"):
            rec, problems = self._existing(store, key)
            if problems or operation != "update":
                return rec, problems
        else:
            rec = store.rows.get(store.owner(key)) if operation == "upsert" else None
        return rec, self._record_problems(store, values, rec)

    def _type_of(self, request: Request, raw: Any) -> _SObjects:
        if not isinstance(raw, dict):
            raise _fail(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
        sobject = (raw.get("attributes") or {}).get("type") if isinstance(raw.get("attributes"), dict) else None
        if not sobject:
            raise _fail(400, "INVALID_TYPE", "Must send a concrete entity type.")
        store = self._sobjects(request.account, str(sobject))
        if store is None:
            raise _fail(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        return store

    @api("POST", C + "/?", name="POST /composite/sobjects", operation="insert")
    @api("PATCH", C + "/?", name="PATCH /composite/sobjects", operation="update")
    @api("PATCH", C + "/{sobject}/{ext}/?", name="PATCH /composite/sobjects/{SObject}/{ExtId}", operation="upsert")
    def _collection_write(self, request: Request) -> Response:
        """sObject Collections create, update (by Id) and upsert (by an external id): every record is
        checked, then written, or with ``allOrNone`` none is once one fails; results in request order."""
        operation, ext, expected = request.route.meta["operation"], "Id", None
        if operation == "upsert":
            expected, ext = self._store(request), request.params["ext"]
            f = expected.field(ext)
            if f is None or not (f.external_id or f.name == "Id"):
                raise _fail(400, "INVALID_FIELD", f"Field name provided, {ext} is not an External ID or indexed field for {expected.sobject}")
            ext = f.name
        records, all_or_none = self._records_body(request)
        items, seen = [], set()
        for raw in records:
            store = self._type_of(request, raw)
            if expected is not None and store.sobject != expected.sobject:
                raise _fail(400, "INVALID_TYPE", f"Record type doesn't match the URL: expected {expected.sobject}")
            values = self._typed_values(store, raw)
            key = values.get(ext)
            if operation == "insert" and key:
                rec, problems = None, [_record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])]
            elif operation != "insert" and not key:
                rec, problems = None, [_record_error("MISSING_ARGUMENT", f"{ext} not specified" + (" in an update call" if operation == "update" else ""),
                                                     [ext] if operation == "upsert" else [])]
            else:
                if operation == "update" and key in seen:
                    raise _fail(400, "INVALID_FIELD", f"Duplicate id in list: {key}")
                seen.add(key)
                rec, problems = self._target(store, operation, values, key)
            items.append((store, values, rec, problems))
        return Response.json(200, self._run_batch(items, all_or_none, operation))

    def _run_batch(self, items: list[tuple[_SObjects, dict[str, Any], Record | None, list[dict[str, Any]]]], all_or_none: bool, operation: str) -> list[dict[str, Any]]:
        """Write the checked items (store, values, target record, problems); one result each."""
        now = self.stamp()
        failed = any(problems for _, _, _, problems in items)
        results = []
        for store, values, rec, problems in items:
            if problems or (all_or_none and failed):
                shown = rec.id if problems and rec is not None else values.get("Id") if operation == "update" else None
                errors = problems or [_record_error("ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                    "Record rolled back because not all records were valid and the request was using AllOrNone header")]
                results.append({"success": False, "errors": errors} | ({"id": shown} if shown else {}))
                continue
            written = self.write(store, rec, values, now)
            results.append({"id": written.id, "success": True, "errors": []} | ({"created": rec is None} if operation == "upsert" else {}))
        return results

    @api("DELETE", C + "/?", name="DELETE /composite/sobjects")
    def _collection_delete(self, request: Request) -> Response:
        ids = request.query_list("ids")
        if len(ids) > COLLECTION_MAX:
            raise _fail(400, "EXCEEDED_ID_LIMIT", TOO_MANY_RECORDS)
        now, results = self.stamp(), []
        for rid in ids:
            store = next((s for s in request.account.stores.values() if rid.startswith(KEY_PREFIX[s.sobject])), None)
            rec, problems = self._existing(store, rid) if store else (None, [_record_error("MALFORMED_ID", f"malformed id {rid}", [])])
            if rec is not None:
                self.remove(store, rec, now)
            results.append({"id": rid if rec is None else rec.id, "success": not problems, "errors": problems})
        return Response.json(200, results)

    @api("GET", C + "/{sobject}/?", name="GET /composite/sobjects/{SObject}")
    def _collection_read(self, request: Request) -> Response:
        store = self._store(request)
        names = self._known_fields(store, request.query_list("fields"))
        recs = [store.rows.get(rid) for rid in request.query_list("ids")]
        return Response.json(200, [None if rec is None or rec.deleted is not None else store.render(rec, ["Id", *names], request.params["version"]) for rec in recs])

    @staticmethod
    def _known_fields(store: _SObjects, names: list[str]) -> list[str]:
        unknown = next((name for name in names if store.field(name) is None), None)
        if unknown is not None:
            raise _fail(400, "INVALID_FIELD", f"No such column '{unknown}' on entity '{store.sobject}'")
        return names

    def remove(self, store: RecordStore, record: Record, now: int | None = None, *, hard: bool = False) -> None:
        """Delete as Salesforce does: to the recycle bin, ``SystemModstamp`` moved (``hard``: for good)."""
        now = self.stamp() if now is None else now
        if not hard:
            store.touch(record, max(now, record.updated))
        store.delete(record, now, hard=hard)

    def _addressed(self, request: Request) -> tuple[_SObjects, Record]:
        """The sObject and live record the URL names (404 ``NOT_FOUND``; deleting one already deleted: ``ENTITY_IS_DELETED``)."""
        store = self._store(request)
        rec, problems = self._existing(store, request.params["id"])
        if rec is None:
            deleted = request.method == "DELETE" and problems[0]["statusCode"] == "ENTITY_IS_DELETED"
            raise _fail(404, "ENTITY_IS_DELETED" if deleted else "NOT_FOUND", "The requested resource does not exist")
        return store, rec

    @api("GET", S + "/{id}/?", name="GET /sobjects/{SObject}/{id}")
    def _get_one(self, request: Request) -> Response:
        store, rec = self._addressed(request)
        names = self._known_fields(store, request.query_list("fields") or [f.name for f in store.fields.values()])
        return Response.json(200, store.render(rec, names, request.params["version"]))

    @api("POST", S + "/?", name="POST /sobjects/{SObject}")
    @api("PATCH", S + "/{id}/?", name="PATCH /sobjects/{SObject}/{id}")
    def _write_one(self, request: Request) -> Response:
        """Create (``POST``) or update one record from the body; every problem answers 400."""
        store, rec = self._addressed(request) if request.method == "PATCH" else (self._store(request), None)
        values = self._typed_values(store, self.body_object(request))
        problems = self._record_problems(store, values, rec)
        if problems:
            raise ApiError(Response.json(400, [{"message": p["message"], "errorCode": p["statusCode"], "fields": p["fields"]} for p in problems]))
        written = self.write(store, rec, values, self.stamp())
        return Response.json(201, {"id": written.id, "success": True, "errors": []}) if rec is None else Response.empty(204)

    @api("DELETE", S + "/{id}/?", name="DELETE /sobjects/{SObject}/{id}")
    def _delete_one(self, request: Request) -> Response:
        self.remove(*self._addressed(request))
        return Response.empty(204)

    @staticmethod
    def _sobjects(org: Org, sobject: str) -> _SObjects | None:
        return next((s for s in org.stores.values() if s.sobject.lower() == sobject.lower()), None)

    def _store(self, request: Request, sobject: str | None = None) -> _SObjects:
        store = self._sobjects(request.account, sobject or request.params["sobject"])
        if store is None:
            raise _fail(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject or request.params['sobject']}' is not supported.")
        return store

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return store.render(record, [f.name for f in store.fields.values()], "66.0")

    def random_changes(self, org: Account, store: RecordStore, record: Record) -> dict[str, Any]:
        data = store.data
        if store.sobject == "Contact":
            return {"Title": data.job_title() or "Consultora", "Phone": data.phone()}
        if store.sobject == "Account":
            return {"Industry": data.pick(INDUSTRIES), "Phone": data.phone()}
        return {"StageName": data.pick(STAGES), "Amount": data.amount()}

    def set_fields(self, entity: str, record_id: str, values: Mapping[str, Any], *, account: str | None = None) -> None:
        """Write ``values`` to one record as a user would (no validation), stamped now."""
        with self.lock:
            store, (rec,) = self._pick(entity, None, [record_id], account)
            self.write(store, rec, {store.fields[k.lower()].name: v for k, v in values.items()}, self.stamp())

    def touch(self, entity: str, n: int | None = None, ids: Iterable[str] | None = None, *, account: str | None = None) -> list[str]:
        """A system change: ``SystemModstamp`` moves, ``LastModifiedDate`` and the values do not."""
        with self.lock:
            store, chosen = self._pick(entity, n, ids, account)
            for rec in chosen:
                store.touch(rec, max(self.stamp(), rec.updated))
            return [r.id for r in chosen]

    def describe(self) -> dict[str, Any]:
        with self.lock:
            org = self.account()
            counts = {ENTITY_OF[s]: {"live": st.count(), "deleted": st.count(deleted=True)} for s, st in org.stores.items()}
            return {"objects": counts, "api_usage": self.api_usage(), "open_cursors": len(org.cursors)}


__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_REFRESH_TOKEN", "Org", "SalesforceSimConfig", "SalesforceSimulator", "id18"]
