"""A running job's progress, written to its row every few seconds (one short UPDATE each time).

A job covers one or more entities (an import run reads contacts, companies and deals one after
the other); each step keeps its entity's count and total, and the row shows the sums, the percent
(the mean of the entities' shares) and an ETA from the time spent so far.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from crm_pipelines.jobs.model import Job
from crm_pipelines.jobs.store import JobStore

#: Seconds between two progress writes of one job (``CRM_JOB_PROGRESS_SECONDS``).
PROGRESS_EVERY_S = float(os.environ.get("CRM_JOB_PROGRESS_SECONDS", "2"))


class JobProgress:
    """Progress of one job, shared by the steps of its run through the row's ``entities``."""

    def __init__(self, jobs: JobStore, job: Job, entities: Sequence[str], *, every_s: float = PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, interrupt: Callable[[], None] | None = None) -> None:
        self.jobs = jobs
        self.interrupt = interrupt
        self.job = job
        self.every_s = every_s
        self.clock = clock
        self.entities: dict[str, dict] = {e: dict(job.entities.get(e) or {"processed": 0, "total": None, "estimate": False, "done": False})
                                          for e in entities}
        self.counts = {"created": job.created, "updated": job.updated, "rejected": job.rejected}
        self._base = dict(self.counts)
        self._last_write = clock()
        self.writes = 0

    def page(self, entity: str, processed: int, total: int | None = None, *, estimate: bool = False,
             created: int = 0, updated: int = 0, rejected: int = 0) -> None:
        """What a step has done so far on ``entity``; written when the last write is ``every_s`` old.

        A step calls this between two pages (or batches), where stopping leaves nothing half-done:
        after each write, ``interrupt`` may raise to stop the step (its run is being cancelled)."""
        state = self.entities.setdefault(entity, {"processed": 0, "total": None, "estimate": False, "done": False})
        state["processed"] = processed
        if total is not None:
            state["total"], state["estimate"] = total, estimate
        self._step_counts(created, updated, rejected)
        if self.clock() - self._last_write >= self.every_s:
            self.flush()
            if self.interrupt is not None:
                self.interrupt()

    def entity_done(self, entity: str, processed: int, *, created: int = 0, updated: int = 0, rejected: int = 0) -> None:
        """A step finished ``entity``: its share is whole, its counts final (written now)."""
        state = self.entities.setdefault(entity, {})
        state.update(processed=processed, done=True)
        if state.get("total") is None or state["total"] < processed:
            state["total"], state["estimate"] = processed, False
        self._step_counts(created, updated, rejected)
        self._base = dict(self.counts)
        self.flush()

    def _step_counts(self, created: int, updated: int, rejected: int) -> None:
        self.counts = {"created": self._base["created"] + created, "updated": self._base["updated"] + updated,
                       "rejected": self._base["rejected"] + rejected}

    def figures(self) -> dict:
        """The row's progress columns as they stand."""
        shares = []
        for state in self.entities.values():
            if state.get("done"):
                shares.append(1.0)
            elif state.get("total"):
                shares.append(min(state["processed"] / state["total"], 0.99))
            else:
                shares.append(0.0)
        share = sum(shares) / len(shares) if shares else 0.0
        totals = [s.get("total") for s in self.entities.values()]
        known = all(t is not None for t in totals)
        eta = None
        started = self.job.started_at
        if started is not None and 0 < share < 1:
            elapsed = (datetime.now(timezone.utc) - started).total_seconds()
            eta = round(elapsed / share - elapsed, 1)
        return {
            "processed": sum(s.get("processed", 0) for s in self.entities.values()),
            "total": sum(t for t in totals if t is not None) if any(t is not None for t in totals) else None,
            "total_is_estimate": not known or any(s.get("estimate") for s in self.entities.values()),
            "percent": round(share * 100, 1),
            "eta_s": eta,
            "entities": self.entities,
            **self.counts,
        }

    def flush(self) -> None:
        self.jobs.update(self.job.id, **self.figures())
        self._last_write = self.clock()
        self.writes += 1


__all__ = ["PROGRESS_EVERY_S", "JobProgress"]
