"""A rate-limited, retrying JSON-over-HTTP client shared by every provider.

Provider modules supply a :class:`ResponsePolicy` (how their errors and rate-limit headers look)
and the limiters that match their published limits; this module does the rest: pacing, retries
with exponential backoff and jitter (tenacity), error classification, JSON decoding and call
accounting. Credentials travel only in request headers and never appear in messages or logs.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from crm_pipelines.core.counters import LockedCounters
from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.jsonutil import dumps, loads
from crm_pipelines.core.ratelimit import SlidingWindowLimiter
from crm_pipelines.core.redact import install_log_redaction, register

log = logging.getLogger(__name__)


@dataclass
class CallStats(LockedCounters):
    """What a client did: calls made, 429s met, retries, seconds spent waiting for the limiter."""

    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    limiter_wait_s: float = 0.0
    backoff_wait_s: float = 0.0
    by_kind: Counter = field(default_factory=Counter)

    def count_call(self, kind: str) -> None:
        with self._lock:
            self.calls += 1
            self.by_kind[kind] += 1


class ResponsePolicy:
    """Provider-specific reading of responses. Subclasses override what differs."""

    provider = "provider"

    def observe(self, response: httpx.Response, limiter: SlidingWindowLimiter | None) -> None:
        """Feed rate-limit headers back into the limiter (default: nothing)."""

    def error_for(self, response: httpx.Response, request_line: str, limiter: SlidingWindowLimiter | None) -> ProviderError:
        """Turn a non-2xx response into the right exception class."""
        body = safe_json(response)
        message = error_message(body) or response.reason_phrase or "request failed"
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if limiter is not None:
                limiter.saturate(retry_after)
            return RetryableError(self.provider, message, status=status, request=request_line, body=body, retry_after=retry_after, rate_limited=True)
        if status >= 500 or status in (408, 423):
            return RetryableError(self.provider, message, status=status, request=request_line, body=body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        return ProviderError(self.provider, message, status=status, request=request_line, body=body)


def safe_json(response: httpx.Response) -> Any:
    try:
        return loads(response.content) if response.content else None
    except ValueError:
        return None


def error_message(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return value["message"]
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        return error_message(body[0])
    return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class _BackoffWait:
    """Wait the provider's ``retry_after`` when it gave one, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._exp = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._max = maximum

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.rate_limited:
            # The limiter already holds further sends until the window has room.
            return 0.0
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return min(exc.retry_after, self._max)
        return self._exp(state)


_CREDENTIAL = re.compile(r"auth|token|secret|key|password|session|cookie", re.IGNORECASE)


def _safe_to_resend(exc: BaseException) -> bool:
    """A failed non-idempotent request that surely was not applied: rate limited, or never sent."""
    return isinstance(exc, RetryableError) and (exc.rate_limited or getattr(exc, "not_sent", False))


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: loading the CA certificates costs tens of
    milliseconds, and the schedule opens a client per integration and entity."""
    return httpx.create_ssl_context()


class ApiClient:
    """JSON requests to one provider account, paced by named limiters and retried on transient errors."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        policy: ResponsePolicy,
        limiters: Mapping[str, SlidingWindowLimiter] | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        max_backoff_s: float = 30.0,
        max_elapsed_s: float = 900.0,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        # Credential headers (Authorization, api tokens...) are redacted from every error and log line.
        register(*(value.removeprefix("Bearer ").removeprefix("Basic ") for name, value in headers.items() if _CREDENTIAL.search(name)))
        install_log_redaction()
        self.policy = policy
        self.limiters = dict(limiters or {})
        self.stats = stats or CallStats()
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_elapsed_s = max_elapsed_s
        self._wait = _BackoffWait(initial=0.5, maximum=max_backoff_s)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        limiter: str | None = "default",
        kind: str | None = None,
        idempotent: bool = True,
        content: bytes | None = None,
        content_type: str | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one logical request (with retries) and return its decoded JSON body (None if empty).

        ``idempotent=False`` (a plain create): a failure after which the provider may have applied
        the request (timeout, reset, truncated body, 5xx) is raised at once instead of being sent
        again, so the caller can look the record up before creating it a second time. Only 429s
        and connections that never reached the provider are retried.

        ``content`` (with ``content_type``) sends a body as it is (a CSV upload); ``raw`` returns the
        :class:`httpx.Response` itself (headers and a non-JSON body, such as a CSV result page).
        """
        request_line = f"{method} {path}"
        bucket = self.limiters.get(limiter) if limiter else None

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.stats.add(retries=1, backoff_wait_s=wait)
            log.warning(
                "%s: attempt %d of %s failed (%s); retrying in %.1fs",
                self.provider, state.attempt_number, request_line, exc, wait,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(RetryableError) if idempotent else retry_if_exception(_safe_to_resend),
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_elapsed_s),
            wait=self._wait,
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        body = (content, content_type, raw)
        return retrying(self._send_once, method, path, params, json, bucket, request_line, kind or limiter or "call", body)

    def _send_once(self, method, path, params, json, bucket, request_line, kind, body=(None, None, False)) -> Any:
        if bucket is not None:
            waited = bucket.acquire()
            if waited:
                self.stats.add(limiter_wait_s=waited)
        self.stats.count_call(kind)
        # Bodies are encoded here with orjson (httpx's ``json=`` uses the standard library).
        content, headers = (None, None) if json is None else (dumps(json), _JSON_CONTENT)
        if body[0] is not None:
            content, headers = body[0], {"Content-Type": body[1] or "application/octet-stream"}
        try:
            response = self._http.request(method, path, params=params, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            error = RetryableError(self.provider, f"could not connect ({type(exc).__name__})", request=request_line)
            error.not_sent = True
            raise error from None
        except httpx.TimeoutException as exc:
            raise RetryableError(self.provider, f"timed out ({type(exc).__name__})", request=request_line) from None
        except httpx.TransportError as exc:
            raise RetryableError(self.provider, f"connection failed ({type(exc).__name__})", request=request_line) from None
        self.policy.observe(response, bucket)
        if response.status_code >= 400:
            error = self.policy.error_for(response, request_line, bucket)
            if isinstance(error, RetryableError) and error.rate_limited:
                self.stats.add(rate_limited=1)
            raise error
        if body[2]:
            return response
        if not response.content:
            return None
        try:
            return loads(response.content)
        except ValueError:
            raise RetryableError(self.provider, "response body was not valid JSON (truncated?)", status=response.status_code, request=request_line) from None


_JSON_CONTENT = {"Content-Type": "application/json"}


__all__ = ["ApiClient", "CallStats", "ResponsePolicy", "ProviderError", "QuotaExhausted", "RetryableError"]
