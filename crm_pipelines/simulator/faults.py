"""Seeded fault injection: 429s, 5xx answers, slow answers, connection resets, truncated bodies."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("status", "reset", "truncate", "slow", "late")


@dataclass
class FaultConfig:
    """Probabilities (0..1) of injected faults per API request, drawn from a seeded RNG.

    One uniform draw per API request picks at most one of: an injected 429 (``rate_429``), a 5xx
    (``rate_5xx``, status chosen from ``statuses_5xx``), a connection reset (``rate_reset``), a
    truncated JSON body (``rate_truncated``) or a slow answer (``rate_slow``, ``slow_seconds``).
    """

    seed: int = 0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 1.0
    rate_reset: float = 0.0
    rate_truncated: float = 0.0
    statuses_5xx: tuple[int, ...] = (502, 503, 504)

    def validate(self) -> None:
        rates = [self.rate_429, self.rate_5xx, self.rate_slow, self.rate_reset, self.rate_truncated]
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must each be within 0..1 and sum to at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        if not self.statuses_5xx or any(not 500 <= code <= 599 for code in self.statuses_5xx):
            raise ValueError("statuses_5xx must be non-empty 5xx codes")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"statuses_5xx": list(self.statuses_5xx)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON object; unknown keys raise ``ValueError``; missing keys default."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values = dict(data)
        if "statuses_5xx" in values:
            values["statuses_5xx"] = tuple(int(code) for code in values["statuses_5xx"])
        config = cls(**values)
        config.validate()
        return config


@dataclass(frozen=True)
class Fault:
    """One fault for one request: ``status`` (answer ``status`` with the provider's body for it),
    ``reset`` (close the connection unanswered), ``truncate`` (cut the body short), ``slow``
    (answer after ``delay_s``) or ``late`` (close the connection unanswered and apply the request
    ``delay_s`` later: a write the provider applies after the client gave up on it).
    ``route``: only a request to the route of that name takes the fault."""

    kind: str
    status: int | None = None
    delay_s: float = 0.0
    source: str = "random"
    route: str | None = None


class FaultInjector:
    """Decides, per API request, whether and how to misbehave: queued ``fail_next`` faults first,
    then one draw from the seeded RNG against the live :class:`FaultConfig`."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self._queue: list[Fault] = []

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, value: FaultConfig) -> None:
        value.validate()
        with self._lock:
            self._config = value
            self._rng = random.Random(value.seed)

    def fail_next(self, n: int = 1, status: int = 503, *, kind: str = "status", delay_s: float = 1.0, route: str | None = None) -> None:
        """Make the next ``n`` API requests (to ``route`` only, if given) fail (``kind`` as in :class:`Fault`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        if kind == "status" and not 400 <= status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        fault = Fault(kind, status if kind == "status" else None, delay_s if kind in ("slow", "late") else 0.0, "fail_next", route)
        with self._lock:
            self._queue.extend([fault] * n)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def decide(self, route: str | None = None) -> Fault | None:
        """The fault for the current request (to the route named ``route``), or ``None``."""
        with self._lock:
            for index, queued in enumerate(self._queue):
                if queued.route is None or queued.route == route:
                    return self._queue.pop(index)
            c = self._config
            if c.rate_429 + c.rate_5xx + c.rate_reset + c.rate_truncated + c.rate_slow <= 0:
                return None
            draw = self._rng.random()
            for rate, fault in ((c.rate_429, Fault("status", 429)), (c.rate_5xx, None), (c.rate_reset, Fault("reset")),
                                (c.rate_truncated, Fault("truncate")), (c.rate_slow, Fault("slow", delay_s=c.slow_seconds))):
                if draw < rate:
                    return fault or Fault("status", self._rng.choice(c.statuses_5xx))
                draw -= rate
            return None
