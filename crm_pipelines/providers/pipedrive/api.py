"""Pipedrive API v2: endpoints, token costs, limits, error handling and the HTTP client.

Facts (../shared/PROVIDERS.md §3): ``x-api-token`` header; ``https://{company}.pipedrive.com``
(or ``https://api.pipedrive.com``) with ``/api/v2/{persons,deals,organizations}`` lists of up to
500 records, an opaque ``cursor`` answered by ``additional_data.next_cursor`` (null on the last
page), ``updated_since`` (inclusive) / ``updated_until`` (exclusive) as RFC3339 without fractional
seconds, ``sort_by``/``sort_direction``, an ``ids`` filter (up to 100), deals ``status=deleted``.
No bulk create/update: writes are one record per call.

Limits: a daily token budget per company (30,000 x plan multiplier x seats), each endpoint costing
tokens (v2 get 1, list 10, create/update 5; search 40; v1 list 20), plus a burst limit per API
token in a rolling 2-second window (requests per the official page; some summaries count tokens —
``burst_unit`` chooses) and 10 search requests per 2 s. Responses carry ``x-ratelimit-limit``,
``x-ratelimit-remaining``, ``x-ratelimit-reset`` (seconds until the window has room) and, observed
but undocumented, ``x-daily-ratelimit-token-limit`` / ``-remaining``. Over the limit: 429 with a
``success:false`` body; ``Retry-After`` is not documented. Hammering after 429s can end in a
Cloudflare 403 HTML page.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, error_message, parse_retry_after, safe_json
from crm_pipelines.core.ratelimit import SlidingWindowLimiter, shared_limiter

PROVIDER = "pipedrive"
#: The SDK's default host; a company's own ``https://{company}.pipedrive.com`` works the same.
BASE_URL = "https://api.pipedrive.com"
LIST_PAGE_MAX = 500
IDS_FILTER_MAX = 100
SEARCH_PAGE_MAX = 100
BURST_WINDOW_S = 2.0
SEARCH_BURST = 10
BURST_UNITS = ("requests", "tokens")

#: Burst limit per API token per 2 s, by plan (2025 names; older Essential/Advanced/Professional/
#: Enterprise: 20/40/80/120), and the daily-budget multiplier of each plan.
PLANS: dict[str, tuple[int, int]] = {"lite": (20, 1), "growth": (40, 2), "premium": (100, 5), "ultimate": (120, 7)}
BASE_DAILY_TOKENS = 30_000

#: Token cost of each kind of call (``x-token-cost`` in Pipedrive's OpenAPI; secondary values).
TOKEN_COSTS: dict[str, int] = {"get": 1, "list": 10, "write": 5, "delete": 3, "search": 40, "fields": 20}


@dataclass(frozen=True)
class EntitySpec:
    """A Pipedrive object type as this project reads and writes it."""

    path: str  # /api/v2/<path>
    item: str  # singular name in webhooks and search results
    fields_path: str  # /v1/<fields_path> lists its custom fields


ENTITY_SPECS: dict[str, EntitySpec] = {
    "contacts": EntitySpec("persons", "person", "personFields"),
    "companies": EntitySpec("organizations", "organization", "organizationFields"),
    "deals": EntitySpec("deals", "deal", "dealFields"),
}


def format_rfc3339(moment: datetime) -> str:
    """``2025-01-01T10:20:00Z``: UTC, whole seconds (fractions are rejected by the API)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenBudget:
    """What the daily token headers last said for one account (shared by its clients)."""

    #: An answer older than this no longer says anything (the budget may have been reset or topped up).
    FRESH_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.limit: int | None = None
        self.remaining: int | None = None
        self._seen_at = 0.0

    def update(self, limit: int | None, remaining: int | None) -> None:
        with self._lock:
            if limit is not None:
                self.limit = limit
            if remaining is not None:
                self.remaining = remaining
                self._seen_at = self._clock()

    def spend(self, cost: int) -> None:
        """Stop before a call the budget cannot pay for, as the last (recent) answer told."""
        with self._lock:
            if self.remaining is None or self._clock() - self._seen_at > self.FRESH_S:
                return
            if self.remaining < cost:
                raise QuotaExhausted(
                    PROVIDER,
                    f"the company's daily API token budget is spent ({self.remaining} of {self.limit or 'unknown'} tokens left, "
                    f"this call costs {cost}); the sync stops here and resumes after the daily reset",
                    status=429, category="DAILY_BUDGET",
                )
            self.remaining -= cost


