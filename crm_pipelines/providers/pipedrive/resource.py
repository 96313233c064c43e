"""The Dagster resource giving assets access to one Pipedrive company."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.pipedrive.api import BASE_URL, BURST_UNITS, PLANS, SEARCH_BURST, PipedriveClient
from crm_pipelines.providers.pipedrive.reader import PipedriveChangeReader
from crm_pipelines.providers.pipedrive.writer import PipedriveWriter


class PipedriveResource(dg.ConfigurableResource):
    """A Pipedrive company: API token, base URL and the burst limit of its plan."""

    api_token: str = Field(description="Personal API token (from an environment variable); sent as the x-api-token header.", json_schema_extra={"dagster__is_secret": True})
    base_url: str = Field(default=BASE_URL, description="https://{company}.pipedrive.com or https://api.pipedrive.com; a simulator's URL in development.")
    burst_limit: int = Field(default=PLANS["lite"][0], description="Burst limit per 2 s of the plan (Lite 20, Growth 40, Premium 100, Ultimate 120); the headers correct it.")
    burst_unit: str = Field(default="requests", description="What the burst limit counts: requests (official docs) or tokens.")
    search_burst: int = Field(default=SEARCH_BURST, description="Search requests per 2 s.")
    write_concurrency: int = Field(default=8, ge=1, le=32, description="Single-record writes in flight at once (the limiter paces them).")
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=8, description="Attempts per request on 429, 5xx and network errors.")
    account: str = Field(default="", description="The provider account this connection belongs to: connections naming the same account share its API budget (default: told apart by token).")

    def client(self, stats: CallStats | None = None) -> PipedriveClient:
        if self.burst_unit not in BURST_UNITS:
            raise dg.Failure(f"burst_unit must be one of {', '.join(BURST_UNITS)}, not {self.burst_unit!r}", allow_retries=False)
        return PipedriveClient(
            api_token=self.api_token,
            base_url=self.base_url,
            burst_limit=self.burst_limit,
            burst_unit=self.burst_unit,
            search_burst=self.search_burst,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
            account=self.account,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[PipedriveChangeReader, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield PipedriveChangeReader(client, strategy=strategy, logger=logger, mapping=mapping), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[PipedriveWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield PipedriveWriter(client, concurrency=self.write_concurrency, mapping=mapping), stats
        finally:
            client.close()
