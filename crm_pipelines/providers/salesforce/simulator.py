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

Switches for facts the reference leaves open: ``accept_fractional_seconds`` (SOQL datetimes with
milliseconds), ``timestamp_resolution_ms`` (system timestamps are whole seconds by default),
``batch_size_out_of_range`` ("clamp" or "reject"), ``multi_currency`` (``CurrencyIsoCode`` exists),
``restricted_stage_picklist``, ``block_duplicate_emails``, ``max_uri_length`` (414 beyond it).

Writes made by one request share one timestamp (the simulated now, at the timestamp resolution).
Injected faults never consume the allocation.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import random
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from crm_pipelines.providers.salesforce.simulator_soql import (
    BoolOp,
    Comparison,
    Literal,
    Not,
    Query,
    SoqlError,
    like_regex,
    parse,
    parse_datetime_literal,
)
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.server import (
    FaultConfig,
    InvalidJSONBody,
    Request,
    Response,
    Router,
    SimClock,
    SimulatorBase,
    parse_datetime,
)

DEFAULT_CLIENT_ID = "sim-salesforce-client-id"
DEFAULT_CLIENT_SECRET = "sim-salesforce-client-secret"
DEFAULT_REFRESH_TOKEN = "sim-salesforce-refresh-token"
ORG_ID = "00D5g00000SIMORG"
USER_ID = "0055g00000SIMUSR"
DAY_MS = 86_400_000
SUPPORTED_VERSIONS = tuple(f"{v}.0" for v in range(50, 67))
VERSION_LABELS = {"64.0": "Summer '25", "65.0": "Winter '26", "66.0": "Spring '26"}
COLLECTION_MAX = 200
ENTITY_OF = {"Contact": "contacts", "Account": "companies", "Opportunity": "deals"}
SOBJECT_OF = {v: k for k, v in ENTITY_OF.items()}
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

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
CONCURRENT_MESSAGE = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
TOTAL_REQUESTS_MESSAGE = "TotalRequests Limit exceeded."


