"""What every provider writer takes and returns (the exporter's side of the Writer protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
