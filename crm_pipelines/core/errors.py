"""Errors raised by provider clients.

Every message is built from the provider's own error body and the request line (method and
path, never headers or query strings that could carry credentials), with every secret the
process's clients hold removed (:mod:`crm_pipelines.core.redact`), so it can be shown in logs and
in the Dagster UI as it is.
"""

from __future__ import annotations

from crm_pipelines.core.redact import redact, redact_value


class ProviderError(Exception):
    """The provider refused a request for a reason that retrying will not fix (most 4xx)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        request: str | None = None,
        body: object = None,
    ) -> None:
        # Whatever the provider echoed (a request with its credentials), no registered secret survives.
        message, request, category = redact(message), redact(request) if request else request, redact(category) if category else category
        self.provider = provider
        self.status = status
        self.category = category
        self.request = request
        self.body = redact_value(body)
        self.provider_message = message
        parts = [f"{provider}"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if category:
            parts.append(category)
        text = " ".join(parts) + f": {message}"
        if request:
            text += f" (request: {request})"
        super().__init__(text)


class RetryableError(ProviderError):
    """A transient failure (429, 5xx, timeout, reset, truncated body): worth another attempt.

    ``retry_after`` is the wait the provider asked for, or that its limits imply, in seconds.
    """

    def __init__(self, provider: str, message: str, *, retry_after: float | None = None, rate_limited: bool = False, **kw) -> None:
        super().__init__(provider, message, **kw)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class QuotaExhausted(ProviderError):
    """The account's allowance for the period (e.g. HubSpot's daily limit) is spent.

    Retrying would only add error responses; the sync stops cleanly and resumes on a later run.
    """


class EntityUnavailable(ProviderError):
    """The account does not offer this entity (a Shopify store without B2B has no companies).

    Syncs of that entity are skipped with this message instead of failing.
    """


class ConfigurationError(Exception):
    """Bad settings or input from the user, reported with what to change."""
