"""The Dagster resource giving assets access to one Bling account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.bling.api import BASE_URL, PER_SECOND, BlingClient
from crm_pipelines.providers.bling.reader import BlingChangeReader
from crm_pipelines.providers.bling.writer import BlingWriter


class BlingResource(dg.ConfigurableResource):
    """A Bling account: OAuth app credentials, a refresh token, the base URL and the 3/s limit."""

    client_id: str = Field(description="OAuth app client id (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    client_secret: str = Field(description="OAuth app client secret; also the webhook signing key.", json_schema_extra={"dagster__is_secret": True})
    refresh_token: str = Field(description="Refresh token from the app's authorization; refreshed tokens are kept for the process.", json_schema_extra={"dagster__is_secret": True})
    access_token: str = Field(default="", description="Optional current access token (saves one refresh at start).", json_schema_extra={"dagster__is_secret": True})
    base_url: str = Field(default=BASE_URL, description="API base URL; a simulator's URL in development.")
    per_second: int = Field(default=PER_SECOND, description="Requests per second (Bling: 3 per account).")
    verify_pages: bool = Field(default=True, description="Re-read pages when records change during a scan (page-number paging can skip records).")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=8, description="Attempts per request on 429, 5xx and network errors.")
    account: str = Field(default="", description="The authorized Bling company this connection belongs to: its rotated tokens are kept apart from other companies' of the same app.")
    _database: Any = PrivateAttr(default=None)

    def bind_database(self, engine: Any) -> None:
        """Keep the rotated refresh tokens in the database of ``engine`` (the integration's store)."""
        self._database = engine

    def client(self, stats: CallStats | None = None) -> BlingClient:
        from crm_pipelines.storage.tokens import TokenStore

        return BlingClient(
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            access_token=self.access_token or None,
            base_url=self.base_url,
            per_second=self.per_second,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
            account=self.account,
            tokens=TokenStore.for_engine(self._database) if self._database is not None else None,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[BlingChangeReader, CallStats]]:
        """``strategy`` is accepted for the common interface; Bling has one way to read (list + date filter)."""
        stats = CallStats()
        client = self.client(stats)
        try:
            yield BlingChangeReader(client, verify_pages=self.verify_pages, logger=logger, mapping=mapping), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[BlingWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield BlingWriter(client, mapping=mapping), stats
        finally:
            client.close()
