"""The webhook inbox: deliveries stored once per (provider, event id), read back in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_pipelines.storage.schema import webhook_deliveries, webhooks
from crm_pipelines.webhooks.routing import WebhookRouter

CHUNK = 500


class WebhookInbox:
    """Stores webhook events in the ``webhooks`` table and hands them to whoever processes them."""

    def __init__(self, engine: Engine, router: WebhookRouter | None = None):
        self.engine = engine
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._router = router

    @property
    def router(self) -> WebhookRouter:
        if self._router is None:
            self._router = WebhookRouter(self.engine)
        return self._router

    def store(self, provider: str, events: list[dict[str, Any]], raw_body: bytes) -> int:
        """Insert one row per event, skipping (provider, event_id) pairs already stored.

        All rows of the delivery are written in one transaction, committed before this returns.
        Returns the number of rows newly stored.
        """
        with self.engine.begin() as conn:
            return self.store_in(conn, provider, events, raw_body)

    def store_in(self, conn, provider: str, events: list[dict[str, Any]], raw_body: bytes) -> int:
        """:meth:`store` inside the caller's transaction."""
        return self.store_many_in(conn, [(provider, events, raw_body)])[0]

    def store_many_in(self, conn, deliveries: list[tuple[str, list[dict[str, Any]], bytes]]) -> list[int]:
        """Store several deliveries with one ``INSERT`` per 500 rows; returns the rows new per delivery.

        Each delivery's raw body is stored once (``webhook_deliveries``), referenced by its events;
        a delivery whose events were all stored before keeps no body. An event delivered twice in
        the same call counts for the first delivery naming it.
        """
        now = datetime.now(timezone.utc)
        bodies = [{"provider": provider, "received_at": now, "body": raw_body.decode("utf-8", errors="replace").replace("\x00", "\\u0000")}
                  for provider, _events, raw_body in deliveries]
        rows: list[dict[str, Any]] = []
        owner: dict[tuple[str, str, str], int] = {}
        for index, (provider, events, _raw_body) in enumerate(deliveries):
            for e in events:
                key = (provider, e.get("account_id") or "", e["event_id"])
                if key in owner:
                    continue
                owner[key] = index
                account_id = e.get("account_id") or ""
                rows.append({
                    "provider": provider,
                    "account_id": account_id,
                    "integration_id": e.get("integration_id") or self.router.route(provider, account_id),
                    "event_id": e["event_id"],
                    "subscription_type": e.get("subscription_type"),
                    "object_type": e.get("object_type"),
                    "object_id": e.get("object_id"),
                    "occurred_at": e.get("occurred_at"),
                    "received_at": now,
                    "delivery_id": index,
                })
        # Routing may read (and create) integrations: done above, before this transaction writes.
        delivery_ids = [row.id for row in conn.execute(insert(webhook_deliveries).returning(webhook_deliveries.c.id, sort_by_parameter_order=True), bodies)]
        for row in rows:
            row["delivery_id"] = delivery_ids[row["delivery_id"]]
        stored = [0] * len(deliveries)
        for start in range(0, len(rows), CHUNK):
            stmt = (
                self._insert(webhooks)
                .values(rows[start:start + CHUNK])
                .on_conflict_do_nothing(index_elements=["provider", "account_id", "event_id"])
                .returning(webhooks.c.provider, webhooks.c.account_id, webhooks.c.event_id)
            )
            for provider, account_id, event_id in conn.execute(stmt):
                stored[owner[(provider, account_id, event_id)]] += 1
        unused = [delivery_ids[i] for i, n in enumerate(stored) if n == 0]
        for start in range(0, len(unused), CHUNK):
            conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(unused[start:start + CHUNK])))
        return stored

    def read_after(self, provider: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``provider`` with an id above ``after_id``, oldest first (``raw_body``: their delivery's)."""
        body = func.coalesce(webhooks.c.raw_body, webhook_deliveries.c.body).label("raw_body")
        stmt = (
            select(*[c for c in webhooks.c if c.name != "raw_body"], body)
            .select_from(webhooks.outerjoin(webhook_deliveries, webhook_deliveries.c.id == webhooks.c.delivery_id))
            .where(webhooks.c.provider == provider, webhooks.c.id > after_id)
            .order_by(webhooks.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def read_unprocessed(self, provider: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``provider`` not acted on yet, oldest first."""
        stmt = (
            select(webhooks)
            .where(webhooks.c.provider == provider, webhooks.c.processed_at.is_(None))
            .order_by(webhooks.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def mark_processed(self, ids: Iterable[int]) -> None:
        """Record that the events with these ids have been acted on (the first time only)."""
        ids = list(ids)
        if not ids:
            return
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            for start in range(0, len(ids), CHUNK):
                conn.execute(
                    update(webhooks)
                    .where(webhooks.c.id.in_(ids[start:start + CHUNK]), webhooks.c.processed_at.is_(None))
                    .values(processed_at=now)
                )

    def purge_processed(self, before: datetime) -> int:
        """Delete events processed before ``before`` (a redelivery that old is no longer expected)."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(webhooks).where(webhooks.c.processed_at.is_not(None), webhooks.c.processed_at < before))
            conn.execute(delete(webhook_deliveries).where(~select(webhooks.c.id).where(webhooks.c.delivery_id == webhook_deliveries.c.id).exists()))
        return result.rowcount or 0

    def mark_processed_range(self, provider: str, first_id: int, last_id: int, *, integration_id: int | None = None) -> int:
        """Mark the provider's rows (of one integration) with ids in ``[first_id, last_id]`` as acted on; returns rows marked."""
        now = datetime.now(timezone.utc)
        conditions = [webhooks.c.provider == provider, webhooks.c.id.between(first_id, last_id), webhooks.c.processed_at.is_(None)]
        if integration_id is not None:
            conditions.append(webhooks.c.integration_id == integration_id)
        with self.engine.begin() as conn:
            return conn.execute(update(webhooks).where(*conditions).values(processed_at=now)).rowcount


class GroupCommitWriter:
    """One writer thread for the receiver: deliveries that arrive together share one commit.

    Each caller still gets its answer only after the transaction holding its rows has committed,
    but concurrent deliveries no longer queue for the database one commit at a time (the tail
    latency of a busy receiver). If a shared transaction fails, its deliveries are retried one
    by one, so one bad delivery cannot fail its neighbours.
    """

    def __init__(self, inbox: WebhookInbox, *, max_batch: int = 200) -> None:
        self.inbox = inbox
        self.max_batch = max_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="webhook-inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, provider: str, events: list[dict[str, Any]], raw_body: bytes) -> Future:
        future: Future = Future()
        self._queue.put((future, provider, events, raw_body))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                with self.inbox.engine.begin() as conn:
                    results = self.inbox.store_many_in(conn, [(provider, events, body) for _, provider, events, body in batch])
            except Exception:  # noqa: BLE001 - isolate the failing delivery below
                for future, provider, events, body in batch:
                    try:
                        future.set_result(self.inbox.store(provider, events, body))
                    except Exception as exc:  # noqa: BLE001 - reported to that delivery's caller
                        future.set_exception(exc)
                continue
            for (future, *_), stored in zip(batch, results):
                future.set_result(stored)
