"""HubSpot CRM v3: endpoints, limits, error handling and the HTTP client.

Facts (../shared/PROVIDERS.md §1): Bearer auth; ``/crm/v3/objects/{object}`` lists with ``limit``
≤ 100 and an ``after`` cursor, ``paging`` absent on the last page; ``POST .../search`` with
filterGroups, one sort, ``limit`` ≤ 200 and a 10,000-result cap; a sliding ten-second limit per
app (100 on Free/Starter, 190 on Professional/Enterprise) reported in ``X-HubSpot-RateLimit-*``
headers, a daily allowance per account, and a separate search limit of 5 requests per second
that sends no headers. 429 bodies name the policy: ``TEN_SECONDLY_ROLLING`` (wait for the window)
or ``DAILY`` (stop until tomorrow).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, error_message, safe_json
from crm_pipelines.core.ratelimit import SlidingWindowLimiter, shared_limiter

PROVIDER = "hubspot"
BASE_URL = "https://api.hubapi.com"
LIST_PAGE_MAX = 100
SEARCH_PAGE_MAX = 200
#: Search stops at 10,000 results per query; the reader's keyset paging never reaches it.
SEARCH_TOTAL_CAP = 10_000
BATCH_MAX = 100
DEFAULT_BURST_LIMIT = 100
BURST_WINDOW_S = 10.0
SEARCH_PER_SECOND = 5


@dataclass(frozen=True)
class ObjectSpec:
    """A HubSpot object type as this project reads it."""

    path: str
    modified_property: str
    label: str


OBJECTS: dict[str, ObjectSpec] = {
    "contacts": ObjectSpec("contacts", "lastmodifieddate", "CONTACT"),
    "companies": ObjectSpec("companies", "hs_lastmodifieddate", "COMPANY"),
    "deals": ObjectSpec("deals", "hs_lastmodifieddate", "DEAL"),
}


class HubSpotPolicy(ResponsePolicy):
    """Reads HubSpot's rate-limit headers and 429 policies."""

    provider = PROVIDER

    def observe(self, response: httpx.Response, limiter: SlidingWindowLimiter | None) -> None:
        if limiter is None:
            return
        headers = response.headers
        remaining = headers.get("X-HubSpot-RateLimit-Remaining")
        if remaining is None:
            return  # search responses carry no headers
        try:
            interval_ms = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            limiter.observe(
                remaining=int(remaining),
                max_calls=int(headers["X-HubSpot-RateLimit-Max"]) if "X-HubSpot-RateLimit-Max" in headers else None,
                period_s=int(interval_ms) / 1000 if interval_ms else None,
            )
        except ValueError:
            pass

    def error_for(self, response: httpx.Response, request_line: str, limiter: SlidingWindowLimiter | None) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        message = error_message(body) or response.reason_phrase or "request failed"
        category = body.get("category") if isinstance(body, dict) else None
        if status == 429:
            policy = (body or {}).get("policyName") if isinstance(body, dict) else None
            if policy == "DAILY":
                daily = response.headers.get("X-HubSpot-RateLimit-Daily")
                return QuotaExhausted(
                    PROVIDER,
                    f"{message} The account's daily allowance ({daily or 'unknown'} calls) is spent; "
                    "the sync stops here and resumes after the daily reset (midnight in the account's time zone).",
                    status=status, category="DAILY", request=request_line, body=body,
                )
            wait = limiter.saturate() if limiter is not None else BURST_WINDOW_S
            return RetryableError(PROVIDER, message, status=status, category=policy or "RATE_LIMIT", request=request_line, body=body, retry_after=wait, rate_limited=True)
        if status == 477:  # migration in progress; Retry-After in seconds
            return RetryableError(PROVIDER, message, status=status, category=category, request=request_line, body=body, retry_after=float(response.headers.get("Retry-After", "60")))
        if status == 423:  # locked: too much data synced too fast, wait at least 2 s
            return RetryableError(PROVIDER, message, status=status, category=category, request=request_line, body=body, retry_after=2.0)
        if status >= 500:
            return RetryableError(PROVIDER, message, status=status, category=category, request=request_line, body=body)
        return ProviderError(PROVIDER, message, status=status, category=category, request=request_line, body=body)


