"""The ``sync_jobs`` rows: created when a job is asked for (or when its run starts), updated as it works."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.exc import IntegrityError

from crm_pipelines.integrations.model import Integration
from crm_pipelines.jobs.model import FINISHED, KINDS, STATES, Job
from crm_pipelines.storage.schema import sync_jobs

#: Every column a :class:`Job` reads.
_COLUMNS = [c for c in sync_jobs.c]


class JobNotFound(LookupError):
    """No job has this id."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _job(row: Any) -> Job:
    values = dict(row._mapping)
    values["params"] = values.get("params") or {}
    values["entities"] = values.get("entities") or {}
    return Job(**values)


class JobStore:
    """Reads and writes jobs; every write is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        kind: str,
        provider: str,
        integration: Integration | None = None,
        *,
        entity: str | None = None,
        trigger: str = "manual",
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        state: str = "queued",
        callback_url: str | None = None,
        notify: bool = False,
    ) -> Job:
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        now = utcnow()
        values = dict(
            kind=kind, state=state, provider=provider, entity=entity, trigger=trigger, params=params or {}, run_id=run_id,
            integration_id=integration.id if integration else None, integration_key=integration.key if integration else None,
            store_id=integration.store_id if integration else None, processed=0, total_is_estimate=False, created=0, updated=0,
            rejected=0, entities={}, callback_url=callback_url, notify=notify, cancel_requested=False, created_at=now, updated_at=now,
            started_at=now if state == "running" else None,
        )
        with self.engine.begin() as conn:
            job_id = conn.execute(sync_jobs.insert().values(**values)).inserted_primary_key[0]
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(sync_jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return _job(row)

    def by_run_id(self, run_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(sync_jobs.c.run_id == run_id)).first()
        return _job(row) if row else None

    def list(self, *, state: str | None = None, provider: str | None = None, integration_key: str | None = None,
             store_id: int | None = None, kind: str | None = None, limit: int = 50, before_id: int | None = None) -> list[Job]:
        """Newest first."""
        query = select(*_COLUMNS).order_by(sync_jobs.c.id.desc()).limit(limit)
        for column, value in ((sync_jobs.c.state, state), (sync_jobs.c.provider, provider), (sync_jobs.c.integration_key, integration_key),
                              (sync_jobs.c.store_id, store_id), (sync_jobs.c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        if before_id is not None:
            query = query.where(sync_jobs.c.id < before_id)
        with self.engine.connect() as conn:
            return [_job(row) for row in conn.execute(query)]

    def update(self, job_id: int, **values: Any) -> None:
        """Set columns of a job that has not finished (a finished job keeps its final figures)."""
        values["updated_at"] = utcnow()
        with self.engine.begin() as conn:
            conn.execute(update(sync_jobs).where(and_(sync_jobs.c.id == job_id, sync_jobs.c.state.not_in(FINISHED))).values(**values))

    def attach_run(self, job_id: int, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(sync_jobs).where(sync_jobs.c.id == job_id).values(run_id=run_id, updated_at=utcnow()))

    def for_run(self, run_id: str, tags: dict[str, str], *, kind: str, provider: str, integration: Integration | None,
                entity: str | None = None, params: dict[str, Any] | None = None) -> Job:
        """The job of a run, made from the run's tags when nobody asked for it first (a schedule, a
        sensor, the UI); marked running. A ``crm/job_id`` tag names the job the API or CLI created."""
        job_id = tags.get("crm/job_id")
        job = self.get(int(job_id)) if job_id and job_id.isdigit() else self.by_run_id(run_id)
        if job is None:
            trigger = tags.get("crm/trigger") or ("backfill" if tags.get("dagster/backfill") else "ui")
            try:
                job = self.create(kind, provider, integration, entity=entity, trigger=trigger, params=params, run_id=run_id, state="running")
            except IntegrityError:  # another step of the same run made it first
                job = self.by_run_id(run_id)
                assert job is not None
        if job.run_id != run_id or job.state == "queued":
            now = utcnow()
            with self.engine.begin() as conn:
                conn.execute(update(sync_jobs).where(and_(sync_jobs.c.id == job.id, sync_jobs.c.state == "queued"))
                             .values(state="running", started_at=now, updated_at=now))
                if job.run_id != run_id:
                    conn.execute(update(sync_jobs).where(sync_jobs.c.id == job.id).values(run_id=run_id))
            job = self.get(job.id)
        return job

    def finish(self, job_id: int, state: str, *, error: str | None = None, **values: Any) -> bool:
        """Give a job its final state; False when it had one already (so it is notified once)."""
        if state not in FINISHED:
            raise ValueError(f"{state!r} is not a final state")
        now = utcnow()
        values.update(state=state, finished_at=now, updated_at=now, eta_s=0.0 if state == "succeeded" else None)
        if error is not None:
            values["error"] = error[:4000]
        if state == "succeeded":
            values["percent"] = 100.0
        with self.engine.begin() as conn:
            done = conn.execute(update(sync_jobs).where(and_(sync_jobs.c.id == job_id, sync_jobs.c.state.not_in(FINISHED))).values(**values))
        return done.rowcount == 1

    def request_cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        if not job.finished:
            self.update(job_id, cancel_requested=True)
        return self.get(job_id)

    def to_notify(self, limit: int = 100) -> list[Job]:
        """Finished jobs that asked to be notified (alerts or a callback URL) and were not yet."""
        query = (select(*_COLUMNS).where(sync_jobs.c.state.in_(FINISHED), sync_jobs.c.notified_at.is_(None),
                                         (sync_jobs.c.notify.is_(True)) | (sync_jobs.c.callback_url.is_not(None)))
                 .order_by(sync_jobs.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [_job(row) for row in conn.execute(query)]

    def mark_notified(self, job_id: int) -> bool:
        """Claim a job's notification; False when another process claimed it first."""
        with self.engine.begin() as conn:
            done = conn.execute(update(sync_jobs).where(and_(sync_jobs.c.id == job_id, sync_jobs.c.notified_at.is_(None))).values(notified_at=utcnow()))
        return done.rowcount == 1


__all__ = ["JobNotFound", "JobStore"]
