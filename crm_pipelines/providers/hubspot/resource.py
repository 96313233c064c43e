"""The Dagster resource giving assets access to one HubSpot account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.hubspot.api import (
    BASE_URL,
    BURST_WINDOW_S,
    DEFAULT_BURST_LIMIT,
    SEARCH_PER_SECOND,
    HubSpotClient,
)
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.providers.hubspot.writer import HubSpotWriter


class HubSpotResource(dg.ConfigurableResource):
    """A HubSpot account: token, base URL and the limits of its tier (Free/Starter 100, Pro/Enterprise 190 per 10 s)."""

    access_token: str = Field(description="Private-app or OAuth access token (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    base_url: str = Field(default=BASE_URL, description="API base URL; a simulator's URL in development.")
    burst_limit: int = Field(default=DEFAULT_BURST_LIMIT, description="Requests allowed per ten-second window (the headers correct it).")
    search_per_second: int = Field(default=SEARCH_PER_SECOND, description="Search requests per second (HubSpot: 5 per account).")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=8, description="Attempts per request on 429, 5xx and network errors.")
    account: str = Field(default="", description="The provider account this connection belongs to: connections naming the same account share its API budget (default: told apart by token).")

    def client(self, stats: CallStats | None = None) -> HubSpotClient:
        return HubSpotClient(
            access_token=self.access_token,
            base_url=self.base_url,
            burst_limit=self.burst_limit,
            burst_window_s=BURST_WINDOW_S,
            search_per_second=self.search_per_second,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
            account=self.account,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[HubSpotChangeReader, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield HubSpotChangeReader(client, strategy=strategy, logger=logger, mapping=mapping), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[HubSpotWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield HubSpotWriter(client, mapping=mapping), stats
        finally:
            client.close()
