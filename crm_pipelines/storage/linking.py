"""What linking a provider record to a local record found by identity (e-mail, domain, CPF/CNPJ) writes.

Linking only ties the two records together. The fields are then settled one by one, over the
fields the provider holds (the others are never read nor written by its imports):

* the same value on both sides, or a blank at the provider: the local value stays (a blank is not
  a value, so it never erases one; the next export sends the local value to the provider);
* a blank locally: the provider's value fills it (nothing local is erased);
* two different values: the field is disputed, and the integration's conflict strategy decides
  as it does for records already linked (:class:`~crm_pipelines.storage.conflicts.Detected`):
  ``provider_wins`` takes the provider's values of the disputed fields, ``local_wins`` keeps the
  local ones, ``last_modified`` compares the local row's ``updated_at`` with the provider's
  modification time, ``manual`` keeps the local ones and waits in the conflicts ledger (the
  record is not exported until someone resolves it).

A record with disputed fields is a row of the conflicts ledger, as for linked records: its
``local_fields`` are the local version (blanks filled) and its ``remote_fields`` the version the
provider's side would give (the disputed fields taken from the provider), so resolving it by
either side writes exactly that version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_pipelines.storage.conflicts import Detected


@dataclass(frozen=True)
class LinkMerge:
    """The held fields' values a linked local row ends with, and the conflict found if any."""

    values: tuple
    changed: bool
    disputed: tuple[str, ...]
    conflict: Detected | None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def merge_on_link(
    names: Sequence[str],
    local: dict[str, Any],
    remote: dict[str, Any],
    *,
    strategy: str,
    local_id: int,
    external_id: str,
    local_updated_at: datetime | None,
    remote_updated_at: datetime | None,
    local_tidied: dict[str, Any] | None = None,
) -> LinkMerge:
    """Settle the ``names`` fields of a local row just linked to a provider record.

    ``local_tidied`` is the local row as hygiene writes it (phones in E.164): a local value is the
    provider's when they agree once tidied, and is kept as written.
    """
    tidied = local_tidied or local
    kept: dict[str, Any] = {}
    taken: dict[str, Any] = {}
    disputed: list[str] = []
    for name in names:
        mine, theirs = local.get(name), remote.get(name)
        if _blank(theirs) or theirs == mine or theirs == tidied.get(name):
            kept[name] = taken[name] = mine
        elif _blank(mine):
            kept[name] = taken[name] = theirs
        else:
            kept[name], taken[name] = mine, theirs
            disputed.append(name)
    conflict = None
    chosen = kept
    if disputed:
        conflict = Detected(local_id, external_id, kept, taken, local_updated_at, remote_updated_at, strategy)
        if conflict.decision == "provider":
            chosen = taken
    values = tuple(chosen[name] for name in names)
    changed = any(chosen[name] != local.get(name) for name in names)
    return LinkMerge(values, changed, tuple(disputed), conflict)


__all__ = ["LinkMerge", "merge_on_link"]
