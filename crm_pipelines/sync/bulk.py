"""What readers and writers share when they take a provider's bulk path (see docs/bulk.md).

* :class:`BulkJobMemory` keeps the id of the provider job a run started in the entity's
  ``sync_state`` row (``last_metrics["bulk_jobs"][direction]``), committed before the run waits
  for it: a run killed while the job runs finds the job again by its id and does not start a
  second one.
* :class:`BulkContext` is what the importer or exporter tells a reader or writer: whether the
  bulk path may be taken (a full sync, a backfill, an export) and the size from which it is.
* :class:`BulkProgress` is a job's state and figures, logged as they change and returned in the
  run's metadata.
* :class:`BulkChoice` is a reader's or writer's answer when the provider's daily bulk allocations
  are checked before a job: the bulk path, or the regular one and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from crm_pipelines.storage.schema import sync_state

log = logging.getLogger(__name__)

#: Records from which a full sync, backfill or export goes through the bulk API (IntegrationSettings.bulk_threshold).
DEFAULT_BULK_THRESHOLD = 10_000
KEY = "bulk_jobs"
#: Seconds between two calls of :attr:`BulkProgress.interrupt` while a job is polled.
INTERRUPT_EVERY_S = 2.0


class BulkJobMemory:
    """The provider job one integration's entity has running, by direction (``import``/``export``)."""

    def __init__(self, store: Any, target: Any, entity: str, direction: str) -> None:
        self.store, self.integration, self.entity, self.direction = store, store.scope(target), entity, direction

    def _jobs(self) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            metrics = conn.execute(select(sync_state.c.last_metrics).where(
                sync_state.c.integration_id == self.integration.id, sync_state.c.entity == self.entity)).scalar()
        return dict((metrics or {}).get(KEY) or {})

    def get(self) -> dict[str, Any] | None:
        return self._jobs().get(self.direction)

    def put(self, job: dict[str, Any] | None) -> None:
        """Remember ``job`` (None: forget it), keeping the rest of the row as it is."""
        state = self.store.sync_state(self.integration, self.entity)
        jobs = dict(state.last_metrics.get(KEY) or {})
        if job is None:
            jobs.pop(self.direction, None)
        else:
            jobs[self.direction] = job
        state.last_metrics = {k: v for k, v in state.last_metrics.items() if k != KEY} | ({KEY: jobs} if jobs else {})
        self.store.save_sync_state(state)

    def clear(self) -> None:
        self.put(None)

    def read(self, key: str) -> dict[str, Any] | None:
        """The remembered query job of the read called ``key`` (its lower bound: the upper moves with each run)."""
        job = self.get()
        return job if job and job.get("kind") == "query" and job.get("key") == key else None

    def family(self) -> list[BulkJobMemory]:
        """This memory and every other of its direction (``export``, ``export:slice_1``...): slices of one export."""
        names = [name for name in self._jobs() if name == self.direction or name.startswith(self.direction + ":")]
        return [BulkJobMemory(self.store, self.integration, self.entity, name) for name in names]

    def pending(self) -> dict[str, Any]:
        """``{"bulk_jobs": ...}`` to carry over when the row's metrics are rewritten (empty if none)."""
        jobs = self._jobs()
        return {KEY: jobs} if jobs else {}


@dataclass
class BulkContext:
    """What the caller allows: the bulk path (``eligible``) above ``threshold`` records; where jobs
    are remembered; what may stop the wait for a job (``interrupt``, see :class:`BulkProgress`)."""

    memory: BulkJobMemory | None = None
    eligible: bool = False
    threshold: int | None = DEFAULT_BULK_THRESHOLD
    interrupt: Callable[[], None] | None = None

    def wants(self, count: Callable[[], int], *, forced: bool = False) -> bool:
        """Whether to take the bulk path: forced, or eligible and ``count()`` above the threshold."""
        if forced:
            return True
        if not self.eligible or self.threshold is None:
            return False
        return count() > self.threshold


@dataclass(frozen=True)
class BulkChoice:
    """The bulk path (``bulk``), or the regular one because the bulk job does not fit (``reason``)."""

    bulk: bool
    reason: str = ""


@dataclass
class BulkProgress:
    """A bulk job as the run saw it last: its id, state, records processed and the calls it took."""

    job_id: str = ""
    state: str = ""
    records_processed: int = 0
    records_failed: int = 0
    polls: int = 0
    resumed: bool = False
    fallback: str = ""
    started: float = field(default_factory=time.monotonic)
    logger: Any = None
    #: Called as a job is polled (every ``INTERRUPT_EVERY_S`` at most); may raise to stop the
    #: wait, as a cancelled run does. A job of ours is remembered by then, and the next run takes
    #: it up; Shopify also polls another app's operation before starting its own.
    interrupt: Callable[[], None] | None = None
    _interrupt_due: float = field(default=0.0, init=False, repr=False)

    def fall_back(self, reason: str) -> None:
        """The regular path is taken instead of a job (``reason``): logged, and kept for the metadata."""
        self.fallback = reason
        (self.logger or log).warning("bulk API not used: %s", reason)

    def update(self, state: str, processed: int = 0, failed: int = 0) -> None:
        """Record what the provider answered; log when the state or the count changes."""
        changed = (state, processed) != (self.state, self.records_processed)
        self.state, self.records_processed, self.records_failed = state, processed, failed
        if changed:
            (self.logger or log).info("bulk job %s: %s, %d records processed%s (%.0fs)", self.job_id, state, processed,
                                      f", {failed} failed" if failed else "", time.monotonic() - self.started)
        if self.interrupt is not None and time.monotonic() >= self._interrupt_due:
            self._interrupt_due = time.monotonic() + INTERRUPT_EVERY_S
            self.interrupt()

    def metadata(self) -> dict[str, Any]:
        fallback = {"bulk_fallback": self.fallback} if self.fallback else {}
        if self.fallback and not self.job_id:
            return fallback
        return {"bulk_job_id": self.job_id, "bulk_state": self.state, "bulk_records_processed": self.records_processed,
                "bulk_records_failed": self.records_failed, "bulk_polls": self.polls, "bulk_resumed": self.resumed} | fallback


def merged_metadata(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Bulk figures of several steps as one: counts added up, the last job's id and state."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            summable = isinstance(value, int) and not isinstance(value, bool)
            total[key] = total.get(key, 0) + value if summable else (value or total.get(key)) if key == "bulk_resumed" else value
    return total


def poll_interval(polls: int) -> float:
    """Seconds before the next status call: 0.1 s at first, doubling up to 5 s (each call is charged)."""
    return min(0.05 * 2 ** polls, 5.0)


__all__ = ["DEFAULT_BULK_THRESHOLD", "BulkChoice", "BulkContext", "BulkJobMemory", "BulkProgress", "poll_interval"]
