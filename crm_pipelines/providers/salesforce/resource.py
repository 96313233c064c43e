"""The Dagster resource giving assets access to one Salesforce org."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from crm_pipelines.core.http import CallStats
from crm_pipelines.providers.salesforce.api import (
    API_VERSION,
    DEFAULT_MAX_SHARE,
    DEFAULT_MAX_SLOWDOWN_S,
    DEFAULT_SLOWDOWN_FROM,
    LOGIN_URL,
    QUERY_BATCH_SIZE,
    SalesforceClient,
)
from crm_pipelines.providers.salesforce.mapping import CURRENCY_FIELD, DOCUMENT_FIELD, EXTERNAL_ID_FIELD, Mapping
from crm_pipelines.providers.salesforce.reader import SalesforceChangeReader
from crm_pipelines.providers.salesforce.writer import SalesforceWriter


class SalesforceResource(dg.ConfigurableResource):
    """A Salesforce org reached through a connected app's refresh token.

    The org's daily API allocation is shared with its other users: the sync keeps to
    ``max_share_of_daily_allocation`` of it, slowing down from ``slow_down_from_share``.
    """

    client_id: str = Field(description="Connected app consumer key (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    client_secret: str = Field(description="Connected app consumer secret (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    refresh_token: str = Field(description="OAuth refresh token of the integration user (from an environment variable).", json_schema_extra={"dagster__is_secret": True})
    login_url: str = Field(default=LOGIN_URL, description="https://login.salesforce.com, https://test.salesforce.com (sandboxes), a My Domain URL, or a simulator's URL.")
    api_version: str = Field(default=API_VERSION, description="REST API version, e.g. v66.0.")
    document_field: str = Field(default=DOCUMENT_FIELD, description="Custom text field holding CPF/CNPJ on Contact and Account.")
    external_id_field: str = Field(default=EXTERNAL_ID_FIELD, description="Custom unique External ID field (Contact, Account, Opportunity) keying this project's creates.")
    currency_field: str = Field(default=CURRENCY_FIELD, description="Opportunity currency field (multi-currency orgs); empty for single-currency orgs.")
    max_share_of_daily_allocation: float = Field(default=DEFAULT_MAX_SHARE, gt=0, le=1, description="Stop (QuotaExhausted) before the org's rolling 24 h API usage passes this share.")
    slow_down_from_share: float = Field(default=DEFAULT_SLOWDOWN_FROM, ge=0, le=1, description="Pace calls once usage passes this share of the allocation.")
    max_slowdown_s: float = Field(default=DEFAULT_MAX_SLOWDOWN_S, ge=0, description="Longest pause before a call, reached at the maximum share.")
    query_batch_size: int = Field(default=QUERY_BATCH_SIZE, ge=200, le=2000, description="Sforce-Query-Options batchSize hint (200..2000).")
    timeout_s: float = Field(default=60.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per request on 5xx, 429, concurrency limits and network errors.")

    def mapping(self, loaded: Any = None) -> Mapping:
        """The org's field mapping: ``loaded`` (the integration's, else the built-in one) under the org's field names."""
        return Mapping(document_field=self.document_field, external_id_field=self.external_id_field, currency_field=self.currency_field or None,
                       loaded=loaded)

    def client(self, stats: CallStats | None = None) -> SalesforceClient:
        return SalesforceClient(
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            login_url=self.login_url,
            api_version=self.api_version,
            max_share_of_daily_allocation=self.max_share_of_daily_allocation,
            slow_down_from_share=min(self.slow_down_from_share, self.max_share_of_daily_allocation),
            max_slowdown_s=self.max_slowdown_s,
            query_batch_size=self.query_batch_size,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            stats=stats,
        )

    @contextmanager
    def open_reader(self, *, strategy: str = "auto", logger: logging.Logger | Any = None, mapping: Any = None) -> Iterator[tuple[SalesforceChangeReader, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield SalesforceChangeReader(client, mapping=self.mapping(mapping), strategy="soql" if strategy in ("list", "search") else strategy, logger=logger), stats
        finally:
            client.close()

    @contextmanager
    def open_writer(self, *, mapping: Any = None) -> Iterator[tuple[SalesforceWriter, CallStats]]:
        stats = CallStats()
        client = self.client(stats)
        try:
            yield SalesforceWriter(client, mapping=self.mapping(mapping)), stats
        finally:
            client.close()