def id18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character Salesforce id."""
    suffix = ""
    for start in range(0, 15, 5):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return id15 + suffix


def format_datetime(ms: int | None) -> str | None:
    """``2025-02-01T09:30:11.000+0000`` as Salesforce writes datetimes in JSON."""
    if ms is None:
        return None
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class SalesforceSimConfig:
    """Everything the Salesforce simulator can be told; every field has a working default.

    Data: ``seed``, ``contacts``/``companies``/``deals`` counts, ``history_days`` before
    ``reference_time`` (``None`` = now), ``clock_start``/``freeze_clock`` for the simulated clock.
    Custom fields: ``document_field`` (CPF/CNPJ text on Contact and Account) and
    ``external_id_field`` (unique external id on all three objects).

    Auth: ``client_id``/``client_secret``/``refresh_tokens`` accepted by the token endpoint,
    ``tokens`` pre-issued access tokens that never expire by age, ``session_lifetime_s``,
    ``instance_url`` (``None`` = this server's URL).

    Limits: ``daily_api_limit`` per rolling 24 hours (``None`` disables it); ``cursor_idle_timeout_s``,
    ``max_open_cursors``; ``recycle_bin_days``. Other switches: see the module docstring.
    """

    seed: int = 1
    contacts: int = 100
    companies: int = 20
    deals: int = 40
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False

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
    batch_size_out_of_range: str = "clamp"
    multi_currency: bool = True
    restricted_stage_picklist: bool = False
    block_duplicate_emails: bool = False
    max_uri_length: int = 16_384
    faults: FaultConfig = field(default_factory=FaultConfig)

    def validate(self) -> None:
        for name in ("contacts", "companies", "deals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.batch_size_out_of_range not in ("clamp", "reject"):
            raise ValueError("batch_size_out_of_range must be 'clamp' or 'reject'")
        if self.timestamp_resolution_ms < 1:
            raise ValueError("timestamp_resolution_ms must be >= 1")
        if self.daily_api_limit is not None and self.daily_api_limit < 1:
            raise ValueError("daily_api_limit must be >= 1 or None")
        self.faults.validate()


# --------------------------------------------------------------------------------------------
# Schemas and storage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # id string email phone url picklist textarea date datetime currency percent boolean reference
    length: int | None = None
    required: bool = False
    writable: bool = True
    label: str = ""
    external_id: bool = False


SYSTEM_FIELDS = (
    _Field("Id", "id", writable=False, label="Record ID"),
    _Field("IsDeleted", "boolean", writable=False, label="Deleted"),
    _Field("CreatedDate", "datetime", writable=False, label="Created Date"),
    _Field("CreatedById", "reference", writable=False, label="Created By ID"),
    _Field("LastModifiedDate", "datetime", writable=False, label="Last Modified Date"),
    _Field("LastModifiedById", "reference", writable=False, label="Last Modified By ID"),
    _Field("SystemModstamp", "datetime", writable=False, label="System Modstamp"),
    _Field("OwnerId", "reference", label="Owner ID"),
)


def _schemas(cfg: SalesforceSimConfig) -> dict[str, dict[str, _Field]]:
    ext = _Field(cfg.external_id_field, "string", 255, label="Crm Record Id", external_id=True)
    doc = _Field(cfg.document_field, "string", 18, label="CPF/CNPJ")
    contact = [
        _Field("FirstName", "string", 40, label="First Name"),
        _Field("LastName", "string", 80, required=True, label="Last Name"),
        _Field("Name", "string", 121, writable=False, label="Full Name"),
        _Field("Email", "email", 80, label="Email"),
        _Field("Phone", "phone", 40, label="Business Phone"),
        _Field("MobilePhone", "phone", 40, label="Mobile Phone"),
        _Field("Title", "string", 128, label="Title"),
        _Field("AccountId", "reference", label="Account ID"),
        _Field("MailingCity", "string", 40, label="Mailing City"),
        _Field("MailingState", "string", 80, label="Mailing State/Province"),
        _Field("MailingCountry", "string", 80, label="Mailing Country"),
        doc, ext,
    ]
    account = [
        _Field("Name", "string", 255, required=True, label="Account Name"),
        _Field("Website", "url", 255, label="Website"),
        _Field("Phone", "phone", 40, label="Account Phone"),
        _Field("Industry", "picklist", 255, label="Industry"),
        _Field("Type", "picklist", 255, label="Account Type"),
        _Field("BillingCity", "string", 40, label="Billing City"),
        _Field("BillingState", "string", 80, label="Billing State/Province"),
        _Field("BillingCountry", "string", 80, label="Billing Country"),
        doc, ext,
    ]
    opportunity = [
        _Field("Name", "string", 120, required=True, label="Name"),
        _Field("StageName", "picklist", 255, required=True, label="Stage"),
        _Field("CloseDate", "date", required=True, label="Close Date"),
        _Field("Amount", "currency", label="Amount"),
        _Field("Probability", "percent", label="Probability (%)"),
        _Field("AccountId", "reference", label="Account ID"),
        _Field("IsClosed", "boolean", writable=False, label="Closed"),
        _Field("IsWon", "boolean", writable=False, label="Won"),
        ext,
    ]
    if cfg.multi_currency:
        opportunity.insert(4, _Field("CurrencyIsoCode", "picklist", 3, label="Opportunity Currency"))
    out = {}
    for sobject, fields in (("Contact", contact), ("Account", account), ("Opportunity", opportunity)):
        out[sobject] = {f.name.lower(): f for f in (*SYSTEM_FIELDS, *fields)}
    return out


class _Rec:
    """One record: id, system times (epoch ms) and the other field values."""

    __slots__ = ("id", "created_ms", "modified_ms", "modstamp_ms", "deleted_ms", "values")

    def __init__(self, id_: str, now_ms: int, values: dict[str, Any]) -> None:
        self.id = id_
        self.created_ms = self.modified_ms = self.modstamp_ms = now_ms
        self.deleted_ms: int | None = None
        self.values = values


class _Store:
    """Records of one sObject, with unique indexes on the external id and e-mail."""

    def __init__(self, sobject: str, fields: dict[str, _Field], ext_field: str) -> None:
        self.sobject = sobject
        self.fields = fields
        self.ext_field = ext_field
        self.rows: dict[str, _Rec] = {}
        self.serial = 0
        self.by_ext: dict[str, str] = {}

    def new_id(self) -> str:
        self.serial += 1
        n, digits = self.serial, []
        for _ in range(10):
            n, rest = divmod(n, 62)
            digits.append(_BASE62[rest])
        return id18(KEY_PREFIX[self.sobject] + "5g" + "".join(reversed(digits)))

    def field(self, name: str) -> _Field | None:
        return self.fields.get(name.lower())

    def get(self, rec: _Rec, name: str) -> Any:
        key = name.lower()
        if key == "id":
            return rec.id
        if key == "isdeleted":
            return rec.deleted_ms is not None
        if key == "createddate":
            return rec.created_ms
        if key == "lastmodifieddate":
            return rec.modified_ms
        if key == "systemmodstamp":
            return rec.modstamp_ms
        if key in ("createdbyid", "lastmodifiedbyid"):
            return USER_ID + "AAA"
        if key == "name" and self.sobject == "Contact":
            return " ".join(v for v in (rec.values.get("FirstName"), rec.values.get("LastName")) if v) or None
        if key in ("isclosed", "iswon"):
            stage = rec.values.get("StageName") or ""
            return stage.startswith("Closed") if key == "isclosed" else stage == "Closed Won"
        return rec.values.get(self.fields[key].name)

    def index(self, rec: _Rec) -> None:
        key = rec.values.get(self.ext_field)
        if key:
            self.by_ext[key.lower()] = rec.id

    def unindex(self, rec: _Rec) -> None:
        key = rec.values.get(self.ext_field)
        if key and self.by_ext.get(key.lower()) == rec.id:
            del self.by_ext[key.lower()]


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.response = _error(status, code, message, fields)


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return Response.json(status, [item])


def _record_error(code: str, message: str, fields: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or [], **extra}


@dataclass
class _Cursor:
    locator: str
    sobject: str
    fields: list[str]
    ids: list[str]
    batch: int
    all_rows: bool
    last_used_ms: int
    token: str


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


class SalesforceSimulator(SimulatorBase):
    """Salesforce REST over real HTTP. See the module docstring and :class:`SalesforceSimConfig`.

    Python-side API for tests in the same process: :meth:`records`, :meth:`count`, :meth:`modify`,
    :meth:`touch`, :meth:`create`, :meth:`delete`, :meth:`set_fields`, :meth:`expire_sessions`,
    :meth:`expire_cursors`, :meth:`revoke_refresh_tokens`, :meth:`api_usage`, :meth:`add_api_usage`,
    plus ``clock``, ``faults``, ``stats``, :meth:`fail_next` and :meth:`reset_rate_limits`.
    """

    provider = "salesforce"
    server_name = "salesforce-simulator"

    def __init__(self, config: SalesforceSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SalesforceSimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._lock = threading.RLock()
        self._usage_lock = threading.Lock()
        self._usage: deque[list[int]] = deque()  # [minute, calls]
        self._sessions: dict[str, int | None] = {token: None for token in cfg.tokens}  # token -> issued ms (None: no expiry)
        self._refresh_tokens = set(cfg.refresh_tokens)
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._rng = random.Random(f"{cfg.seed}-mutations")
        self._token_rng = random.Random(f"{cfg.seed}-tokens")
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        reference = cfg.reference_time or clock.now()
        self.reference_ms = int(reference.timestamp() * 1000)
        schemas = _schemas(cfg)
        self._stores = {s: _Store(s, schemas[s], cfg.external_id_field) for s in ("Account", "Contact", "Opportunity")}
        self._data = {s: FakeData(f"{cfg.seed}-{s}") for s in self._stores}
        self._account_pool: list[str] = []
        for sobject, count in (("Account", cfg.companies), ("Contact", cfg.contacts), ("Opportunity", cfg.deals)):
            self._generate(sobject, count)
            if sobject == "Account":
                self._account_pool = list(self._stores["Account"].rows)

    # ---- data generation ------------------------------------------------------------------

    def _stamp(self, ms: int) -> int:
        resolution = self.config.timestamp_resolution_ms
        return ms - ms % resolution

    def _generate(self, sobject: str, count: int) -> None:
        store, data = self._stores[sobject], self._data[sobject]
        rng = data.rng
        end_ms = self.reference_ms
        start_ms = end_ms - int(self.config.history_days * DAY_MS)
        stamped = []
        for _ in range(count):
            created = start_ms + int(rng.random() * (end_ms - start_ms + 1))
            updated = created + int(rng.random() * (end_ms - created + 1))
            rec = _Rec(store.new_id(), self._stamp(created), self._seed_values(sobject, data, rng))
            rec.modified_ms = rec.modstamp_ms = max(self._stamp(updated), rec.created_ms)
            stamped.append(rec)
        for rec in stamped:
            store.rows[rec.id] = rec
            store.index(rec)

    def _seed_values(self, sobject: str, data: FakeData, rng: random.Random) -> dict[str, Any]:
        doc = self.config.document_field
        if sobject == "Contact":
            person = data.person()
            pool = self._account_pool
            account_id = pool[int(rng.random() * len(pool))] if pool and rng.random() < 0.7 else None
            return {
                "FirstName": person["first_name"], "LastName": person["last_name"] or data.last_name(),
                "Email": person["email"], "Phone": person["phone"], "MobilePhone": person["mobile"],
                "Title": person["job_title"], "AccountId": account_id, "MailingCity": person["city"],
                "MailingState": person["state"], "MailingCountry": person["country"], doc: person["document"],
                "OwnerId": data.pick(OWNER_IDS),
            }
        if sobject == "Account":
            org = data.organization()
            website = org["domain"]
            if website:
                style = rng.random()
                website = f"https://www.{website}" if style < 0.4 else f"www.{website}" if style < 0.7 else f"http://{website}/" if style < 0.8 else website
            return {
                "Name": org["name"], "Website": website, "Phone": org["phone"],
                "Industry": data.pick(INDUSTRIES) if rng.random() < 0.9 else None, "Type": data.pick(ACCOUNT_TYPES),
                "BillingCity": org["city"], "BillingState": org["state"], "BillingCountry": org["country"],
                doc: org["document"], "OwnerId": data.pick(OWNER_IDS),
            }
        deal = data.deal()
        close = date.fromtimestamp(self.reference_ms / 1000) + timedelta(days=int((rng.random() - 0.5) * 120))
        values = {
            "Name": deal["name"], "StageName": data.pick(STAGES), "CloseDate": close.isoformat(),
            "Amount": deal["amount"], "Probability": str(data.pick((10, 20, 50, 75, 90, 100))), "OwnerId": data.pick(OWNER_IDS),
        }
        if self.config.multi_currency:
            values["CurrencyIsoCode"] = deal["currency"]
        return values

    # ---- routes ---------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        router.add("POST", r"/services/oauth2/token", self._token, name="POST /services/oauth2/token")
        router.add("GET", r"/services/data/?", self._versions, name="GET /services/data/")
        v = r"/services/data/v(?P<version>\d+\.\d)"
        api = self._api
        router.add("GET", v + r"/limits/?", api(self._limits), name="GET /limits")
        router.add("GET", v + r"/query/?", api(lambda r: self._query(r, all_rows=False)), name="GET /query")
        router.add("GET", v + r"/queryAll/?", api(lambda r: self._query(r, all_rows=True)), name="GET /queryAll")
        router.add("GET", v + r"/query(?:All)?/(?P<locator>01g[0-9A-Za-z]+)-(?P<offset>\d+)", api(self._query_more), name="GET /query/{locator}")
        c = v + r"/composite/sobjects"
        router.add("POST", c + r"/?", api(self._collection_create), name="POST /composite/sobjects")
        router.add("PATCH", c + r"/?", api(self._collection_update), name="PATCH /composite/sobjects")
        router.add("DELETE", c + r"/?", api(self._collection_delete), name="DELETE /composite/sobjects")
        router.add("PATCH", c + r"/(?P<sobject>\w+)/(?P<ext>\w+)/?", api(self._collection_upsert), name="PATCH /composite/sobjects/{SObject}/{ExtId}")
        router.add("GET", c + r"/(?P<sobject>\w+)/?", api(self._collection_read), name="GET /composite/sobjects/{SObject}")
        s = v + r"/sobjects/(?P<sobject>\w+)"
        router.add("GET", s + r"/describe/?", api(self._describe), name="GET /sobjects/{SObject}/describe")
        router.add("GET", s + r"/updated/?", api(lambda r: self._replication(r, deleted=False)), name="GET /sobjects/{SObject}/updated")
        router.add("GET", s + r"/deleted/?", api(lambda r: self._replication(r, deleted=True)), name="GET /sobjects/{SObject}/deleted")
        router.add("POST", s + r"/?", api(self._create_one), name="POST /sobjects/{SObject}")
        router.add("GET", s + r"/(?P<id>\w{15,18})/?", api(self._get_one), name="GET /sobjects/{SObject}/{id}")
        router.add("PATCH", s + r"/(?P<id>\w{15,18})/?", api(self._update_one), name="PATCH /sobjects/{SObject}/{id}")
        router.add("DELETE", s + r"/(?P<id>\w{15,18})/?", api(self._delete_one), name="DELETE /sobjects/{SObject}/{id}")
        router.add("POST", r"/_simulator/expire-sessions", lambda _r: Response.json(200, {"expired": self.expire_sessions()}), name="admin expire sessions", api=False)
        router.add("POST", r"/_simulator/expire-cursors", lambda _r: Response.json(200, {"expired": self.expire_cursors()}), name="admin expire cursors", api=False)
        router.add("GET", r"/_simulator/api-usage", lambda _r: Response.json(200, self.api_usage()), name="admin api usage", api=False)
        router.add("POST", r"/_simulator/api-usage", self._admin_usage, name="admin add api usage", api=False)

    def not_found_response(self, request: Request) -> Response:
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def method_not_allowed_response(self, request: Request) -> Response:
        return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE")

    def internal_error_response(self, request: Request) -> Response:
        return _error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567-89 (-1)")

    def fault_response(self, status: int, request: Request) -> Response:
        """Injected answers shaped like Salesforce's: 403 is the retryable concurrent-request limit."""
        headers = self._limit_headers()
        if status == 403:
            response = _error(403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_MESSAGE)
        elif status == 429:
            response = _error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests; retry later.")
        elif status == 503:
            response = _error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable; please retry.")
        elif status >= 500:
            response = self.internal_error_response(request)
            response.status = status
        else:
            response = _error(status, "UNKNOWN_EXCEPTION", f"HTTP {status}")
        response.headers.update(headers)
        return response

    # ---- auth and limits ------------------------------------------------------------------

    def _api(self, handler: Any) -> Any:
        def wrapped(request: Request) -> Response:
            if request.params.get("version", "") not in SUPPORTED_VERSIONS:
                return self.not_found_response(request)
            if len(request.raw_target) > self.config.max_uri_length:
                return _error(414, "URI_TOO_LONG", f"The request URI is longer than {self.config.max_uri_length} characters")
            token = self._authenticate(request)
            if token is None:
                return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if not self._count_call():
                response = _error(403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS_MESSAGE)
                self.stats_recorder.record_rate_limited("TotalRequests")
            else:
                request.params["token"] = token
                try:
                    with self._lock:
                        response = handler(request)
                except _ApiError as exc:
                    response = exc.response
                except InvalidJSONBody as exc:
                    response = _error(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}")
            response.headers.update(self._limit_headers())
            return response

        return wrapped

    def _authenticate(self, request: Request) -> str | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "oauth") or token not in self._sessions:
            return None
        issued = self._sessions[token]
        if issued is not None and self.clock.now_ms() - issued > self.config.session_lifetime_s * 1000:
            del self._sessions[token]
            return None
        return token

    def _minute(self) -> int:
        return self.clock.now_ms() // 60_000

    def _used(self) -> int:
        horizon = self._minute() - 24 * 60
        while self._usage and self._usage[0][0] <= horizon:
            self._usage.popleft()
        return sum(calls for _, calls in self._usage)

    def _count_call(self, n: int = 1, *, force: bool = False) -> bool:
        with self._usage_lock:
            used = self._used()
            limit = self.config.daily_api_limit
            if not force and limit is not None and used + n > limit:
                return False
            minute = self._minute()
            if self._usage and self._usage[-1][0] == minute:
                self._usage[-1][1] += n
            else:
                self._usage.append([minute, n])
            return True

    def _limit_headers(self) -> dict[str, str]:
        with self._usage_lock:
            used = self._used()
        limit = self.config.daily_api_limit
        return {"Sforce-Limit-Info": f"api-usage={used}/{limit if limit is not None else 5_000_000}"}

    def api_usage(self) -> dict[str, int | None]:
        """Calls counted in the last 24 simulated hours, and the allocation."""
        with self._usage_lock:
            return {"used": self._used(), "max": self.config.daily_api_limit}

    def add_api_usage(self, calls: int) -> dict[str, int | None]:
        """Count ``calls`` made by other users of the org (now)."""
        if calls > 0:
            self._count_call(calls, force=True)
        return self.api_usage()

    def _admin_usage(self, request: Request) -> Response:
        try:
            body = request.json() or {}
            return Response.json(200, self.add_api_usage(int(body.get("add", 0))))
        except (ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})

    def reset_rate_limits(self) -> None:
        with self._usage_lock:
            self._usage.clear()

    def expire_sessions(self) -> int:
        """Invalidate every access token (the next call gets 401 INVALID_SESSION_ID)."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def expire_cursors(self) -> int:
        """Drop every open query cursor (the next ``nextRecordsUrl`` gets INVALID_QUERY_LOCATOR)."""
        with self._lock:
            count = len(self._cursors)
            self._cursors.clear()
            return count

    def revoke_refresh_tokens(self) -> None:
        """Refresh tokens stop working (the token endpoint answers ``invalid_grant``)."""
        with self._lock:
            self._refresh_tokens.clear()

    def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        cfg = self.config
        if form.get("grant_type") != "refresh_token":
            return Response.json(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if form.get("client_id") != cfg.client_id:
            return Response.json(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        if form.get("client_secret") != cfg.client_secret:
            return Response.json(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        if form.get("refresh_token") not in self._refresh_tokens:
            return Response.json(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        issued = self.clock.now_ms()
        token = f"{ORG_ID}!AQ" + "".join(self._token_rng.choice(_BASE62) for _ in range(96))
        with self._lock:
            self._sessions[token] = issued
        instance = cfg.instance_url or self.base_url
        identity = f"{self.base_url}/id/{ORG_ID}AAA/{USER_ID}AAA"
        signature = base64.b64encode(hmac.new(cfg.client_secret.encode(), f"{identity}{issued}".encode(), hashlib.sha256).digest()).decode()
        return Response.json(200, {
            "access_token": token, "instance_url": instance, "id": identity, "token_type": "Bearer",
            "issued_at": str(issued), "signature": signature, "scope": "api refresh_token",
        })

    def _versions(self, _request: Request) -> Response:
        return Response.json(200, [
            {"label": VERSION_LABELS.get(v, f"Release {v}"), "url": f"/services/data/v{v}", "version": v} for v in SUPPORTED_VERSIONS
        ])

    def _limits(self, _request: Request) -> Response:
        usage = self.api_usage()
        allowed = usage["max"] or 5_000_000
        return Response.json(200, {
            "DailyApiRequests": {"Max": allowed, "Remaining": max(allowed - int(usage["used"] or 0), 0)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        })

    # ---- rendering --------------------------------------------------------------------------

    def _store(self, sobject: str) -> _Store:
        for name, store in self._stores.items():
            if name.lower() == sobject.lower():
                return store
        raise _ApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}' is not supported.")

    def _value_out(self, store: _Store, rec: _Rec, f: _Field) -> Any:
        value = store.get(rec, f.name)
        if value is None:
            return None
        if f.kind == "datetime":
            return format_datetime(value)
        if f.kind in ("currency", "percent"):
            return float(value)
        return value

    def _render(self, store: _Store, rec: _Rec, names: Iterable[str], version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": store.sobject, "url": f"/services/data/v{version}/sobjects/{store.sobject}/{rec.id}"}}
        for name in names:
            f = store.fields[name.lower()]
            out[f.name] = self._value_out(store, rec, f)
        return out

    # ---- SOQL ---------------------------------------------------------------------------------

    def _batch_size(self, request: Request) -> int:
        header = request.header("Sforce-Query-Options") or ""
        match = re.search(r"batchSize\s*=\s*(\d+)", header)
        if not match:
            return 2000
        size = int(match.group(1))
        if 200 <= size <= 2000:
            return size
        if self.config.batch_size_out_of_range == "reject":
            raise _ApiError(400, "INVALID_BATCH_SIZE", f"batchSize must be between 200 and 2000, got {size}")
        return min(max(size, 200), 2000)

    def _query(self, request: Request, *, all_rows: bool) -> Response:
        text = request.query_value("q")
        if not text:
            raise _ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            query = parse(text)
        except SoqlError as exc:
            raise _ApiError(400, exc.code, exc.message) from None
        store = self._checked(query, text)
        if not self.config.accept_fractional_seconds and re.search(r"T\d{2}:\d{2}:\d{2}\.\d", text):
            raise _ApiError(400, "MALFORMED_QUERY", "line 1: no viable alternative at character '.' (fractional seconds)")
        predicate = self._compile(store, query.where)
        horizon = self.clock.now_ms() - int(self.config.recycle_bin_days * DAY_MS)
        rows = [
            rec for rec in store.rows.values()
            if (rec.deleted_ms is None or (all_rows and rec.deleted_ms >= horizon)) and predicate(rec)
        ]
        if query.count:
            total = len(rows) if query.limit is None else min(len(rows), query.limit)
            return Response.json(200, {"totalSize": total, "done": True, "records": []})
        for name, descending, nulls_last in reversed(query.order or []):
            rows.sort(key=self._sort_key(store, name, nulls_last != descending), reverse=descending)
        if query.limit is not None:
            rows = rows[: query.limit]
        batch = self._batch_size(request)
        version = request.params["version"]
        fields = [store.fields[n.lower()].name for n in query.fields]
        if len(rows) <= batch:
            return Response.json(200, {"totalSize": len(rows), "done": True, "records": [self._render(store, r, fields, version) for r in rows]})
        locator = "01g5g" + "".join(self._token_rng.choice(_BASE62) for _ in range(10))
        token = request.params["token"]
        cursor = _Cursor(locator, store.sobject, fields, [r.id for r in rows], batch, all_rows, self.clock.now_ms(), token)
        mine = [c for c in self._cursors.values() if c.token == token]
        while len(mine) >= self.config.max_open_cursors:
            self._cursors.pop(mine.pop(0).locator, None)
        self._cursors[locator] = cursor
        return self._page(cursor, 0, version)

    def _page(self, cursor: _Cursor, offset: int, version: str) -> Response:
        store = self._stores[cursor.sobject]
        ids = cursor.ids[offset : offset + cursor.batch]
        records = [self._render(store, store.rows[i], cursor.fields, version) for i in ids if i in store.rows]
        end = offset + len(ids)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids), "records": records}
        if end < len(cursor.ids):
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.locator}-{end}"
        cursor.last_used_ms = self.clock.now_ms()
        return Response.json(200, body)

    def _query_more(self, request: Request) -> Response:
        cursor = self._cursors.get(request.params["locator"])
        now = self.clock.now_ms()
        if cursor is not None and now - cursor.last_used_ms > self.config.cursor_idle_timeout_s * 1000:
            del self._cursors[cursor.locator]
            cursor = None
        offset = int(request.params["offset"])
        if cursor is None or offset % cursor.batch or offset >= len(cursor.ids):
            raise _ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, offset, request.params["version"])

    def _checked(self, query: Query, text: str) -> _Store:
        try:
            store = self._store(query.sobject)
        except _ApiError:
            raise _ApiError(
                400, "INVALID_TYPE",
                f"\n{text[:80]}\n^\nERROR at Row:1:Column:1\nsObject type '{query.sobject}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the "
                "describe call for the appropriate names.",
            ) from None
        seen: set[str] = set()
        for name in query.fields:
            if name.lower() in seen:
                raise _ApiError(400, "MALFORMED_QUERY", f"duplicate field selected: {name}")
            seen.add(name.lower())
        for name in query.referenced_fields():
            if store.field(name) is None:
                column = text.find(name) + 1
                raise _ApiError(
                    400, "INVALID_FIELD",
                    f"\n{text[:120]}\n^\nERROR at Row:1:Column:{column}\nNo such column '{name}' on entity '{store.sobject}'. If you are "
                    "attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
        return store

    def _sort_key(self, store: _Store, name: str, nulls_high: bool) -> Any:
        f = store.fields[name.lower()]

        def key(rec: _Rec) -> tuple:
            value = store.get(rec, f.name)
            if value is None:
                return (1 if nulls_high else -1, "")
            if f.kind in ("string", "email", "phone", "url", "picklist"):
                value = str(value).lower()
            elif f.kind in ("currency", "percent"):
                value = float(value)
            return (0, value)

        return key

    def _compile(self, store: _Store, node: Any) -> Any:
        if node is None:
            return lambda rec: True
        if isinstance(node, BoolOp):
            parts = [self._compile(store, item) for item in node.items]
            if node.op == "AND":
                return lambda rec: all(p(rec) for p in parts)
            return lambda rec: any(p(rec) for p in parts)
        if isinstance(node, Not):
            inner = self._compile(store, node.item)
            return lambda rec: not inner(rec)
        assert isinstance(node, Comparison)
        f = store.fields[node.field.lower()]
        literals = node.value if isinstance(node.value, list) else [node.value]
        wanted = [self._literal(f, lit) for lit in literals]
        op = node.op
        get = store.get
        name = f.name
        text_like = f.kind in ("string", "email", "phone", "url", "picklist", "reference", "id")
        if op == "LIKE":
            if not text_like:
                raise _ApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on {f.kind} field: LIKE")
            pattern = like_regex(str(wanted[0]))
            return lambda rec: (v := get(rec, name)) is not None and pattern.fullmatch(str(v)) is not None

        def norm(value: Any) -> Any:
            if value is None:
                return None
            if f.kind == "id":
                return str(value)[:15]
            if text_like:
                return str(value).lower()
            if f.kind in ("currency", "percent"):
                return float(value)
            return value

        wanted_n = [norm(w) for w in wanted]
        if op in ("IN", "NOT IN"):
            pool = set(wanted_n)
            if op == "IN":
                return lambda rec: norm(get(rec, name)) in pool
            return lambda rec: norm(get(rec, name)) not in pool
        target = wanted_n[0]
        if op == "=":
            return lambda rec: norm(get(rec, name)) == target
        if op == "!=":
            return lambda rec: norm(get(rec, name)) != target
        if target is None:
            raise _ApiError(400, "MALFORMED_QUERY", f"invalid comparison with null on field '{f.name}'")
        compare = {"<": lambda a: a < target, "<=": lambda a: a <= target, ">": lambda a: a > target, ">=": lambda a: a >= target}[op]
        if f.kind == "id":
            # Ids order as their full string.
            target = str(wanted[0])
            compare = {"<": lambda a: a < target, "<=": lambda a: a <= target, ">": lambda a: a > target, ">=": lambda a: a >= target}[op]
            return lambda rec: compare(rec.id)
        return lambda rec: (v := norm(get(rec, name))) is not None and compare(v)

    @staticmethod
    def _literal(f: _Field, lit: Literal) -> Any:
        if lit.kind == "null":
            return None
        expected = {
            "datetime": "datetime", "date": "date", "boolean": "boolean", "currency": "number", "percent": "number",
        }.get(f.kind, "string")
        if lit.kind != expected:
            quoted = "should not be enclosed in quotes" if lit.kind == "string" else "should be enclosed in quotes" if expected == "string" else ""
            raise _ApiError(
                400, "MALFORMED_QUERY",
                f"value of filter criterion for field '{f.name}' must be of type {f.kind if f.kind != 'datetime' else 'dateTime'}"
                + (f" and {quoted}" if quoted else ""),
            )
        return lit.value

    # ---- replication --------------------------------------------------------------------------

    def _replication(self, request: Request, *, deleted: bool) -> Response:
        store = self._store(request.params["sobject"])
        try:
            start = parse_datetime_literal(request.query_value("start") or "")
            end = parse_datetime_literal(request.query_value("end") or "")
        except (ValueError, IndexError):
            raise _ApiError(400, "MALFORMED_QUERY", "start and end must be ISO-8601 datetimes, e.g. 2025-02-01T00:00:00+00:00") from None
        now = self.clock.now_ms()
        days = self.config.recycle_bin_days if deleted else 30
        earliest = now - int(days * DAY_MS)
        if start < earliest:
            raise _ApiError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {int(days)} days ago")
        if end <= start:
            raise _ApiError(400, "INVALID_REPLICATION_DATE", "endDate must be after startDate")
        latest = min(end, now) - min(end, now) % 60_000
        if deleted:
            found = [r for r in store.rows.values() if r.deleted_ms is not None and start <= r.deleted_ms < latest]
            body = {
                "deletedRecords": [{"id": r.id, "deletedDate": format_datetime(r.deleted_ms)} for r in sorted(found, key=lambda r: (r.deleted_ms, r.id))],
                "earliestDateAvailable": format_datetime(earliest - earliest % 60_000),
                "latestDateCovered": format_datetime(latest),
            }
        else:
            found = [r for r in store.rows.values() if r.deleted_ms is None and start <= r.modstamp_ms < latest]
            body = {"ids": [r.id for r in sorted(found, key=lambda r: (r.modstamp_ms, r.id))], "latestDateCovered": format_datetime(latest)}
        return Response.json(200, body)

    def _describe(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        return Response.json(200, {
            "name": store.sobject, "keyPrefix": KEY_PREFIX[store.sobject], "queryable": True, "createable": True, "updateable": True,
            "fields": [
                {"name": f.name, "type": f.kind, "length": f.length or 0, "label": f.label or f.name, "nillable": not f.required,
                 "createable": f.writable, "updateable": f.writable, "externalId": f.external_id, "unique": f.external_id,
                 "custom": f.name.endswith("__c")}
                for f in store.fields.values()
            ],
        })

    # ---- writes -------------------------------------------------------------------------------

    def _records_body(self, request: Request) -> tuple[list[dict[str, Any]], bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _ApiError(400, "JSON_PARSER_ERROR", "The request body must be an object with a 'records' array")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise _ApiError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this call")
        if not records:
            raise _ApiError(400, "INVALID_FIELD", "No records to process")
        return records, bool(body.get("allOrNone", False))

    def _typed_values(self, store: _Store, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Field values of one input record, type-checked as JSON deserialization does (400 on failure)."""
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "attributes":
                continue
            f = store.field(name)
            if f is None:
                raise _ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {store.sobject}")
            if value is None:
                out[f.name] = None
                continue
            if f.kind in ("currency", "percent"):
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from {type(value).__name__} value for {f.name}")
                try:
                    out[f.name] = format(float(value), ".2f") if f.kind == "currency" else str(float(value))
                except ValueError:
                    raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from VALUE_STRING value {value} for {f.name}") from None
            elif f.kind == "date":
                try:
                    out[f.name] = date.fromisoformat(str(value)[:10]).isoformat()
                except ValueError:
                    raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING value {value} or request may be missing a required field") from None
            elif f.kind == "boolean":
                out[f.name] = bool(value)
            else:
                if isinstance(value, (dict, list)):
                    raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {type(value).__name__} for {f.name}")
                out[f.name] = str(value)
        return out

    def _record_problems(self, store: _Store, values: Mapping[str, Any], *, creating: bool, rec: _Rec | None = None) -> list[dict[str, Any]]:
        problems = []
        locked = [n for n in values if n != "Id" and not store.fields[n.lower()].writable]
        if locked:
            problems.append(_record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of this field and verify "
                "that it is read/write for your profile or permission set.", locked,
            ))
        merged = dict(rec.values) if rec is not None else {}
        merged.update({k: v for k, v in values.items() if k != "Id"})
        missing = [f.name for f in store.fields.values() if f.required and not merged.get(f.name)]
        if missing:
            problems.append(_record_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing))
        for name, value in values.items():
            f = store.fields[name.lower()]
            if value is None or name == "Id":
                continue
            if f.kind == "email" and not _EMAIL_RE.match(str(value)):
                problems.append(_record_error("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]))
            if f.length and f.kind not in ("picklist",) and len(str(value)) > f.length:
                problems.append(_record_error("STRING_TOO_LONG", f"{f.label}: data value too large: {str(value)[:40]} (max length={f.length})", [f.name]))
            if f.name == "StageName" and self.config.restricted_stage_picklist and value not in STAGES:
                problems.append(_record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"Stage: bad value for restricted picklist field: {value}", [f.name]))
        key = values.get(store.ext_field)
        if key:
            owner = store.by_ext.get(str(key).lower())
            if owner is not None and (rec is None or owner != rec.id):
                problems.append(_record_error("DUPLICATE_VALUE", f"duplicate value found: {store.ext_field} duplicates value on record with id: {owner}", [store.ext_field]))
        email = values.get("Email")
        if self.config.block_duplicate_emails and store.sobject == "Contact" and email:
            twin = next((r for r in store.rows.values() if r.deleted_ms is None and (rec is None or r.id != rec.id) and (r.values.get("Email") or "").lower() == str(email).lower()), None)
            if twin is not None:
                problems.append(_record_error(
                    "DUPLICATES_DETECTED", "Use one of these records?", [],
                    duplicateResult={
                        "allowSave": False, "duplicateRule": "Standard_Contact_Duplicate_Rule", "duplicateRuleEntityType": "Contact",
                        "errorMessage": "You're creating a duplicate record. We recommend you use an existing record instead.",
                        "matchResults": [{"entityType": "Contact", "matchEngine": "ExactMatchEngine", "size": 1, "success": True,
                                          "matchRecords": [{"record": {"attributes": {"type": "Contact"}, "Id": twin.id}, "matchConfidence": 100.0}]}],
                    },
                ))
        return problems

    def _now_stamp(self) -> int:
        return self._stamp(self.clock.now_ms())

    def _apply(self, store: _Store, values: Mapping[str, Any], rec: _Rec | None, now: int) -> _Rec:
        if rec is None:
            rec = _Rec(store.new_id(), now, {k: v for k, v in values.items() if k != "Id"})
            rec.values.setdefault("OwnerId", USER_ID + "AAA")
            store.rows[rec.id] = rec
        else:
            store.unindex(rec)
            rec.values.update({k: v for k, v in values.items() if k != "Id"})
            rec.modified_ms = rec.modstamp_ms = max(now, rec.modstamp_ms)
        store.index(rec)
        return rec

    def _run_batch(self, items: list[tuple[_Store | None, dict[str, Any], _Rec | None, list[dict[str, Any]], str]], all_or_none: bool) -> list[dict[str, Any]]:
        """Apply validated items (store, values, existing record, problems, mode) and build results."""
        now = self._now_stamp()
        failed = any(problems for _, _, _, problems, _ in items)
        results = []
        for store, values, rec, problems, mode in items:
            if problems:
                results.append({"success": False, "errors": problems} | ({"id": rec.id} if rec is not None else {}))
            elif all_or_none and failed:
                results.append({"success": False, "errors": [_record_error(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header")]})
            else:
                assert store is not None
                written = self._apply(store, values, rec, now)
                result = {"id": written.id, "success": True, "errors": []}
                if mode == "upsert":
                    result["created"] = rec is None
                results.append(result)
        return results

    def _type_of(self, raw: Any) -> _Store:
        if not isinstance(raw, dict):
            raise _ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
        sobject = (raw.get("attributes") or {}).get("type") if isinstance(raw.get("attributes"), dict) else None
        if not sobject:
            raise _ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        try:
            return self._store(str(sobject))
        except _ApiError:
            raise _ApiError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.") from None

    def _collection_create(self, request: Request) -> Response:
        records, all_or_none = self._records_body(request)
        items = []
        for raw in records:
            store = self._type_of(raw)
            values = self._typed_values(store, raw)
            if values.get("Id"):
                items.append((store, values, None, [_record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])], "create"))
                continue
            items.append((store, values, None, self._record_problems(store, values, creating=True), "create"))
        return Response.json(200, self._run_batch(items, all_or_none))

    def _existing(self, store: _Store, record_id: Any) -> tuple[_Rec | None, list[dict[str, Any]]]:
        rid = str(record_id or "")
        rec = store.rows.get(rid) or next((r for r in store.rows.values() if len(rid) == 15 and r.id[:15] == rid), None)
        if rec is None or not rid.startswith(KEY_PREFIX[store.sobject]):
            return None, [_record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])]
        if rec.deleted_ms is not None:
            return None, [_record_error("ENTITY_IS_DELETED", "entity is deleted", [])]
        return rec, []

    def _collection_update(self, request: Request) -> Response:
        records, all_or_none = self._records_body(request)
        items = []
        seen: set[str] = set()
        for raw in records:
            store = self._type_of(raw)
            values = self._typed_values(store, raw)
            if not values.get("Id"):
                items.append((store, values, None, [_record_error("MISSING_ARGUMENT", "Id not specified in an update call", [])], "update"))
                continue
            if values["Id"] in seen:
                raise _ApiError(400, "INVALID_FIELD", f"Duplicate id in list: {values['Id']}")
            seen.add(values["Id"])
            rec, problems = self._existing(store, values["Id"])
            problems = problems or self._record_problems(store, values, creating=False, rec=rec)
            items.append((store, values, rec, problems, "update"))
        results = self._run_batch(items, all_or_none)
        for result, (_, values, _, problems, _) in zip(results, items):
            if not result["success"] and "id" not in result and values.get("Id"):
                result["id"] = values["Id"]
        return Response.json(200, results)

    def _collection_upsert(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        ext = store.field(request.params["ext"])
        if ext is None or not (ext.external_id or ext.name == "Id"):
            raise _ApiError(400, "INVALID_FIELD", f"Field name provided, {request.params['ext']} is not an External ID or indexed field for {store.sobject}")
        records, all_or_none = self._records_body(request)
        items = []
        for raw in records:
            if self._type_of(raw).sobject != store.sobject:
                raise _ApiError(400, "INVALID_TYPE", f"Record type doesn't match the URL: expected {store.sobject}")
            values = self._typed_values(store, raw)
            key = values.get(ext.name)
            if not key:
                items.append((store, values, None, [_record_error("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])], "upsert"))
                continue
            owner = store.by_ext.get(str(key).lower())
            rec = store.rows.get(owner) if owner else None
            if rec is not None and rec.deleted_ms is not None:
                rec = None
            items.append((store, values, rec, self._record_problems(store, values, creating=rec is None, rec=rec), "upsert"))
        return Response.json(200, self._run_batch(items, all_or_none))

    def _collection_delete(self, request: Request) -> Response:
        ids = request.query_list("ids")
        if len(ids) > COLLECTION_MAX:
            raise _ApiError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this call")
        now = self._now_stamp()
        results = []
        for rid in ids:
            store = next((s for s in self._stores.values() if rid.startswith(KEY_PREFIX[s.sobject])), None)
            rec, problems = self._existing(store, rid) if store else (None, [_record_error("MALFORMED_ID", f"malformed id {rid}", [])])
            if problems:
                results.append({"id": rid, "success": False, "errors": problems})
                continue
            assert rec is not None and store is not None
            self._delete_rec(store, rec, now)
            results.append({"id": rec.id, "success": True, "errors": []})
        return Response.json(200, results)

    def _collection_read(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        ids, names = request.query_list("ids"), request.query_list("fields")
        for name in names:
            if store.field(name) is None:
                raise _ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{store.sobject}'")
        out = []
        for rid in ids:
            rec = store.rows.get(rid)
            out.append(None if rec is None or rec.deleted_ms is not None else self._render(store, rec, ["Id", *names], request.params["version"]))
        return Response.json(200, out)

    def _delete_rec(self, store: _Store, rec: _Rec, now: int) -> None:
        rec.deleted_ms = now
        rec.modstamp_ms = max(now, rec.modstamp_ms)
        store.unindex(rec)

    # ---- single records ---------------------------------------------------------------------

    def _get_one(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        rec, problems = self._existing(store, request.params["id"])
        if rec is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        names = request.query_list("fields") or [f.name for f in store.fields.values()]
        for name in names:
            if store.field(name) is None:
                raise _ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{store.sobject}'")
        return Response.json(200, self._render(store, rec, names, request.params["version"]))

    def _create_one(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        raw = request.json()
        if not isinstance(raw, dict):
            raise _ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        values = self._typed_values(store, raw)
        problems = self._record_problems(store, values, creating=True)
        if problems:
            return Response.json(400, [{"message": p["message"], "errorCode": p["statusCode"], "fields": p["fields"]} for p in problems])
        rec = self._apply(store, values, None, self._now_stamp())
        return Response.json(201, {"id": rec.id, "success": True, "errors": []})

    def _update_one(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        rec, problems = self._existing(store, request.params["id"])
        if rec is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        raw = request.json()
        if not isinstance(raw, dict):
            raise _ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        values = self._typed_values(store, raw)
        problems = self._record_problems(store, values, creating=False, rec=rec)
        if problems:
            return Response.json(400, [{"message": p["message"], "errorCode": p["statusCode"], "fields": p["fields"]} for p in problems])
        self._apply(store, values, rec, self._now_stamp())
        return Response.empty(204)

    def _delete_one(self, request: Request) -> Response:
        store = self._store(request.params["sobject"])
        rec, problems = self._existing(store, request.params["id"])
        if rec is None:
            code = problems[0]["statusCode"] if problems else "NOT_FOUND"
            raise _ApiError(404, "ENTITY_IS_DELETED" if code == "ENTITY_IS_DELETED" else "NOT_FOUND", "The requested resource does not exist")
        self._delete_rec(store, rec, self._now_stamp())
        return Response.empty(204)

    # ---- Python-side API for tests --------------------------------------------------------------

    def _entity_store(self, entity: str) -> _Store:
        sobject = SOBJECT_OF.get(entity, entity)
        if sobject not in self._stores:
            raise ValueError(f"unknown entity {entity!r}; expected contacts, companies or deals")
        return self._stores[sobject]

    def records(self, entity: str, deleted: bool = False) -> dict[str, dict[str, Any]]:
        """id -> record with every field (API-shaped), for live (or recycle-bin) records."""
        store = self._entity_store(entity)
        names = [f.name for f in store.fields.values()]
        with self._lock:
            return {
                r.id: self._render(store, r, names, "66.0")
                for r in store.rows.values() if (r.deleted_ms is not None) == deleted
            }

    def count(self, entity: str, deleted: bool = False) -> int:
        store = self._entity_store(entity)
        with self._lock:
            return sum(1 for r in store.rows.values() if (r.deleted_ms is not None) == deleted)

    def _pick(self, store: _Store, n: int | None, ids: Iterable[str] | None) -> list[_Rec]:
        if ids is not None:
            rows = []
            for rid in ids:
                rec = store.rows.get(str(rid))
                if rec is None or rec.deleted_ms is not None:
                    raise KeyError(f"{store.sobject} {rid} does not exist or is deleted")
                rows.append(rec)
            return rows
        live = sorted(r.id for r in store.rows.values() if r.deleted_ms is None)
        return [store.rows[i] for i in self._rng.sample(live, min(1 if n is None else n, len(live)))]

    def modify(self, entity: str, n: int | None = None, ids: Iterable[str] | None = None) -> list[str]:
        """Change a few fields of ``n`` seeded-random live records (or of ``ids``), stamped now.

        With whole-second timestamps, records changed in the same second share their stamp.
        """
        store = self._entity_store(entity)
        with self._lock:
            rows = self._pick(store, n, ids)
            now = self._now_stamp()
            data = self._data[store.sobject]
            for rec in rows:
                if store.sobject == "Contact":
                    changes = {"Title": data.job_title() or "Consultora", "Phone": data.phone()}
                elif store.sobject == "Account":
                    changes = {"Industry": data.pick(INDUSTRIES), "Phone": data.phone()}
                else:
                    changes = {"StageName": data.pick(STAGES), "Amount": data.amount()}
                self._apply(store, changes, rec, now)
            return [r.id for r in rows]

    def set_fields(self, entity: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Write ``values`` to one record as a user would (no validation), stamped now."""
        store = self._entity_store(entity)
        with self._lock:
            rec = self._pick(store, None, [record_id])[0]
            self._apply(store, {store.fields[k.lower()].name: v for k, v in values.items()}, rec, self._now_stamp())

    def touch(self, entity: str, n: int | None = None, ids: Iterable[str] | None = None) -> list[str]:
        """A system change: ``SystemModstamp`` moves, ``LastModifiedDate`` and the values do not."""
        store = self._entity_store(entity)
        with self._lock:
            rows = self._pick(store, n, ids)
            now = self._now_stamp()
            for rec in rows:
                rec.modstamp_ms = max(now, rec.modstamp_ms)
            return [r.id for r in rows]

    def create(self, entity: str, n: int = 1) -> list[str]:
        """Create ``n`` generated records stamped with the simulated now; returns their ids."""
        store = self._entity_store(entity)
        with self._lock:
            now = self._now_stamp()
            data = self._data[store.sobject]
            out = []
            for _ in range(n):
                rec = self._apply(store, self._seed_values(store.sobject, data, data.rng), None, now)
                out.append(rec.id)
            return out

    def delete(self, entity: str, target: int | Iterable[str]) -> list[str]:
        """Move ``target`` ids (or ``target`` seeded-random live records) to the recycle bin."""
        store = self._entity_store(entity)
        with self._lock:
            rows = self._pick(store, target, None) if isinstance(target, int) else self._pick(store, None, target)
            now = self._now_stamp()
            for rec in rows:
                self._delete_rec(store, rec, now)
            return [r.id for r in rows]

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.apply_mutation(spec, check_entity=self._entity_store)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            counts = {
                ENTITY_OF[s]: {"live": sum(1 for r in st.rows.values() if r.deleted_ms is None), "deleted": sum(1 for r in st.rows.values() if r.deleted_ms is not None)}
                for s, st in self._stores.items()
            }
        return {"objects": counts, "api_usage": self.api_usage(), "open_cursors": len(self._cursors)}

    # ---- command line ---------------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--contacts", type=int, default=1000)
        parser.add_argument("--companies", type=int, default=100)
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--history-days", type=float, default=30.0)
        parser.add_argument("--reference-time", default=None, help="ISO-8601 instant the seeded data ends at")
        parser.add_argument("--daily-api-limit", type=int, default=100_000, help="rolling 24-hour API allocation; 0 disables it")
        parser.add_argument("--session-lifetime", type=float, default=7200.0, help="seconds an access token lives")
        parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
        parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
        parser.add_argument("--refresh-token", action="append", help="accepted refresh token (repeatable)")
        parser.add_argument("--block-duplicate-emails", action="store_true")
        parser.add_argument("--single-currency", action="store_true", help="no CurrencyIsoCode field")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> SalesforceSimulator:
        config = SalesforceSimConfig(
            seed=args.seed,
            contacts=args.contacts,
            companies=args.companies,
            deals=args.deals,
            history_days=args.history_days,
            reference_time=parse_datetime(args.reference_time) if args.reference_time else None,
            tokens=tuple(args.token or ()),
            client_id=args.client_id,
            client_secret=args.client_secret,
            refresh_tokens=tuple(args.refresh_token) if args.refresh_token else (DEFAULT_REFRESH_TOKEN,),
            daily_api_limit=args.daily_api_limit or None,
            session_lifetime_s=args.session_lifetime,
            block_duplicate_emails=args.block_duplicate_emails,
            multi_currency=not args.single_currency,
            faults=args.faults,
        )
        return cls(config, host=args.host, port=args.port)
