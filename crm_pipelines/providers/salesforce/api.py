"""Salesforce REST API: endpoints, limits, error handling, OAuth session and the HTTP client.

Facts (../shared/PROVIDERS.md §2): OAuth 2.0 token endpoint ``POST {login_url}/services/oauth2/token``
(refresh-token grant) answering ``{access_token, instance_url, id, issued_at, token_type, ...}``;
data calls go to ``{instance_url}/services/data/vNN.0/...`` with ``Authorization: Bearer``.
An expired session answers 401 ``[{"errorCode":"INVALID_SESSION_ID",...}]``: refresh and retry
once. Errors are JSON arrays ``[{"message","errorCode","fields"}]``.

SOQL reads (``/query``, ``/queryAll``) return ``{totalSize, done, nextRecordsUrl, records}``;
the page size is a hint given with ``Sforce-Query-Options: batchSize=N`` (200..2,000). sObject
Collections write at most 200 records per call and answer per record, in request order.

There is no per-second limit: an org has a rolling 24-hour allocation of API requests, reported
on every response as ``Sforce-Limit-Info: api-usage=N/M``. Past it, 403
``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." (no Retry-After). The same error code
with a ``ConcurrentRequests`` message means too many long-running requests at once and is worth
retrying. Other users of the org share the allocation, so the client keeps to a configurable
share of it (:class:`DailyAllocationGuard`) and stops with :class:`QuotaExhausted` before
spending more.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from crm_pipelines.core.errors import ConfigurationError, ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, error_message, parse_retry_after, safe_json, tls_context
from crm_pipelines.core.redact import register

log = logging.getLogger(__name__)

PROVIDER = "salesforce"
LOGIN_URL = "https://login.salesforce.com"
API_VERSION = "v66.0"
TOKEN_PATH = "/services/oauth2/token"
QUERY_BATCH_SIZE = 2000
QUERY_BATCH_MIN = 200
COLLECTION_MAX = 200
#: SOQL travels in the URL of a GET; Salesforce refuses request lines much longer than 16 KB,
#: so IN lists are cut to keep the encoded query well below that.
MAX_ENCODED_SOQL = 12_000
LIMIT_HEADER = "Sforce-Limit-Info"
DEFAULT_MAX_SHARE = 0.9
DEFAULT_SLOWDOWN_FROM = 0.8
DEFAULT_MAX_SLOWDOWN_S = 2.0

#: Canonical entity -> sObject.
SOBJECTS: dict[str, str] = {"contacts": "Contact", "companies": "Account", "deals": "Opportunity"}


class SessionExpired(ProviderError):
    """401 INVALID_SESSION_ID: the access token is no longer valid (refresh and retry once)."""


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """``api-usage=18/15000`` (possibly followed by ``; per-app-api-usage=...``) -> (18, 15000)."""
    if not value:
        return None
    for part in value.split(";"):
        name, _, figures = part.strip().partition("=")
        if name.strip().lower() != "api-usage":
            continue
        used, _, allowed = figures.partition("/")
        try:
            return int(used), int(allowed)
        except ValueError:
            return None
    return None


class DailyAllocationGuard:
    """Keeps this client's calls within a share of the org's rolling 24-hour API allocation.

    Every response reports ``api-usage=N/M``. Before each send, with ``N`` the latest usage seen
    (plus the calls sent since), the guard:

    * lets the call go while ``N`` is below ``slowdown_from`` x M;
    * between ``slowdown_from`` and ``max_share``, waits before the call, from nothing up to
      ``max_slowdown_s`` as ``N`` approaches the share, leaving the org room to recover;
    * at ``max_share`` x M raises :class:`QuotaExhausted` with the figures, before the call.

    Before the first response it knows nothing and lets calls through. A reading older than
    ``stale_after_s`` (or forgotten when a session opens) no longer blocks: usage only falls as the
    24-hour window rolls on, so the next call is let through to read it again; a stopped sync thus
    costs one call per attempt, never a lock-out until the process restarts. ``acquire``/
    ``observe``/``saturate`` match the limiter interface that :class:`ApiClient` drives.
    """

    def __init__(
        self,
        *,
        max_share: float = DEFAULT_MAX_SHARE,
        slowdown_from: float = DEFAULT_SLOWDOWN_FROM,
        max_slowdown_s: float = DEFAULT_MAX_SLOWDOWN_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stale_after_s: float = 60.0,
        name: str = "salesforce daily allocation",
    ) -> None:
        if not 0 < max_share <= 1:
            raise ConfigurationError(f"max_share_of_daily_allocation must be in (0, 1], not {max_share}")
        if not 0 <= slowdown_from <= max_share:
            raise ConfigurationError(f"slow_down_from_share must be between 0 and the maximum share ({max_share}), not {slowdown_from}")
        self.name = name
        self.max_share = max_share
        self.slowdown_from = slowdown_from
        self.max_slowdown_s = max_slowdown_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self.stale_after_s = stale_after_s
        self.used: int | None = None
        self.allowed: int | None = None
        self._observed_at = 0.0
        self._blocked_until = 0.0
        self.waited_s = 0.0

    def configure(self, *, max_share: float, slowdown_from: float, max_slowdown_s: float) -> None:
        with self._lock:
            self.max_share, self.slowdown_from, self.max_slowdown_s = max_share, slowdown_from, max_slowdown_s

    @property
    def budget(self) -> int | None:
        """Calls this client may reach (usage figure), or None before the allocation is known."""
        return None if self.allowed is None else math.floor(self.allowed * self.max_share)

    def forget(self) -> None:
        """Drop the last reading (a new session reads the usage again with its first call)."""
        with self._lock:
            self.used = None

    def _delay(self) -> float:
        if self.used is None or self.allowed is None:
            return 0.0
        if self._clock() - self._observed_at > self.stale_after_s:
            self.used = None
            return 0.0
        budget = math.floor(self.allowed * self.max_share)
        if self.used + 1 > budget:
            raise QuotaExhausted(
                PROVIDER,
                f"the org has used {self.used:,} of its {self.allowed:,} daily API requests; this sync may use up to "
                f"{self.max_share:.0%} ({budget:,}) and stops here so other users keep the rest. "
                "It resumes on a later run, as the rolling 24-hour usage goes down.",
                category="DAILY_ALLOCATION_SHARE",
            )
        start = self.allowed * self.slowdown_from
        if self.used < start or budget <= start:
            return 0.0
        return self.max_slowdown_s * min((self.used - start) / (budget - start), 1.0)

    def acquire(self) -> float:
        """Wait if the usage is near the share, count the call; raise QuotaExhausted at the share."""
        with self._lock:
            delay = max(self._delay(), self._blocked_until - self._clock())
            if self.used is not None:
                self.used += 1
        if delay > 0:
            self._sleep(delay)
            with self._lock:
                self.waited_s += delay
        return max(delay, 0.0)

    def observe(self, *, used: int, allowed: int) -> None:
        with self._lock:
            self.used, self.allowed, self._observed_at = used, allowed, self._clock()

    def saturate(self, seconds: float | None = None) -> float:
        """After a 429: hold further sends for ``seconds`` (default 5 s)."""
        wait = 5.0 if seconds is None else seconds
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + wait)
        return wait

    def remaining(self) -> int | None:
        with self._lock:
            budget = self.budget
            return None if budget is None or self.used is None else max(budget - self.used, 0)


_GUARDS: dict[tuple, DailyAllocationGuard] = {}
_GUARDS_LOCK = threading.Lock()


def shared_allocation_guard(key: tuple, **settings: Any) -> DailyAllocationGuard:
    """One guard per org for the whole process, so every client of the org counts the same usage."""
    with _GUARDS_LOCK:
        guard = _GUARDS.get(key)
        if guard is None:
            guard = _GUARDS[key] = DailyAllocationGuard(**settings)
        else:
            guard.configure(**{k: settings[k] for k in ("max_share", "slowdown_from", "max_slowdown_s") if k in settings})
        return guard


class SalesforcePolicy(ResponsePolicy):
    """Reads ``Sforce-Limit-Info`` and Salesforce's error arrays."""

    provider = PROVIDER

    def observe(self, response: httpx.Response, limiter: Any) -> None:
        usage = parse_limit_info(response.headers.get(LIMIT_HEADER))
        if usage is not None and isinstance(limiter, DailyAllocationGuard):
            limiter.observe(used=usage[0], allowed=usage[1])

    def error_for(self, response: httpx.Response, request_line: str, limiter: Any) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        message = error_message(body) or response.reason_phrase or "request failed"
        code = error_code(body)
        kw = {"status": status, "category": code, "request": request_line, "body": body}
        if status == 401 and code in (None, "INVALID_SESSION_ID"):
            return SessionExpired(PROVIDER, message, **kw)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            if "concurrent" in message.lower():
                return RetryableError(PROVIDER, message, retry_after=2.0, **kw)
            usage = parse_limit_info(response.headers.get(LIMIT_HEADER))
            figures = f" ({usage[0]:,} of {usage[1]:,} requests used)" if usage else ""
            return QuotaExhausted(
                PROVIDER,
                f"{message} The org's rolling 24-hour API allocation is spent{figures}; the sync stops here "
                "and resumes on a later run.",
                **kw,
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = limiter.saturate(retry_after) if limiter is not None else retry_after
            return RetryableError(PROVIDER, message, retry_after=wait, rate_limited=True, **kw)
        if status >= 500 or status in (408, 420):
            return RetryableError(PROVIDER, message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kw)
        return ProviderError(PROVIDER, message, **kw)


def error_code(body: Any) -> str | None:
    """``errorCode`` of a Salesforce error array (or ``error`` of an OAuth error object)."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        value = body[0].get("errorCode")
        return str(value) if value else None
    if isinstance(body, Mapping):
        value = body.get("errorCode") or body.get("error")
        return str(value) if value else None
    return None


def soql_string(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def encoded_length(text: str) -> int:
    return len(quote(text, safe=""))


class SalesforceClient:
    """Calls to one org: OAuth session, SOQL paging and sObject Collections, within the allocation share."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        login_url: str = LOGIN_URL,
        api_version: str = API_VERSION,
        max_share_of_daily_allocation: float = DEFAULT_MAX_SHARE,
        slow_down_from_share: float = DEFAULT_SLOWDOWN_FROM,
        max_slowdown_s: float = DEFAULT_MAX_SLOWDOWN_S,
        query_batch_size: int = QUERY_BATCH_SIZE,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        missing = [name for name, value in (("client_id", client_id), ("client_secret", client_secret), ("refresh_token", refresh_token)) if not value]
        if missing:
            raise ConfigurationError(
                "Salesforce needs " + ", ".join(missing) + " (set SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET and SALESFORCE_REFRESH_TOKEN)"
            )
        version = api_version if api_version.startswith("v") else f"v{api_version}"
        try:
            float(version[1:])
        except ValueError:
            raise ConfigurationError(f"api_version must look like v66.0, not {api_version!r}") from None
        if not QUERY_BATCH_MIN <= query_batch_size <= QUERY_BATCH_SIZE:
            raise ConfigurationError(f"query_batch_size must be between {QUERY_BATCH_MIN} and {QUERY_BATCH_SIZE}")
        self.api_version = version
        self.login_url = login_url.rstrip("/")
        self.query_batch_size = query_batch_size
        self._credentials = (client_id, client_secret, refresh_token)
        self._guard_settings = {"max_share": max_share_of_daily_allocation, "slowdown_from": slow_down_from_share, "max_slowdown_s": max_slowdown_s}
        # Validate the share settings at once (clear error before any call).
        DailyAllocationGuard(**self._guard_settings)
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._transport = transport
        self.stats = stats or CallStats()
        self.instance_url: str | None = None
        self.org_id: str | None = None
        self.guard: DailyAllocationGuard | None = None
        self._api: ApiClient | None = None
        self._session_lock = threading.Lock()
        self.refreshes = 0

    # ---------------------------------------------------------------- session

    @property
    def data_path(self) -> str:
        return f"/services/data/{self.api_version}"

    def _fetch_token(self) -> dict[str, Any]:
        client_id, client_secret, refresh_token = self._credentials
        register(client_id, client_secret, refresh_token)
        form = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        request_line = f"POST {TOKEN_PATH}"
        last: Exception | None = None
        with httpx.Client(timeout=self._timeout_s, transport=self._transport, verify=tls_context()) as http:
            for attempt in range(4):
                try:
                    response = http.post(self.login_url + TOKEN_PATH, data=form, headers={"Accept": "application/json"})
                except httpx.TransportError as exc:
                    last = RetryableError(PROVIDER, f"token endpoint unreachable ({type(exc).__name__})", request=request_line)
                    time.sleep(min(0.5 * 2**attempt, 5))
                    continue
                if response.status_code >= 500 or response.status_code == 429:
                    last = RetryableError(PROVIDER, f"token endpoint answered HTTP {response.status_code}", status=response.status_code, request=request_line)
                    time.sleep(min(0.5 * 2**attempt, 5))
                    continue
                body = safe_json(response)
                if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token") or not body.get("instance_url"):
                    code = error_code(body) or f"HTTP_{response.status_code}"
                    detail = body.get("error_description") if isinstance(body, dict) else None
                    raise ProviderError(
                        PROVIDER,
                        f"could not open a session with the refresh token: {code}"
                        + (f" ({detail})" if detail else "")
                        + ". Check SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, SALESFORCE_REFRESH_TOKEN and SALESFORCE_LOGIN_URL.",
                        status=response.status_code, category=code, request=request_line,
                    )
                return body
        assert last is not None
        raise last

    def _open_session(self) -> ApiClient:
        token = self._fetch_token()
        instance_url = str(token["instance_url"]).rstrip("/")
        identity = str(token.get("id") or "")
        parts = identity.rstrip("/").split("/")
        org_id = parts[-2] if len(parts) >= 2 and parts[-2].startswith("00D") else hashlib.sha256(instance_url.encode()).hexdigest()[:16]
        self.instance_url, self.org_id = instance_url, org_id
        self.guard = shared_allocation_guard((PROVIDER, instance_url, org_id, "daily-allocation"), **self._guard_settings)
        self.guard.forget()
        if self._api is not None:
            self._api.close()
        self._api = ApiClient(
            provider=PROVIDER,
            base_url=instance_url,
            # The batch-size hint only matters to queries; Salesforce ignores it elsewhere.
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "Accept": "application/json",
                "Sforce-Query-Options": f"batchSize={self.query_batch_size}",
            },
            policy=SalesforcePolicy(),
            limiters={"default": self.guard},  # type: ignore[dict-item]
            timeout_s=self._timeout_s,
            max_attempts=self._max_attempts,
            stats=self.stats,
            transport=self._transport,
        )
        return self._api

    def _session(self) -> ApiClient:
        with self._session_lock:
            return self._api or self._open_session()

    def _refresh(self, expired: ApiClient) -> ApiClient:
        with self._session_lock:
            if self._api is not expired and self._api is not None:
                return self._api  # another thread refreshed already
            self.refreshes += 1
            log.info("salesforce: session expired; refreshing the access token")
            return self._open_session()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- requests

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None, kind: str = "call", **body: Any) -> Any:
        """One call on the instance; an expired session is refreshed once and the call repeated.

        ``body`` passes ``content``/``content_type``/``raw`` through (Bulk API 2.0's CSV uploads and pages).
        """
        api = self._session()
        try:
            return api.request(method, path, params=params, json=json, kind=kind, **body)
        except SessionExpired:
            api = self._refresh(api)
            try:
                return api.request(method, path, params=params, json=json, kind=kind, **body)
            except SessionExpired as exc:
                raise ProviderError(PROVIDER, f"the session was refused again right after a refresh ({exc.provider_message})", status=401, category="INVALID_SESSION_ID", request=exc.request) from None

    def query(self, soql: str, *, all_rows: bool = False, kind: str = "query") -> dict[str, Any]:
        """First page of a SOQL query (``queryAll`` includes deleted rows)."""
        resource = "queryAll" if all_rows else "query"
        return self.request("GET", f"{self.data_path}/{resource}", params={"q": soql}, kind=kind) or {}

    def query_more(self, next_records_url: str, *, kind: str = "query") -> dict[str, Any]:
        return self.request("GET", next_records_url, kind=kind) or {}

    def iter_query(self, soql: str, *, all_rows: bool = False, kind: str = "query") -> Iterator[list[dict[str, Any]]]:
        """Every page of a query, following ``nextRecordsUrl`` until ``done``."""
        data = self.query(soql, all_rows=all_rows, kind=kind)
        while True:
            yield data.get("records") or []
            next_url = data.get("nextRecordsUrl")
            if data.get("done", True) or not next_url:
                return
            data = self.query_more(next_url, kind=kind)

    def count(self, sobject: str, where: str = "") -> int:
        data = self.query(f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else ""), kind="count")
        return int(data.get("totalSize") or 0)

    def limits(self) -> dict[str, Any]:
        return self.request("GET", f"{self.data_path}/limits", kind="limits") or {}

    def collection(self, method: str, path_suffix: str, records: list[dict[str, Any]], *, all_or_none: bool = False) -> Any:
        if len(records) > COLLECTION_MAX:
            raise ValueError(f"sObject Collections take at most {COLLECTION_MAX} records per call")
        return self.request(method, f"{self.data_path}/composite/sobjects{path_suffix}", json={"allOrNone": all_or_none, "records": records}, kind="write")


def custom_fields(client: SalesforceClient, entity: str) -> list:
    """The org's custom fields of ``entity``'s sObject (``GET sobjects/{X}/describe``, ``custom: true``)."""
    from crm_pipelines.mapping.discovery import ProviderField

    data = client.request("GET", f"{client.data_path}/sobjects/{SOBJECTS[entity]}/describe", kind="describe") or {}
    return [
        ProviderField(str(f["name"]), str(f.get("label") or f["name"]), str(f.get("type") or "string"),
                      tuple(str(v.get("value")) for v in f.get("picklistValues") or [] if isinstance(v, dict)))
        for f in data.get("fields") or [] if isinstance(f, dict) and f.get("name") and f.get("custom")
    ]
