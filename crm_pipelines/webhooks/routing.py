"""Which integration a webhook event belongs to: the provider account it names.

HubSpot events carry ``portalId``, Shopify deliveries the ``X-Shopify-Shop-Domain`` header,
Pipedrive ``meta.company_id``, Bling ``companyId``. An event is routed to the active integration
registered with that account id. A deployment that registered no account ids at all for a
provider (the single-account set-up) routes that provider's events to its default integration.
Otherwise an event naming an unknown account is kept in the inbox with no integration and never
applied to any store (``crm-pipelines webhooks unrouted`` lists them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from crm_pipelines.integrations.registry import IntegrationRegistry


@dataclass
class _ProviderRoutes:
    by_account: dict[str, int] = field(default_factory=dict)
    fallback: int | None = None
    loaded_at: float = 0.0


class WebhookRouter:
    """Routes events to integrations; the table is re-read every ``ttl_s`` seconds (integrations change rarely)."""

    def __init__(self, engine: Engine, *, ttl_s: float = 10.0) -> None:
        self.registry = IntegrationRegistry(engine)
        self.ttl_s = ttl_s
        self._routes: dict[str, _ProviderRoutes] = {}
        self._lock = threading.Lock()

    def _load(self, provider: str) -> _ProviderRoutes:
        integrations = self.registry.list(provider=provider)
        routes = _ProviderRoutes(loaded_at=time.monotonic())
        for integration in integrations:
            if integration.account_id and integration.active:
                routes.by_account[integration.account_id.lower()] = integration.id
        if not any(i.account_id for i in integrations):
            routes.fallback = self.registry.default_for(provider).id
        return routes

    def route(self, provider: str, account_id: str | None) -> int | None:
        with self._lock:
            routes = self._routes.get(provider)
            if routes is None or time.monotonic() - routes.loaded_at > self.ttl_s:
                routes = self._routes[provider] = self._load(provider)
        if account_id and account_id.lower() in routes.by_account:
            return routes.by_account[account_id.lower()]
        return routes.fallback


__all__ = ["WebhookRouter"]
