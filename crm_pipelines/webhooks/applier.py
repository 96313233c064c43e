"""The webhook applier: a long-running loop that applies inbox events within about a second.

It runs in ``crm-pipelines serve`` beside the receiver (which wakes it after each commit), reads
each provider's events not yet acted on (oldest first), coalesces them per integration into the
record ids per entity, reads those records from the provider (within the account's shared API
budget, at high priority) and applies them with the import's rules, then marks the rows
processed. A row is marked only after its records are committed, so a crash of the applier loses
nothing acknowledged: the next start (or the ``<provider>_webhooks`` sensor, the fallback)
applies it again, which changes nothing already applied. Each application is reported to
Dagster as a runless observation of the asset's partition, so it shows on the asset page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_pipelines.providers.registry import ProviderPlugin, all_plugins
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.inbox import WebhookInbox

log = logging.getLogger(__name__)


def record_ids(plugin: ProviderPlugin, rows: list[dict]) -> dict[str, list[str]]:
    """The record ids per entity that inbox rows (of one integration) mention (a hundred changes to one contact: one id)."""
    ids: dict[str, set[str]] = {}
    for row in rows:
        target = plugin.webhook_object_types.get(str(row.get("object_type") or "").lower())
        if not target or not row.get("object_id"):
            continue
        for entity in (target,) if isinstance(target, str) else target:
            ids.setdefault(entity, set()).add(str(row["object_id"]))
    return {entity: sorted(values, key=lambda v: (len(v), v)) for entity, values in sorted(ids.items())}


@dataclass
class Applied:
    """What one pass applied: events marked processed, records read, and failures by integration."""

    events: int = 0
    records: int = 0
    failures: dict[str, str] = field(default_factory=dict)


class WebhookApplier:
    """Drains the inbox on a thread; ``wake()`` after a commit starts a pass at once."""

    def __init__(self, store: LocalStore, *, instance: Any = None, idle_s: float = 0.5, max_events: int = 1000,
                 retry_after_s: float = 5.0, observe: Callable[[Any], None] | None = None) -> None:
        self.store = store
        self.inbox = WebhookInbox(store.engine)
        self.plugins = [p for p in all_plugins() if p.webhook_object_types]
        self.idle_s = idle_s
        self.max_events = max_events
        self.retry_after_s = retry_after_s
        self.observe = observe or (instance.report_runless_asset_event if instance is not None else None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._blocked: dict[int, float] = {}  # integration id -> monotonic time before which it is not retried

    def wake(self) -> None:
        self._wake.set()

    def drain_once(self) -> Applied:
        """Apply every waiting event once (an integration that fails waits ``retry_after_s``)."""
        from crm_pipelines.core.ratelimit import shared_budgets
        from crm_pipelines.storage.quota import QuotaBudgets
        from crm_pipelines.sync.targeted import sync_ids

        applied = Applied()
        for plugin in self.plugins:
            rows = self.inbox.read_unprocessed(plugin.name, self.max_events)
            groups: dict[int, list[dict]] = {}
            for row in rows:
                if row.get("integration_id") is not None:
                    groups.setdefault(row["integration_id"], []).append(row)
            for integration_id, group in groups.items():
                if self._blocked.get(integration_id, 0.0) > time.monotonic():
                    continue
                integration = self.store.integrations.by_id(integration_id)
                try:
                    figures: dict[str, Any] = {}
                    with shared_budgets(QuotaBudgets(self.store.engine), "high"):
                        resource = self.store.integrations.resource(integration)
                        for entity, ids in record_ids(plugin, group).items():
                            with resource.open_reader(logger=log, mapping=self.store.mapping_for(integration)) as (reader, stats):
                                figures[entity] = sync_ids(reader, self.store, integration, entity, ids, stats=stats, logger=log)
                            applied.records += figures[entity]["fetched"]
                except Exception as exc:  # the provider is down, a token expired: the rows wait, the sensor may take them
                    self._blocked[integration_id] = time.monotonic() + self.retry_after_s
                    applied.failures[integration.label] = str(exc)[:300]
                    log.warning("webhook applier: %s not applied yet: %s", integration.label, str(exc)[:300])
                    continue
                self._blocked.pop(integration_id, None)
                self.inbox.mark_processed([row["id"] for row in group])
                applied.events += len(group)
                self._report(plugin, integration.key, figures)
        return applied

    def _report(self, plugin: ProviderPlugin, partition: str, figures: dict[str, dict]) -> None:
        if self.observe is None:
            return
        import dagster as dg

        from crm_pipelines.dagster_defs.imports import import_asset_key

        for entity, values in figures.items():
            try:
                self.observe(dg.AssetObservation(asset_key=import_asset_key(plugin.name, entity), partition=partition,
                                                 metadata={"synced_by_id": True, "applied_by": "webhook applier", **values}))
            except Exception:
                log.exception("webhook applier: could not report to Dagster")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhook-applier", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.drain_once().events > 0
            except Exception:
                log.exception("webhook applier pass failed")
                busy = False
            if not busy:
                self._wake.wait(self.idle_s)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


__all__ = ["Applied", "WebhookApplier", "record_ids"]
