"""GestaoClick API: endpoints, limits, error handling and the HTTP client.

Facts (../shared/PROVIDERS.md §6, all from secondary sources): base URL
``https://api.beteltecnologia.com``; headers ``access-token`` and ``secret-access-token`` on every
call; ``/clientes`` (contacts are ``tipo_pessoa=PF``, companies ``PJ``; ``ES`` is a foreign
cliente, read here as a contact) and ``/vendas`` (deals); lists paged by ``pagina`` (1-based) in a
``{code,status,meta,data}`` envelope, ``meta.proxima_pagina`` null on the last page; numbers and
flags mostly strings; no modification-date filter, no bulk endpoint, no webhooks; 3 requests per
second and 30,000 per day, 429 beyond. Error bodies are believed to follow the envelope
(``{"code":422,"status":"error","data":{...}}``) but are unconfirmed, so every shape is read
defensively: a message is looked for in ``data.mensagem``, ``mensagem``, ``message``... and
field errors in ``erros``/``errors`` or ``data`` itself.

The daily allowance is counted here too (per account, per calendar day in
``America/Sao_Paulo``): the client stops with :class:`QuotaExhausted` before the request that
would exceed it, instead of collecting 429s.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, parse_retry_after, safe_json
from crm_pipelines.core.ratelimit import SlidingWindowLimiter, shared_limiter

PROVIDER = "gestaoclick"
#: Why ``crm-pipelines mapping fields gestaoclick`` lists nothing.
NO_FIELD_DESCRIPTIONS = ("GestaoClick's API documents no endpoint describing custom fields; map any value to tag.KEY "
                         "(it travels in the [crm_pipelines] tag line of observacoes, see docs/mapping.md)")
BASE_URL = "https://api.beteltecnologia.com"
REQUESTS_PER_SECOND = 3
DAILY_LIMIT = 30_000
ACCOUNT_TIMEZONE = "America/Sao_Paulo"
#: Page size asked for with ``limite``; the server may ignore it (20 per page was observed).
PAGE_SIZE = 100
#: Least wait after a 429 (the reference's guidance: back off at least one second).
MIN_BACKOFF_S = 1.0
_DAILY_WORDS = ("diári", "diari", "daily", "por dia", "per day")


@dataclass(frozen=True)
class ResourceSpec:
    """Where an entity lives: its path and the ``tipo_pessoa`` values it covers (clientes only)."""

    path: str
    tipos: tuple[str, ...] = ()


RESOURCES: dict[str, ResourceSpec] = {
    "contacts": ResourceSpec("/clientes", ("PF", "ES")),
    "companies": ResourceSpec("/clientes", ("PJ",)),
    "deals": ResourceSpec("/vendas"),
}


def describe_error(body: Any) -> str | None:
    """A readable message from any of the error body shapes seen or guessed (None if none)."""
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, Mapping):
        return None
    parts: list[str] = []
    data = body.get("data")
    for source in (data if isinstance(data, Mapping) else {}, body):
        for key in ("mensagem", "message", "msg", "erro", "error"):
            value = source.get(key)
            if isinstance(value, str) and value.strip() and value.strip() not in parts:
                parts.append(value.strip())
    if isinstance(data, str) and data.strip():
        parts.append(data.strip())
    fields = field_errors(body)
    detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
    if detail and not any(detail in p for p in parts):
        parts.append(detail)
    return " - ".join(parts) or None


def field_errors(body: Any) -> dict[str, list[str]]:
    """Validation messages per field: ``erros``/``errors`` maps or lists, or ``data`` as such a map."""
    if not isinstance(body, Mapping):
        return {}
    data = body.get("data")
    candidates = [body.get("erros"), body.get("errors")]
    if isinstance(data, Mapping):
        candidates += [data.get("erros"), data.get("errors")]
        if not any(k in data for k in ("mensagem", "message", "erros", "errors")):
            candidates.append(data)
    out: dict[str, list[str]] = {}
    for candidate in candidates:
        if isinstance(candidate, Mapping):
            for name, value in candidate.items():
                messages = value if isinstance(value, list) else [value]
                out.setdefault(str(name), []).extend(str(m) for m in messages if m not in (None, ""))
        elif isinstance(candidate, list):
            for item in candidate:
                if isinstance(item, Mapping):
                    name = str(item.get("campo") or item.get("field") or "registro")
                    out.setdefault(name, []).append(str(item.get("mensagem") or item.get("message") or item))
                elif item:
                    out.setdefault("registro", []).append(str(item))
    return out


class GestaoClickPolicy(ResponsePolicy):
    """429: wait at least a second (or ``Retry-After``); a daily-limit 429 stops the sync."""

    provider = PROVIDER

    def error_for(self, response: httpx.Response, request_line: str, limiter: SlidingWindowLimiter | None) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        if body is None and response.content:
            body = response.text[:500]
        message = describe_error(body) or response.reason_phrase or "request failed"
        if status == 429:
            if any(word in message.lower() for word in _DAILY_WORDS):
                return QuotaExhausted(
                    PROVIDER,
                    f"{message}. The account's daily allowance ({DAILY_LIMIT} requests) is spent; the sync stops here "
                    f"and resumes after midnight ({ACCOUNT_TIMEZONE}).",
                    status=status, category="DAILY", request=request_line, body=body,
                )
            wait = max(parse_retry_after(response.headers.get("Retry-After")) or 0.0, MIN_BACKOFF_S)
            if limiter is not None:
                limiter.saturate(wait)
            return RetryableError(PROVIDER, message, status=status, category="RATE_LIMIT", request=request_line, body=body, retry_after=wait, rate_limited=True)
        if status >= 500 or status == 408:
            return RetryableError(PROVIDER, message, status=status, request=request_line, body=body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        category = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 422: "VALIDATION_ERROR"}.get(status)
        return ProviderError(PROVIDER, message, status=status, category=category, request=request_line, body=body)


class DailyBudget:
    """Requests left today for one account, counted in this process (the server's 429 is the backstop)."""

    def __init__(self, limit: int, tz: str = ACCOUNT_TIMEZONE) -> None:
        self.limit = limit
        self.tz = ZoneInfo(tz)
        self._lock = threading.Lock()
        self._day: Any = None
        self.used = 0

    def spend(self) -> None:
        with self._lock:
            today = datetime.now(timezone.utc).astimezone(self.tz).date()
            if today != self._day:
                self._day, self.used = today, 0
            if self.used >= self.limit:
                midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=self.tz)
                raise QuotaExhausted(
                    PROVIDER,
                    f"the daily allowance of {self.limit} requests is spent ({self.used} made today by this process); "
                    f"the sync stops here and resumes after {midnight.isoformat()}",
                    category="DAILY",
                )
            self.used += 1