class CostGate:
    """One kind of call: its token cost against the daily budget and the limiters it passes.

    ``ApiClient`` sees it as a limiter: ``acquire`` checks the budget then waits for the burst
    window (weighted by the token cost when the burst is counted in tokens) and, for search, for
    the search window too.
    """

    def __init__(self, cost: int, burst: SlidingWindowLimiter, budget: TokenBudget, *, burst_unit: str, extra: SlidingWindowLimiter | None = None) -> None:
        self.cost = cost
        self.burst = burst
        self.budget = budget
        self.weight = cost if burst_unit == "tokens" else 1
        self.extra = extra

    def acquire(self) -> float:
        self.budget.spend(self.cost)
        waited = self.extra.acquire() if self.extra is not None else 0.0
        return waited + self.burst.acquire(self.weight)

    def saturate(self, seconds: float | None = None) -> float:
        waited = self.burst.saturate(seconds)
        if self.extra is not None:
            self.extra.saturate(seconds)
        return waited


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


class PipedrivePolicy(ResponsePolicy):
    """Reads Pipedrive's burst and daily-token headers, its error envelope and its 429s."""

    provider = PROVIDER

    def observe(self, response: httpx.Response, limiter: Any) -> None:
        if not isinstance(limiter, CostGate):
            return
        headers = response.headers
        daily_remaining = _int_header(headers, "x-daily-ratelimit-token-remaining")
        limiter.budget.update(_int_header(headers, "x-daily-ratelimit-token-limit"), daily_remaining)
        remaining = _int_header(headers, "x-ratelimit-remaining")
        if remaining is None:
            return
        if limiter.extra is not None and response.status_code != 429:
            # Search answers report the search window; the burst window is not described.
            limiter.extra.observe(remaining=remaining, max_calls=_int_header(headers, "x-ratelimit-limit"))
            return
        limiter.burst.observe(remaining=remaining, max_calls=_int_header(headers, "x-ratelimit-limit"))

    def error_for(self, response: httpx.Response, request_line: str, limiter: Any) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        message = error_message(body) or response.reason_phrase or "request failed"
        if isinstance(body, dict) and isinstance(body.get("error_info"), str) and body["error_info"] not in message:
            message = f"{message} ({body['error_info']})"
        if status == 429:
            headers = response.headers
            daily_remaining = _int_header(headers, "x-daily-ratelimit-token-remaining")
            cost = limiter.cost if isinstance(limiter, CostGate) else 1
            text = message.lower()
            if (daily_remaining is not None and daily_remaining < cost) or "daily" in text or "budget" in text:
                return QuotaExhausted(
                    PROVIDER,
                    f"{message}. The company's daily API token budget "
                    f"({_int_header(headers, 'x-daily-ratelimit-token-limit') or 'unknown'} tokens) is spent; the sync stops here "
                    "and resumes after the daily reset (midnight in the company's time zone).",
                    status=status, category="DAILY_BUDGET", request=request_line, body=body,
                )
            wait = parse_retry_after(headers.get("Retry-After"))
            if wait is None:
                wait = parse_retry_after(headers.get("x-ratelimit-reset"))
            if wait is None:
                wait = BURST_WINDOW_S
            if limiter is not None:
                limiter.saturate(wait)
            return RetryableError(PROVIDER, message, status=status, category="RATE_LIMIT", request=request_line, body=body, retry_after=wait, rate_limited=True)
        if status == 403 and "html" in response.headers.get("content-type", "").lower():
            # The edge blocks a client that kept sending after 429s: back off for a while.
            return RetryableError(PROVIDER, "blocked by the API edge (HTML 403) after too many requests", status=status, category="EDGE_BLOCK", request=request_line, retry_after=30.0)
        if status >= 500 or status in (408, 423):
            return RetryableError(PROVIDER, message, status=status, request=request_line, body=body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        return ProviderError(PROVIDER, message, status=status, request=request_line, body=body)


class PipedriveClient:
    """Pipedrive API v2 calls used by the sync, paced by the burst, search and token limits."""

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = BASE_URL,
        burst_limit: int = PLANS["lite"][0],
        burst_unit: str = "requests",
        search_burst: int = SEARCH_BURST,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        account: str = "",
    ) -> None:
        if not api_token:
            raise ValueError("Pipedrive needs an API token (set PIPEDRIVE_API_TOKEN)")
        if burst_unit not in BURST_UNITS:
            raise ValueError(f"burst_unit must be one of {BURST_UNITS}, not {burst_unit!r}")
        # The burst limit is per API token; the token budget per company (here: per token and host).
        # The provider account the limits belong to: declared by the integration, else told apart by token.
        account = account or hashlib.sha256(api_token.encode()).hexdigest()[:16]
        burst = shared_limiter((PROVIDER, base_url, account, "burst"), burst_limit, BURST_WINDOW_S, name="pipedrive burst")
        search = shared_limiter((PROVIDER, base_url, account, "search"), search_burst, BURST_WINDOW_S, name="pipedrive search")
        # Each client learns the budget from its own answers: a new run always asks the API again
        # (the budget may have been reset at midnight or topped up since the last run stopped).
        budget = TokenBudget()
        self.budget = budget
        self.burst_unit = burst_unit
        gates = {kind: CostGate(cost, burst, budget, burst_unit=burst_unit, extra=search if kind == "search" else None) for kind, cost in TOKEN_COSTS.items()}
        self.api = ApiClient(
            provider=PROVIDER,
            base_url=base_url,
            headers={"x-api-token": api_token, "Accept": "application/json"},
            policy=PipedrivePolicy(),
            limiters=gates,  # type: ignore[arg-type]
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            stats=stats,
            transport=transport,
        )
        self._field_keys: dict[str, dict[str, str]] = {}
        self._fields_lock = threading.Lock()

    @property
    def stats(self) -> CallStats:
        return self.api.stats

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> PipedriveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def list_page(self, entity: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.api.request("GET", f"/api/v2/{ENTITY_SPECS[entity].path}", params=params, limiter="list", kind="list") or {}

    def iter_list(self, entity: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every record the filters select, one page at a time (memory stays flat)."""
        for results, _ in self.iter_list_after(entity, params):
            yield results

    def iter_list_after(self, entity: str, params: dict[str, Any], cursor: str | None = None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """``(records, cursor of the next page)`` from ``cursor`` on (the cursor is None on the last page)."""
        query = dict(params)
        query["limit"] = min(int(query.get("limit") or LIST_PAGE_MAX), LIST_PAGE_MAX)
        if cursor:
            query["cursor"] = cursor
        while True:
            data = self.list_page(entity, query)
            cursor = (data.get("additional_data") or {}).get("next_cursor")
            yield data.get("data") or [], cursor or None
            if not cursor:
                return
            query["cursor"] = cursor

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """One record, or None when Pipedrive no longer knows it (404/410)."""
        try:
            data = self.api.request("GET", f"/api/v2/{ENTITY_SPECS[entity].path}/{int(record_id)}", limiter="get", kind="get") or {}
        except ProviderError as exc:
            if exc.status in (404, 410) and not isinstance(exc, RetryableError):
                return None
            raise
        return data.get("data")

    def search(self, entity: str, term: str, *, fields: str, exact_match: bool = True, limit: int = SEARCH_PAGE_MAX) -> list[dict[str, Any]]:
        """Items matching ``term`` in ``fields`` (every page)."""
        params: dict[str, Any] = {"term": term, "fields": fields, "exact_match": "true" if exact_match else "false", "limit": limit}
        items: list[dict[str, Any]] = []
        while True:
            data = self.api.request("GET", f"/api/v2/{ENTITY_SPECS[entity].path}/search", params=params, limiter="search", kind="search") or {}
            items.extend(entry.get("item") or {} for entry in (data.get("data") or {}).get("items") or [])
            cursor = (data.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return items
            params["cursor"] = cursor

    def field_keys(self, entity: str) -> dict[str, str]:
        """Custom-field name (case-folded) -> its 40-character key, read once per client."""
        with self._fields_lock:
            cached = self._field_keys.get(entity)
            if cached is not None:
                return cached
            keys = {str(f["name"]).strip().casefold(): str(f["key"]) for f in self.fields(entity) if f.get("key") and f.get("name")}
            self._field_keys[entity] = keys
            return keys

    def fields(self, entity: str) -> list[dict[str, Any]]:
        """The entity's field descriptions (``/v1/personFields`` etc.), every page."""
        found: list[dict[str, Any]] = []
        start = 0
        while True:
            data = self.api.request("GET", f"/v1/{ENTITY_SPECS[entity].fields_path}", params={"start": start, "limit": 500}, limiter="fields", kind="fields") or {}
            found += [f for f in data.get("data") or [] if isinstance(f, dict)]
            pagination = (data.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return found
            start = int(pagination.get("next_start") or start + 500)

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.api.request("POST", f"/api/v2/{ENTITY_SPECS[entity].path}", json=body, limiter="write", kind="write", idempotent=False) or {}
        return data.get("data") or {}

    def update(self, entity: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.api.request("PATCH", f"/api/v2/{ENTITY_SPECS[entity].path}/{int(record_id)}", json=body, limiter="write", kind="write") or {}
        return data.get("data") or {}


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def custom_fields(client: PipedriveClient, entity: str) -> list:
    """The company's custom fields of ``entity`` (``/v1/personFields`` etc., those with ``edit_flag``),
    named as a mapping file names them (``custom_fields.NAME``)."""
    from crm_pipelines.mapping.discovery import ProviderField

    return [
        ProviderField(f"custom_fields.{f['name']}", str(f["name"]), str(f.get("field_type") or "varchar"),
                      tuple(str(o.get("label")) for o in f.get("options") or [] if isinstance(o, dict)))
        for f in client.fields(entity) if f.get("name") and f.get("edit_flag")
    ]
