"""What every provider writer takes and returns (the exporter's side of the Writer protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any


def idempotency_key(entity: str, local_id: int) -> str:
    """The key a create carries so that sending it twice finds the first one: ``contacts:12``."""
    return f"{entity}:{local_id}"


@dataclass(frozen=True)
class OutgoingRecord:
    """A local record on its way to a provider (``external_id`` set when it is already linked)."""

    local_id: int
    fields: dict[str, Any]
    external_id: str | None = None


@dataclass
class WriteResult:
    """Per-record outcome of one batch of writes."""

    written: dict[int, tuple[str, Any, bool]] = field(default_factory=dict)  # local id -> (external id, remote modification time, created)
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # local id -> (category, message)
    conflicts: dict[int, str] = field(default_factory=dict)  # local id -> id of the provider record that already exists


class BatchRejected(Exception):
    """The provider refused a request as a whole; the exporter splits the batch to find the bad records.

    Writers that send one record per request report per-record outcomes instead and never raise it.
    """

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


__all__ = ["BatchRejected", "OutgoingRecord", "WriteResult", "idempotency_key"]


class MappedOnce:
    """Provider payloads built when a record is checked, handed to the write that sends it.

    The exporter checks each record before its batch is sent and then sends the same fields: the
    payload is built once. A payload is found by the identity of the fields it was built from (the
    dict is kept with it, so the identity cannot be reused); anything not found is built anew.
    """

    #: Payloads kept at most (records checked but never sent, e.g. rejected by the provider's look-up).
    LIMIT = 10_000

    def __init__(self, build: Callable[[str, dict[str, Any]], Any]) -> None:
        self._build = build
        self._kept: dict[int, tuple[str, dict[str, Any], Any]] = {}

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        """Why the record cannot be sent as it is (the builder's ValueError), or None."""
        try:
            payload = self._build(entity, fields)
        except ValueError as exc:
            return str(exc)
        if len(self._kept) >= self.LIMIT:
            self._kept.clear()
        self._kept[id(fields)] = (entity, fields, payload)
        return None

    def take(self, entity: str, fields: dict[str, Any]) -> Any:
        """The payload of these fields: the one built when they were checked, else a new one."""
        kept = self._kept.pop(id(fields), None)
        if kept is not None and kept[0] == entity and kept[1] is fields:
            return kept[2]
        return self._build(entity, fields)
