"""Shopify Admin GraphQL API: endpoint, limits, error handling and the client.

Facts (../shared/PROVIDERS.md §4): ``POST https://{shop}.myshopify.com/admin/api/{version}/graphql.json``
with ``X-Shopify-Access-Token``; quarterly versions (``2026-10``); connections take ``first`` at
most 250 with ``after`` cursors and ``pageInfo``; search syntax in ``query``; ids are GIDs
(``gid://shopify/Customer/123``). Throttling is by query cost: a bucket of 2,000 points restored
at 100 points/s on standard plans (Plus: 20,000 at 1,000/s), reported in
``extensions.cost.throttleStatus`` on every answer; a request whose requested cost exceeds what is
available gets ``errors[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]`` (HTTP 200
historically, 429 in some recent material: both are handled); one query may not request more
than 1,000 points. Mutations report validation problems per input in ``userErrors`` with HTTP 200.
Companies exist only on B2B (Plus) stores; elsewhere the API answers ``ACCESS_DENIED``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from crm_pipelines.core.counters import LockedCounters
from crm_pipelines.core.errors import ConfigurationError, EntityUnavailable, ProviderError, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, parse_retry_after, safe_json
from crm_pipelines.providers.shopify.throttle import CostBucket, shared_bucket

PROVIDER = "shopify"
#: ``{shop}`` is the store's myshopify name; set SHOPIFY_BASE_URL (or SHOPIFY_SHOP).
BASE_URL = "https://{shop}.myshopify.com"
API_VERSION = "2026-10"
PAGE_MAX = 250
MAX_QUERY_COST = 1000
MUTATION_COST = 10
STANDARD_BUCKET = 2000.0
STANDARD_RESTORE_RATE = 100.0
PLUS_BUCKET = 20000.0
PLUS_RESTORE_RATE = 1000.0
#: Aliased mutations per request: 50 x 10 points = 500 requested points (half the single-query cap).
MUTATIONS_PER_REQUEST = 50


@dataclass(frozen=True)
class ObjectSpec:
    """A Shopify resource as this project reads and writes it."""

    connection: str
    gid_type: str
    count_field: str
    subject_type: str
    create_mutation: str
    update_mutation: str
    payload_field: str


OBJECTS: dict[str, ObjectSpec] = {
    "contacts": ObjectSpec("customers", "Customer", "customersCount", "CUSTOMER", "customerCreate", "customerUpdate", "customer"),
    "deals": ObjectSpec("orders", "Order", "ordersCount", "ORDER", "orderCreate", "orderUpdate", "order"),
    "companies": ObjectSpec("companies", "Company", "companiesCount", "COMPANY", "companyCreate", "companyUpdate", "company"),
}


#: The ``MetafieldOwnerType`` of each entity (metafields are Shopify's custom fields).
METAFIELD_OWNERS = {"contacts": "CUSTOMER", "deals": "ORDER", "companies": "COMPANY"}
METAFIELD_DEFINITIONS = (
    "query($owner: MetafieldOwnerType!, $first: Int!, $after: String) { metafieldDefinitions(ownerType: $owner, first: $first, after: $after) "
    "{ pageInfo { hasNextPage endCursor } nodes { name namespace key type { name } } } }"
)


def to_gid(entity: str, value: str | int) -> str:
    """A GID for ``value``, which may already be one or be the numeric (REST/webhook) id."""
    text = str(value).strip()
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise ValueError(f"{text!r} is neither a Shopify GID nor a numeric id")
    return f"gid://shopify/{OBJECTS[entity].gid_type}/{text}"


@dataclass
class CostStats(LockedCounters):
    """Cost points the client was charged (actual) and asked for (requested); throttled answers."""

    requested: int = 0
    actual: int = 0
    throttled: int = 0


def _errors_text(errors: Any) -> str:
    if isinstance(errors, str):
        return errors
    if isinstance(errors, Mapping):
        return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items())
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors)
    return ""


def error_code(errors: Any) -> str | None:
    """The first ``extensions.code`` of a GraphQL ``errors`` array."""
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, Mapping):
                code = (error.get("extensions") or {}).get("code")
                if code:
                    return str(code)
    return None


def is_throttled(body: Any) -> bool:
    return isinstance(body, Mapping) and error_code(body.get("errors")) == "THROTTLED"


class ShopifyPolicy(ResponsePolicy):
    """Reads Shopify's non-2xx answers: 429 THROTTLED goes back to the cost pacing, the rest as usual."""

    provider = PROVIDER

    def error_for(self, response: httpx.Response, request_line: str, limiter: Any) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        message = _errors_text((body or {}).get("errors")) if isinstance(body, Mapping) else ""
        message = message or response.reason_phrase or "request failed"
        if status == 429 and is_throttled(body):
            # Not retried here: the client waits for the bucket the body reports, then resends.
            return ProviderError(PROVIDER, message, status=status, category="THROTTLED", request=request_line, body=body)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After")) or 1.0
            return RetryableError(PROVIDER, message, status=status, category="RATE_LIMITED", request=request_line, body=body, retry_after=retry_after)
        if status >= 500:
            return RetryableError(PROVIDER, message, status=status, request=request_line, body=body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status == 401:
            message += " (check SHOPIFY_ACCESS_TOKEN)"
        if status == 404:
            message += " (check SHOPIFY_BASE_URL and the API version)"
        return ProviderError(PROVIDER, message, status=status, request=request_line, body=body)


class ShopifyClient:
    """GraphQL requests to one shop, paced by the cost bucket the API reports."""

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str = BASE_URL,
        api_version: str = API_VERSION,
        bucket_size: float = STANDARD_BUCKET,
        restore_rate: float = STANDARD_RESTORE_RATE,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        max_throttled: int = 30,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        account: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not access_token:
            raise ConfigurationError("Shopify needs an Admin API access token (set SHOPIFY_ACCESS_TOKEN)")
        if "{shop}" in base_url:
            raise ConfigurationError("Shopify needs the store's address: set SHOPIFY_BASE_URL to https://<your-store>.myshopify.com (or SHOPIFY_SHOP)")
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", api_version):
            raise ConfigurationError(f"Shopify API version {api_version!r} is not a quarterly version such as {API_VERSION}")
        # The provider account the limits belong to: declared by the integration, else told apart by token.
        account = account or hashlib.sha256(access_token.encode()).hexdigest()[:16]
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.bucket: CostBucket = shared_bucket((PROVIDER, base_url, account, "cost"), bucket_size, restore_rate)
        self.cost = CostStats()
        self.max_throttled = max_throttled
        self._sleep = sleep
        self._requested: dict[str, int] = {}
        self.api = ApiClient(
            provider=PROVIDER,
            base_url=base_url,
            headers={"X-Shopify-Access-Token": access_token, "Content-Type": "application/json", "Accept": "application/json"},
            policy=ShopifyPolicy(),
            limiters={},
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            stats=stats,
            transport=transport,
            sleep=sleep,
        )

    @property
    def stats(self) -> CallStats:
        return self.api.stats

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> ShopifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, query: str, variables: Mapping[str, Any] | None = None, *, kind: str = "query", cost: int | None = None) -> dict[str, Any]:
        """Send one operation; wait for the bucket first and again after each THROTTLED answer.

        Returns the whole body (``data``, maybe ``errors``); ``cost`` is the expected requested
        cost when this query shape has not been seen yet (the answer's figure is remembered).
        """
        key = hashlib.sha1(query.encode()).hexdigest() + str((variables or {}).get("first", ""))
        payload = {"query": query, "variables": dict(variables or {})}
        for _ in range(self.max_throttled + 1):
            waited = self.bucket.acquire(self._requested.get(key, cost or 0))
            if waited:
                self.stats.add(limiter_wait_s=waited)
            try:
                body = self.api.request("POST", self.path, json=payload, limiter=None, kind=kind)
            except ProviderError as exc:
                if exc.category != "THROTTLED":
                    raise
                body = exc.body
            if not isinstance(body, dict):
                raise RetryableError(PROVIDER, "answer was not a JSON object", request=f"POST {self.path}")
            self._observe(key, body)
            if not is_throttled(body):
                return body
            self.stats.add(rate_limited=1)
            self.cost.add(throttled=1)
        raise RetryableError(PROVIDER, f"still THROTTLED after {self.max_throttled} waits for the cost bucket", category="THROTTLED", request=f"POST {self.path}", rate_limited=True)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, *, kind: str = "query", cost: int | None = None, entity: str | None = None) -> dict[str, Any]:
        """``data`` of an operation; any GraphQL error raises (EntityUnavailable for B2B-only companies)."""
        body = self.execute(query, variables, kind=kind, cost=cost)
        errors = body.get("errors")
        if errors:
            raise graphql_error(errors, f"POST {self.path}", entity)
        return body.get("data") or {}

    def connection_pages(self, query: str, connection: str, variables: Mapping[str, Any] | None = None, *, kind: str, cost: int,
                         entity: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """The ``nodes`` of every page of one connection (``$after`` set to each ``pageInfo.endCursor``
        while ``hasNextPage``), page by page; ``query`` selects the connection named ``connection``."""
        after = None
        while True:
            data = self.graphql(query, {**(variables or {}), "after": after}, kind=kind, cost=cost, entity=entity)
            page = data.get(connection) or {}
            yield page.get("nodes") or []
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def _observe(self, key: str, body: dict[str, Any]) -> None:
        cost = (body.get("extensions") or {}).get("cost")
        if not isinstance(cost, Mapping):
            return
        requested = cost.get("requestedQueryCost")
        if isinstance(requested, (int, float)) and requested > 0:
            self._requested[key] = int(requested)
        status = cost.get("throttleStatus") or {}
        self.bucket.observe(maximum=status.get("maximumAvailable"), available=status.get("currentlyAvailable"), restore_rate=status.get("restoreRate"))
        actual = cost.get("actualQueryCost")
        self.cost.add(requested=int(requested or 0) if actual is not None else 0, actual=int(actual or 0))


def metafield_definitions(client: ShopifyClient, entity: str) -> list[dict[str, Any]]:
    """The store's metafield definitions of ``entity``'s owner type (``metafieldDefinitions(ownerType:)``), every page."""
    pages = client.connection_pages(METAFIELD_DEFINITIONS, "metafieldDefinitions", {"owner": METAFIELD_OWNERS[entity], "first": PAGE_MAX},
                                    kind="fields", cost=2 + 2 * PAGE_MAX, entity=entity)
    return [d for nodes in pages for d in nodes if isinstance(d, dict) and d.get("namespace") and d.get("key")]


def custom_fields(client: ShopifyClient, entity: str) -> list:
    """The store's metafield definitions of ``entity``, named as a mapping file names them
    (``metafields.NAMESPACE.KEY``), with their types (``single_line_text_field``, ``number_integer``...)."""
    from crm_pipelines.mapping.discovery import ProviderField

    return [ProviderField(f"metafields.{d['namespace']}.{d['key']}", str(d.get("name") or d["key"]), str((d.get("type") or {}).get("name") or ""))
            for d in metafield_definitions(client, entity)]


def graphql_error(errors: Any, request_line: str, entity: str | None = None) -> ProviderError:
    """The exception for a GraphQL ``errors`` array (never retried: the query itself is refused)."""
    code = error_code(errors)
    message = _errors_text(errors) or "GraphQL error"
    if code == "ACCESS_DENIED" and entity == "companies":
        return EntityUnavailable(
            PROVIDER,
            f"this store has no B2B companies (Shopify Plus with B2B and the read_companies/write_companies scopes are needed): {message}",
            category=code, request=request_line, body=errors,
        )
    if code == "MAX_COST_EXCEEDED":
        message += " (a smaller page or fewer aliased mutations per request is needed)"
    return ProviderError(PROVIDER, message, category=code or "GRAPHQL_ERROR", request=request_line, body=errors)
