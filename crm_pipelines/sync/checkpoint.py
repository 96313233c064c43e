"""Where a full sync stopped: kept after every applied page, so a failed one goes on from there.

A full read (the first sync, ``--full``) of a large account takes many pages; a run that fails on
page 40 (an outage, a read that met more faults in a row than the client retries) keeps the 39
pages it applied, and :class:`ReadCheckpoint` keeps where the read was: the ``resume`` value of
the last applied page (see :class:`crm_pipelines.core.model.Page`), and the moment the read began,
in the entity's ``sync_state`` row (``last_metrics["read_checkpoint"]``). The next full read
continues from there instead of reading everything again, and marks the entity synced through
the moment the *first* attempt began: what changed on pages already read since then is read by
the next incremental run, so nothing is lost, and records are matched by id, so nothing doubles.

The position is written to the database with the first page and then at most once a second
(:attr:`ReadCheckpoint.EVERY_S`; a write per page would cost a transaction per 100 records), and
with the failed run's state: a run that fails keeps the position of its last applied page, a
process killed outright re-reads at most a second of pages.

A successful run rewrites the row's metrics, which drops the checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from crm_pipelines.storage.schema import sync_state

KEY = "read_checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """The position after the last applied page of an unfinished full read, and what it had read."""

    resume: Any
    read_until: datetime
    records: int

    def to_json(self) -> dict[str, Any]:
        return {"resume": self.resume, "read_until": self.read_until.isoformat(), "records": self.records}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint | None:
        try:
            return cls(data["resume"], datetime.fromisoformat(data["read_until"]), int(data.get("records") or 0))
        except (KeyError, TypeError, ValueError):
            return None  # an unreadable checkpoint: the read starts over, which is always correct


class ReadCheckpoint:
    """The checkpoint of one integration's entity, read and written in its ``sync_state`` row."""

    #: Most seconds between two writes of the position (the first applied page is always written).
    EVERY_S = 1.0

    def __init__(self, store: Any, target: Any, entity: str) -> None:
        self.store, self.integration, self.entity = store, store.scope(target), entity
        self._latest: Checkpoint | None = None
        self._written_at: float | None = None

    def load(self) -> Checkpoint | None:
        with self.store.engine.connect() as conn:
            metrics = conn.execute(select(sync_state.c.last_metrics).where(
                sync_state.c.integration_id == self.integration.id, sync_state.c.entity == self.entity)).scalar()
        data = (metrics or {}).get(KEY)
        return Checkpoint.from_json(data) if isinstance(data, dict) else None

    def save(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` (the position after a page just applied); written when due (see :attr:`EVERY_S`)."""
        self._latest = checkpoint
        now = time.monotonic()
        if self._written_at is not None and now - self._written_at < self.EVERY_S:
            return
        self._written_at = now
        self._write(checkpoint)

    def _write(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` into the row, leaving the rest of it as it is."""
        state = self.store.sync_state(self.integration, self.entity)
        state.last_metrics = {**state.last_metrics, KEY: checkpoint.to_json()}
        self.store.save_sync_state(state)

    def pending(self) -> dict[str, Any]:
        """``{"read_checkpoint": ...}`` to carry over when the row's metrics are rewritten after a failure:
        the position after this run's last applied page, else the one stored."""
        found = self._latest or self.load()
        return {KEY: found.to_json()} if found is not None else {}


__all__ = ["Checkpoint", "ReadCheckpoint"]
