"""What a job is: its kind, state, progress and figures, as the API returns it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("sync", "export", "backfill", "sync_ids")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
TRIGGERS = ("api", "cli", "schedule", "sensor", "webhook", "ui", "backfill", "manual", "demo")


@dataclass
class Job:
    """One job row (``sync_jobs``)."""

    id: int
    kind: str
    state: str
    provider: str
    integration_key: str | None = None
    integration_id: int | None = None
    store_id: int | None = None
    entity: str | None = None
    trigger: str = "manual"
    params: dict[str, Any] = field(default_factory=dict)
    processed: int = 0
    total: int | None = None
    total_is_estimate: bool = False
    percent: float | None = None
    eta_s: float | None = None
    created: int = 0
    updated: int = 0
    rejected: int = 0
    entities: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    callback_url: str | None = None
    notify: bool = False
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    notified_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready values (timestamps in ISO 8601)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat(timespec="seconds")
        return out
