"""Export leases: one writer per integration and entity at a time (see docs/exactly-once.md).

A lease is a row of ``export_leases`` naming its owner and an expiry. The owner renews the
expiry from a background thread while it exports; a process that dies stops renewing and loses
the lease when it expires, so the next export takes it over. Taking, renewing and releasing are
compare-and-set statements, the same on SQLite and PostgreSQL.

Owners: ``cli:<host>:<pid>:<random>`` for an export started outside Dagster, ``dagster:<run id>``
for every step of one Dagster run (the steps of a run share its lease; different runs do not).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.storage.bulk import bulk_for
from crm_pipelines.storage.schema import export_leases

log = logging.getLogger(__name__)

#: Seconds a lease stays valid without renewal: how long a dead exporter blocks the next one.
LEASE_TTL_S = float(os.environ.get("CRM_EXPORT_LEASE_TTL_S", "30"))
#: Seconds an export waits for another one of the same integration and entity to finish.
LEASE_WAIT_S = 900.0


class ExportBusy(ConfigurationError):
    """Another export of the same integration and entity holds the lease."""


class LeaseLost(RuntimeError):
    """This export no longer holds its lease (it could not renew it in time, or another took it)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cli_owner() -> str:
    return f"cli:{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_owner(run_id: str) -> str:
    return f"dagster:{run_id}"


@dataclass(frozen=True)
class Holder:
    owner: str
    acquired_at: datetime
    expires_at: datetime


class ExportLease:
    """The lease of one (integration, entity) for ``owner``; a context manager that renews it."""

    def __init__(self, engine: Engine, integration: Any, entity: str, owner: str, *, ttl_s: float | None = None, release: bool = True) -> None:
        self.engine = engine
        self.integration_id = int(integration.id)
        self.provider = integration.provider
        self.label = f"{getattr(integration, 'label', integration.provider)}/{entity}"
        self.entity = entity
        self.owner = owner
        self.ttl_s = LEASE_TTL_S if ttl_s is None else ttl_s
        self.release_on_exit = release
        self._valid_until = 0.0  # monotonic time up to which the lease is known to be ours
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bulk = bulk_for(engine.dialect)

    # ------------------------------------------------------------------ statements

    def _key(self):
        return and_(export_leases.c.integration_id == self.integration_id, export_leases.c.entity == self.entity)

    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free, expired or already ours; otherwise the current holder."""
        started, now = time.monotonic(), _now()
        expires = now + timedelta(seconds=self.ttl_s)
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(export_leases)
        with self.engine.begin() as conn:
            self._bulk.start_write(conn)  # SQLite: the write lock first, so the row read stays true until the commit
            row = self._read(conn)
            if row is None:
                values = {"integration_id": self.integration_id, "entity": self.entity, "provider": self.provider, "owner": self.owner, "acquired_at": now, "expires_at": expires}
                conn.execute(insert.values(values).on_conflict_do_nothing())
            elif row.owner == self.owner or row.expires_at <= now:
                conn.execute(
                    update(export_leases)
                    .where(self._key(), export_leases.c.owner == row.owner, export_leases.c.expires_at == row.expires_at)
                    .values(owner=self.owner, expires_at=expires, acquired_at=row.acquired_at if row.owner == self.owner else now)
                )
            else:
                return Holder(row.owner, row.acquired_at, row.expires_at)
            # Read back (row counts are not reliable across drivers): ours only if our exact expiry is there.
            after = self._read(conn)
        if after is None or after.owner != self.owner or after.expires_at != expires:  # another process won the race
            return Holder(after.owner, after.acquired_at, after.expires_at) if after is not None else Holder("?", now, now)
        if row is not None and row.owner != self.owner:
            log.warning("%s: took over the export lease of %s, expired at %s", self.label, row.owner, row.expires_at.isoformat())
        self._valid_until = started + self.ttl_s
        self._lost = False
        return None

    def _read(self, conn) -> Any:
        return conn.execute(select(export_leases.c.owner, export_leases.c.acquired_at, export_leases.c.expires_at).where(self._key())).first()

    def holder(self) -> Holder | None:
        with self.engine.connect() as conn:
            row = self._read(conn)
        return None if row is None else Holder(row.owner, row.acquired_at, row.expires_at)

    def renew(self) -> bool:
        started = time.monotonic()
        expires = _now() + timedelta(seconds=self.ttl_s)
        with self.engine.begin() as conn:
            self._bulk.start_write(conn)
            conn.execute(update(export_leases).where(self._key(), export_leases.c.owner == self.owner).values(expires_at=expires))
            row = self._read(conn)
            renewed = row is not None and row.owner == self.owner
        if renewed:
            self._valid_until = started + self.ttl_s
        else:
            self._lost = True
        return renewed

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(export_leases).where(self._key(), export_leases.c.owner == self.owner))

    # ------------------------------------------------------------------ life cycle

    def acquire(self, wait_s: float | None = None, *, poll_s: float = 0.5, logger: Any = None) -> None:
        """Take the lease, waiting up to ``wait_s`` for the holder to finish; :class:`ExportBusy` after that."""
        logger = logger or log
        wait_s = LEASE_WAIT_S if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
            if time.monotonic() >= deadline:
                raise ExportBusy(
                    f"another export of {self.label} is running ({holder.owner}, since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC); "
                    f"waited {wait_s:.0f}s. Try again when it ends (a stopped process loses its lease {self.ttl_s:.0f}s after its last renewal)."
                )
            if not told:
                logger.info("%s: waiting for the export held by %s to finish", self.label, holder.owner)
                told = True
            time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.01)))

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is known to be ours (called before every send).

        A renewal the background thread did not make in time (a busy machine) is made here: it
        succeeds only while the row still names this owner, so nobody else can have taken over."""
        margin = min(2.0, self.ttl_s / 4)
        if not self._lost and time.monotonic() >= self._valid_until - margin:
            try:
                self.renew()
            except SQLAlchemyError as exc:
                log.warning("%s: could not renew the export lease: %s", self.label, type(exc).__name__)
        if self._lost or time.monotonic() >= self._valid_until - margin:
            raise LeaseLost(f"{self.label}: the export lease of {self.owner} was lost; stopping before sending more (the next export settles what was in flight)")

    def _renew_loop(self) -> None:
        every = max(self.ttl_s / 5, 0.05)
        while not self._stop.wait(every):
            try:
                if not self.renew():
                    log.error("%s: the export lease was taken by another process", self.label)
                    return
            except SQLAlchemyError as exc:  # the database is unreachable for now: try again, check() stops sends meanwhile
                log.warning("%s: could not renew the export lease: %s", self.label, type(exc).__name__)

    def __enter__(self) -> ExportLease:
        if self._valid_until <= time.monotonic():
            self.acquire()
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.label}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.release_on_exit and not self._lost:
            try:
                self.release()
            except SQLAlchemyError:
                pass  # it expires by itself


__all__ = ["ExportBusy", "ExportLease", "LEASE_TTL_S", "LEASE_WAIT_S", "LeaseLost", "cli_owner", "run_owner"]
