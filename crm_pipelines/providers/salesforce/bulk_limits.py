"""The org's daily Bulk API allocations, read from ``/limits`` before a bulk job is started.

``GET /services/data/vXX.X/limits`` reports, per rolling 24 hours, ``{"Max": N, "Remaining": R}``
for (PROVIDERS.md §2.6 and §10):

* ``DailyBulkV2QueryJobs``: query jobs (10,000);
* ``DailyBulkV2QueryFileStorageMB``: the size of query results (1 TB);
* ``DailyBulkApiBatches``: batches (15,000, shared with Bulk API 1.0); an ingest job takes one per
  10,000 records it processes, a query job none;
* ``DailyApiRequests``: every REST call, the bulk ones included (of which this client keeps to its
  share, ``max_share_of_daily_allocation``).

Before a job is started, :class:`OrgLimits` tells whether the job fits what is left. If it does not
and the regular path (SOQL pages, sObject Collections) fits the API requests left, the caller takes
the regular path and says why (:class:`~crm_pipelines.sync.bulk.BulkChoice`); if neither fits, the
sync stops with :class:`QuotaExhausted` before any of it is spent. A job refused by the org anyway
(another user of the org spent the rest in between) raises :class:`QuotaExhausted` with one of
:data:`~crm_pipelines.providers.salesforce.bulk.LIMIT_CODES` (:func:`refused_for_limits`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.providers.salesforce.api import COLLECTION_MAX, PROVIDER, QUERY_BATCH_SIZE, SalesforceClient
from crm_pipelines.providers.salesforce.bulk import LIMIT_CODES, RESULT_PAGE
from crm_pipelines.sync.bulk import BulkChoice

log = logging.getLogger(__name__)

QUERY_JOBS = "DailyBulkV2QueryJobs"
QUERY_STORAGE = "DailyBulkV2QueryFileStorageMB"
BATCHES = "DailyBulkApiBatches"
REQUESTS = "DailyApiRequests"
#: Records per ingest batch: each takes one of ``DailyBulkApiBatches``.
BATCH_RECORDS = 10_000
#: A generous size of one result row, to estimate the results' storage.
ROW_BYTES = 1024
#: Status calls a job is expected to take (polls back off to one every 5 s).
POLLS = 20
#: E-mail (and document) values per look-up query of an export (see the writer's ``match``).
LOOKUP_VALUES = 300


@dataclass(frozen=True)
class Allocation:
    name: str
    max: int
    remaining: int

    def __str__(self) -> str:
        return f"{self.name} {self.remaining:,} of {self.max:,} left"


@dataclass(frozen=True)
class OrgLimits:
    """What ``/limits`` says is left today, and how many API requests this client may still send."""

    allocations: dict[str, Allocation]
    requests_usable: int | None

    @classmethod
    def read(cls, client: SalesforceClient) -> OrgLimits:
        """One ``GET /limits``; an org that does not answer it (permission) is taken as unlimited."""
        try:
            body = client.limits()
        except QuotaExhausted:
            raise
        except ProviderError as exc:
            if exc.status not in (403, 404):
                raise
            log.warning("salesforce: /limits answered %s (%s); the bulk allocations cannot be checked before the job", exc.status, exc.provider_message)
            body = {}
        allocations = {name: Allocation(name, int(value.get("Max") or 0), int(value.get("Remaining") or 0))
                       for name, value in body.items() if isinstance(value, dict) and "Remaining" in value}
        requests = allocations.get(REQUESTS)
        share = client.guard.max_share if client.guard is not None else 1.0
        # Requests past this client's share of the allocation are left to the org's other users.
        usable = None if requests is None else max(math.floor(requests.max * share) - (requests.max - requests.remaining), 0)
        return cls(allocations, usable)

    # ------------------------------------------------------------------ choices

    def for_query(self, records: int | None, what: str) -> BulkChoice:
        """Whether a query job reading ``records`` rows (None: unknown) fits; else whether SOQL pages do."""
        count = records or 0
        short = self._short(QUERY_JOBS, 1) + self._short(QUERY_STORAGE, max(math.ceil(count * ROW_BYTES / 2**20), 1))
        short += self._short_requests(1 + POLLS + math.ceil(count / RESULT_PAGE))
        regular = math.ceil(count / QUERY_BATCH_SIZE)
        return self._choose(short, regular, f"a Bulk API 2.0 query job reading {_records(records)} {what} records", "SOQL pages")

    def for_ingest(self, records: int, what: str) -> BulkChoice:
        """Whether ingest jobs writing ``records`` rows fit; else whether sObject Collections do.

        An export sends its updates and its creates as two jobs, each rounding its batches up.
        """
        lookups = math.ceil(records / LOOKUP_VALUES)
        short = self._short(BATCHES, math.ceil(records / BATCH_RECORDS) + 1)
        short += self._short_requests(lookups + 2 * (5 + POLLS))
        regular = lookups + math.ceil(records / COLLECTION_MAX)
        return self._choose(short, regular, f"Bulk API 2.0 ingest jobs writing {records:,} {what} records", "sObject Collections")

    def _short(self, name: str, needed: int) -> list[str]:
        allocation = self.allocations.get(name)
        return [f"{allocation} (needs {needed:,})"] if allocation is not None and allocation.remaining < needed else []

    def _short_requests(self, needed: int) -> list[str]:
        if self.requests_usable is None or self.requests_usable >= needed:
            return []
        return [f"{REQUESTS}: {self.requests_usable:,} left to this sync (needs about {needed:,})"]

    def _choose(self, short: list[str], regular_calls: int, bulk: str, regular: str) -> BulkChoice:
        if not short:
            return BulkChoice(True)
        reason = f"{bulk} does not fit today's allocation: {'; '.join(short)}"
        if self.requests_usable is None or self.requests_usable >= regular_calls:
            return BulkChoice(False, f"{reason}; taking {regular} instead")
        raise QuotaExhausted(
            PROVIDER,
            f"{reason}; {regular} would need about {regular_calls:,} API requests and {self.requests_usable:,} are left to this sync. "
            "The sync stops here and resumes on a later run, as the rolling 24-hour usage goes down.",
            category="BULK_ALLOCATION",
        )


def refused_for_limits(exc: Exception) -> bool:
    """Whether the org refused a bulk job because a daily bulk allocation is spent."""
    return isinstance(exc, QuotaExhausted) and exc.category in LIMIT_CODES


def _records(records: int | None) -> str:
    return "all" if records is None else f"{records:,}"


__all__ = ["Allocation", "OrgLimits", "refused_for_limits"]