class HubSpotClient:
    """HubSpot CRM v3 calls used by the sync, paced by the ten-second and search limiters."""

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str = BASE_URL,
        burst_limit: int = DEFAULT_BURST_LIMIT,
        burst_window_s: float = BURST_WINDOW_S,
        search_per_second: int = SEARCH_PER_SECOND,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        account: str = "",
    ) -> None:
        if not access_token:
            raise ValueError("HubSpot needs an access token (set HUBSPOT_ACCESS_TOKEN)")
        # Limits are per account: clients of the same token share one budget in this process.
        # The provider account the limits belong to: declared by the integration, else told apart by token.
        account = account or hashlib.sha256(access_token.encode()).hexdigest()[:16]
        self.api = ApiClient(
            provider=PROVIDER,
            base_url=base_url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            policy=HubSpotPolicy(),
            limiters={
                "default": shared_limiter((PROVIDER, base_url, account, "ten-secondly"), burst_limit, burst_window_s, name="hubspot ten-secondly"),
                "search": shared_limiter((PROVIDER, base_url, account, "search"), search_per_second, 1.0, name="hubspot search"),
            },
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            stats=stats,
            transport=transport,
        )

    @property
    def stats(self) -> CallStats:
        return self.api.stats

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_page(self, entity: str, properties: Sequence[str], *, after: str | None = None, archived: bool = False, limit: int = LIST_PAGE_MAX) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": min(limit, LIST_PAGE_MAX), "properties": ",".join(properties)}
        if after:
            params["after"] = after
        if archived:
            params["archived"] = "true"
        return self.api.request("GET", f"/crm/v3/objects/{OBJECTS[entity].path}", params=params, kind="list")

    def iter_list(self, entity: str, properties: Sequence[str], *, archived: bool = False) -> Iterator[list[dict[str, Any]]]:
        """Every record of ``entity``, one page at a time (memory stays flat whatever the count)."""
        for results, _ in self.iter_list_after(entity, properties, archived=archived):
            yield results

    def iter_list_after(self, entity: str, properties: Sequence[str], *, archived: bool = False, after: str | None = None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """``(records, cursor of the next page)`` from the page after ``after`` on (the cursor is None on the last page)."""
        while True:
            data = self.list_page(entity, properties, after=after, archived=archived)
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            yield data.get("results", []), after or None
            if not after:
                return

    def search(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.api.request("POST", f"/crm/v3/objects/{OBJECTS[entity].path}/search", json=body, limiter="search", kind="search")

    def batch_read(self, entity: str, ids: Sequence[str], properties: Sequence[str], *, archived: bool = False) -> dict[str, Any]:
        return self.api.request(
            "POST",
            f"/crm/v3/objects/{OBJECTS[entity].path}/batch/read",
            params={"archived": "true"} if archived else None,
            json={"inputs": [{"id": i} for i in ids], "properties": list(properties)},
            kind="batch_read",
        )


def custom_fields(client: HubSpotClient, entity: str) -> list:
    """The portal's custom properties of ``entity`` (``GET /crm/v3/properties/{object}``, not ``hubspotDefined``)."""
    from crm_pipelines.mapping.discovery import ProviderField

    data = client.api.request("GET", f"/crm/v3/properties/{OBJECTS[entity].path}", kind="properties") or {}
    return [
        ProviderField(str(p["name"]), str(p.get("label") or p["name"]), str(p.get("type") or "string"),
                      tuple(str(o.get("value")) for o in p.get("options") or [] if isinstance(o, dict)))
        for p in data.get("results") or [] if isinstance(p, dict) and p.get("name") and not p.get("hubspotDefined")
    ]
