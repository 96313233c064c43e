"""The Dagster resource giving assets access to one GestaoClick account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.gestaoclick.api import BASE_URL, DAILY_LIMIT, PAGE_SIZE, REQUESTS_PER_SECOND, GestaoClickClient
from crm_pipelines.providers.gestaoclick.reader import GestaoClickChangeReader
from crm_pipelines.providers.gestaoclick.writer import GestaoClickWriter


class GestaoClickResource(dg.ConfigurableResource):
    """A GestaoClick account: its two tokens, base URL and limits (3 requests/s, 30,000/day)."""

    access_token: str = Field(description="access-token header value (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    secret_access_token: str = Field(description="secret-access-token header value (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    base_url: str = Field(default=BASE_URL, description="API base URL; a simulator's URL in development.")
    per_second: int = Field(default=REQUESTS_PER_SECOND, description="Requests per second (GestaoClick: 3).")
    daily_limit: int = Field(default=DAILY_LIMIT, description="Requests per day (GestaoClick: 30,000); the sync stops cleanly when spent.")
    page_size: int = Field(default=PAGE_SIZE, description="limite asked for per page (the server may answer with fewer, e.g. 20).")
    deal_cliente_id: str | None = Field(default=None, description="cliente_id given to vendas created from local deals (GestaoClick requires one).")
    deal_vendedor_id: str | None = Field(default=None, description="vendedor_id given to vendas created from local deals (optional).")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=8, description="Attempts per request on 429, 5xx and network errors.")
    account: str = Field(default="", description="The provider account this connection belongs to: connections naming the same account share its API budget (default: told apart by token).")

    def client(self, stats: CallStats | None = None) -> GestaoClickClient:
        return GestaoClickClient(
            access_token=self.access_token,
            secret_access_token=self.secret_access_token,
            base_url=self.base_url,
            per_second=self.per_second,
            daily_limit=self.daily_limit,
            page_size=self.page_size,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
            account=self.account,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[GestaoClickChangeReader, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield GestaoClickChangeReader(client, strategy=strategy if strategy in ("auto", "list", "scan") else "auto", logger=logger, mapping=mapping), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[GestaoClickWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield GestaoClickWriter(client, deal_cliente_id=self.deal_cliente_id, deal_vendedor_id=self.deal_vendedor_id, mapping=mapping), stats
        finally:
            client.close()
