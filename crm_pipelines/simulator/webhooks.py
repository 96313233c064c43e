"""Webhook deliveries from a simulator to a configured URL, batched and retried like a provider.

Provider simulators enqueue events as their records change; a background thread groups them
into deliveries (up to ``batch_max`` events, or whatever arrived within ``flush_interval_s``),
signs each delivery with the provider's scheme and POSTs it. A delivery that fails (connection
error, timeout, any non-2xx answer) is sent again after a growing delay, up to
``max_attempts`` times; the provider hook ``on_retry`` updates the body between attempts (HubSpot
increments each event's ``attemptNumber``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from crm_pipelines.core.counters import LockedCounters

log = logging.getLogger(__name__)

#: (body bytes, url) -> headers to add (signature, timestamp, topic...)
Signer = Callable[[bytes, str], dict[str, str]]


@dataclass
class WebhookStats(LockedCounters):
    events_enqueued: int = 0
    events_delivered: int = 0
    deliveries: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    dropped_events: int = 0


class WebhookEmitter:
    """Queue, batch, sign, send and retry webhook deliveries."""

    def __init__(self, url: str, *, sign: Signer, build_body: Callable[[list[dict[str, Any]]], list[tuple[bytes, dict[str, str]]]],
                 on_retry: Callable[[list[dict[str, Any]], int], None] | None = None, batch_max: int = 100, flush_interval_s: float = 0.1,
                 max_attempts: int = 10, retry_base_s: float = 0.5, retry_max_s: float = 30.0, timeout_s: float = 5.0) -> None:
        self.url = url
        self._sign = sign
        self._build_body = build_body
        self._on_retry = on_retry
        self.batch_max = batch_max
        self.flush_interval_s = flush_interval_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.stats = WebhookStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._stop = False
        self._http = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._run, name="webhook-emitter", daemon=True)
        self._thread.start()

    def enqueue(self, event: dict[str, Any]) -> None:
        with self._cond:
            self._queue.append(event)
            self.stats.add(events_enqueued=1)
            self._cond.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._http.close()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop and not self._queue:
                    return
            time.sleep(self.flush_interval_s)  # let a burst of changes gather into one delivery
            with self._cond:
                batch = [self._queue.popleft() for _ in range(min(self.batch_max, len(self._queue)))]
                self._busy += 1
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        """Send one batch (at most ``batch_max`` events), retried with a growing delay."""
        for attempt in range(self.max_attempts):
            if attempt and self._on_retry:
                self._on_retry(events, attempt)
            ok = True
            for body, headers in self._build_body(events):
                ok = self._post(body, headers) and ok
            self.stats.add(attempts=1)
            if ok:
                self.stats.add(deliveries=1, events_delivered=len(events))
                return
            self.stats.add(failed_attempts=1)
            if self._stop:
                return
            time.sleep(min(self.retry_base_s * 2**attempt, self.retry_max_s))
        self.stats.add(dropped_events=len(events))
        log.warning("webhook delivery of %d events to %s given up after %d attempts", len(events), self.url, self.max_attempts)

    def _post(self, body: bytes, headers: dict[str, str]) -> bool:
        try:
            response = self._http.post(self.url, content=body, headers={"Content-Type": "application/json", **headers, **self._sign(body, self.url)})
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