_BUDGETS: dict[tuple, DailyBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(key: tuple, limit: int) -> DailyBudget:
    """One daily budget per account in this process (like ``shared_limiter``)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None or budget.limit != limit:
            budget = _BUDGETS[key] = DailyBudget(limit)
        return budget


class _BudgetedApiClient(ApiClient):
    """ApiClient that spends the daily budget on every attempt sent (retries cost requests too)."""

    def __init__(self, *, budget: DailyBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget

    def _send_once(self, *args: Any) -> Any:
        self.budget.spend()
        return super()._send_once(*args)


class GestaoClickClient:
    """The GestaoClick calls used by the sync, paced to 3 per second and counted against the day."""

    def __init__(
        self,
        *,
        access_token: str,
        secret_access_token: str,
        base_url: str = BASE_URL,
        per_second: int = REQUESTS_PER_SECOND,
        daily_limit: int = DAILY_LIMIT,
        page_size: int = PAGE_SIZE,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        account: str = "",
    ) -> None:
        if not access_token or not secret_access_token:
            raise ValueError("GestaoClick needs both tokens (set GESTAOCLICK_ACCESS_TOKEN and GESTAOCLICK_SECRET_ACCESS_TOKEN)")
        if per_second < 1 or daily_limit < 1 or page_size < 1:
            raise ValueError("per_second, daily_limit and page_size must be >= 1")
        # The provider account the limits belong to: declared by the integration, else told apart by token.
        account = account or hashlib.sha256(access_token.encode()).hexdigest()[:16]
        self.page_size = page_size
        self.api = _BudgetedApiClient(
            budget=shared_budget((PROVIDER, base_url, account, "daily"), daily_limit),
            provider=PROVIDER,
            base_url=base_url,
            headers={
                "access-token": access_token,
                "secret-access-token": secret_access_token,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            policy=GestaoClickPolicy(),
            limiters={"default": shared_limiter((PROVIDER, base_url, account, "per-second"), per_second, 1.0, name="gestaoclick per-second")},
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            stats=stats,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"GestaoClickClient(base_url={str(self.api._http.base_url)!r})"

    @property
    def stats(self) -> CallStats:
        return self.api.stats

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> GestaoClickClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_page(self, path: str, params: Mapping[str, Any], pagina: int, *, kind: str = "list") -> dict[str, Any]:
        query = {**params, "pagina": pagina, "limite": self.page_size}
        return self.api.request("GET", path, params=query, kind=kind) or {}

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None, *, kind: str = "list") -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Every page of a list as (records, meta), following ``proxima_pagina`` whatever the meta variant."""
        for records, meta, _ in self.iter_pages_from(path, params, kind=kind):
            yield records, meta

    def iter_pages_from(self, path: str, params: Mapping[str, Any] | None = None, *, start: int = 1, kind: str = "list") -> Iterator[tuple[list[dict[str, Any]], dict[str, Any], int | None]]:
        """``(records, meta, number of the next page)`` from page ``start`` on (the number is None on the last page)."""
        pagina = start
        while True:
            body = self.list_page(path, params or {}, pagina, kind=kind)
            records = [r for r in (body.get("data") or []) if isinstance(r, Mapping)] if isinstance(body, Mapping) else []
            meta = body.get("meta") if isinstance(body, Mapping) and isinstance(body.get("meta"), Mapping) else {}
            following = next_page(meta, pagina, len(records))
            yield records, meta, following
            if following is None:
                return
            pagina = following

    def get(self, path: str, record_id: str, *, kind: str = "get") -> dict[str, Any] | None:
        """One record, or None when it does not exist (404)."""
        try:
            body = self.api.request("GET", f"{path}/{record_id}", kind=kind)
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        data = body.get("data") if isinstance(body, Mapping) else None
        return data if isinstance(data, Mapping) and data else None

    def write(self, method: str, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = self.api.request(method, path, json=dict(payload), kind="write", idempotent=method != "POST")
        data = body.get("data") if isinstance(body, Mapping) else None
        return data if isinstance(data, Mapping) else {}


def as_int(value: Any) -> int | None:
    """``"2"``, ``2``, ``2.0`` -> 2; anything else -> None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def next_page(meta: Mapping[str, Any], current: int, received: int) -> int | None:
    """The page to read after ``current``, from whichever ``meta`` keys the server sent.

    ``proxima_pagina`` decides when present (null: last page). Otherwise ``total_paginas``; and
    with neither, an empty page ends the list.
    """
    if "proxima_pagina" in meta:
        following = as_int(meta.get("proxima_pagina"))
        return following if following is not None and following > current else None
    total_pages = as_int(meta.get("total_paginas"))
    if total_pages is not None:
        return current + 1 if current < total_pages else None
    return current + 1 if received > 0 else None
