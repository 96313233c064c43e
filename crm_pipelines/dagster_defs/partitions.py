"""How syncs map onto partitions: one partition per integration of a provider.

Every asset of a provider (``hubspot/contacts``, ``hubspot/contacts_export``, ...) is partitioned
by the provider's integrations, a dynamic partitions definition named ``<provider>_integrations``
whose keys are the integration keys (``default``, ``loja_b``...). A data engineer sees each
integration's last sync, figures, failures and checks as its partition; a run syncs one
integration (or, for the schedule, every due integration of the provider at once).

Time is not a partition dimension: an integration's sync is a watermark (``sync_state``), each
run reads from it to now, so a missed tick is caught up by the next run; a window of the past is
re-read by running the partition with ``window_start``/``window_end`` in its config. The README
("How syncs map onto Dagster") gives the measurements behind this choice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

WINDOW = timedelta(minutes=30)
WINDOW_FORMAT = "%Y-%m-%d-%H:%M"


def integration_partitions_name(provider: str) -> str:
    return f"{provider}_integrations"


def integration_partitions(provider: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=integration_partitions_name(provider))


def parse_moment(text: str) -> datetime:
    """``2026-11-30-10:00``, ``2026-11-30T10:00:00+00:00`` or ``2026-11-30`` as an aware UTC time."""
    for fmt in (WINDOW_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 2026-11-30-10:00, 2026-11-30 or an ISO 8601 timestamp") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def window_key(moment: datetime) -> str:
    """The 30-minute window containing ``moment`` (run keys of the schedule)."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(minute=(moment.minute // 30) * 30, second=0, microsecond=0).strftime(WINDOW_FORMAT)


__all__ = ["WINDOW", "integration_partitions", "integration_partitions_name", "parse_moment", "window_key"]
