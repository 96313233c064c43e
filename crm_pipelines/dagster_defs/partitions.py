"""The time partitions every sync asset shares: 30-minute windows, the open one included."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import dagster as dg

WINDOW = timedelta(minutes=30)
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"
#: First partition; it also covers every record modified before it. Override with CRM_SYNC_START.
DEFAULT_START = "2026-01-01-00:00"


def sync_start() -> datetime:
    text = os.environ.get("CRM_SYNC_START", DEFAULT_START)
    for fmt in (PARTITION_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"CRM_SYNC_START={text!r} is not a date like 2026-01-01 or 2026-01-01-00:00")


SYNC_PARTITIONS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="*/30 * * * *",
    start=sync_start().strftime(PARTITION_FORMAT),
    fmt=PARTITION_FORMAT,
    timezone="UTC",
    end_offset=1,
)


def partition_key_for(moment: datetime) -> str:
    """Key of the 30-minute window containing ``moment``."""
    moment = moment.astimezone(timezone.utc)
    floored = moment.replace(minute=(moment.minute // 30) * 30, second=0, microsecond=0)
    return floored.strftime(PARTITION_FORMAT)


def closed_window_key(tick: datetime) -> str:
    """Key of the window that has just closed at a schedule tick."""
    return partition_key_for(tick.astimezone(timezone.utc) - WINDOW)
