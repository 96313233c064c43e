"""The Dagster resource giving assets access to one Shopify store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.shopify.api import (
    API_VERSION,
    BASE_URL,
    PLUS_BUCKET,
    PLUS_RESTORE_RATE,
    STANDARD_BUCKET,
    STANDARD_RESTORE_RATE,
    ShopifyClient,
)
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.providers.shopify.writer import ShopifyWriter


class ShopifyResource(dg.ConfigurableResource):
    """A Shopify store: Admin API token, store address, API version and its plan's cost bucket."""

    access_token: str = Field(description="Admin API access token (shpat_..., from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    base_url: str = Field(default=BASE_URL, description="https://<store>.myshopify.com; a simulator's URL in development.")
    api_version: str = Field(default=API_VERSION, description="Admin API version (quarterly, e.g. 2026-10).")
    plan: str = Field(default="standard", description="standard (2,000 points, 100/s) or plus (20,000 points, 1,000/s); answers correct it.")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=8, description="Attempts per request on 5xx and network errors.")
    account: str = Field(default="", description="The provider account this connection belongs to: connections naming the same account share its API budget (default: told apart by token).")

    def client(self, stats: CallStats | None = None) -> ShopifyClient:
        size, rate = (PLUS_BUCKET, PLUS_RESTORE_RATE) if self.plan.lower() == "plus" else (STANDARD_BUCKET, STANDARD_RESTORE_RATE)
        return ShopifyClient(
            access_token=self.access_token,
            base_url=self.base_url,
            api_version=self.api_version,
            bucket_size=size,
            restore_rate=rate,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
            account=self.account,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[ShopifyChangeReader, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield ShopifyChangeReader(client, strategy=strategy, logger=logger, mapping=mapping), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[ShopifyWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield ShopifyWriter(client, mapping=mapping), stats
        finally:
            client.close()
