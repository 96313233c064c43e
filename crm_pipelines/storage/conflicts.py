"""Records changed both locally and at a provider since their last sync: who wins, and the ledger.

A conflict is found on import: the provider sends a new version of a linked record while the
local row differs from what was last exchanged with that provider (neither the version last
imported nor the one last exported), and from the new version too. The strategy for the
provider and entity decides:

* ``provider_wins``: the provider's version replaces the local one;
* ``local_wins``: the local version stays and is sent to the provider by the next export;
* ``last_modified``: the version modified last wins (local ``updated_at`` against the
  provider's modification time);
* ``manual``: the local version stays, both versions wait in the ``conflicts`` table, and the
  record is not exported until someone resolves it (``crm-pipelines conflicts resolve``),
  taking one side or merging field by field.

Every decision, automatic or not, is a row of ``conflicts``.

Strategies come from ``CRM_CONFLICT_STRATEGIES`` (or the database resource's setting):
``"manual"`` for everything, or ``"hubspot.contacts=manual,hubspot=local_wins,*=last_modified"``;
the most specific entry wins, and ``provider_wins`` applies when nothing matches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import FIELDS, content_hash
from crm_pipelines.mapping.spec import custom_key, is_custom
from crm_pipelines.providers.registry import held_fields
from crm_pipelines.storage.schema import ENTITY_TABLES, conflicts

STRATEGIES = ("provider_wins", "local_wins", "last_modified", "manual")
DEFAULT_STRATEGY = "provider_wins"
STRATEGIES_ENV = "CRM_CONFLICT_STRATEGIES"


@dataclass(frozen=True)
class ConflictPolicy:
    """Strategy per provider and entity, parsed from ``"hubspot.contacts=manual,*=last_modified"``."""

    rules: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> ConflictPolicy:
        rules: dict[str, str] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            scope, _, strategy = part.rpartition("=")
            scope, strategy = (scope.strip() or "*"), strategy.strip()
            if strategy not in STRATEGIES:
                raise ConfigurationError(f"unknown conflict strategy {strategy!r} in {text!r}; expected one of {', '.join(STRATEGIES)}")
            rules[scope] = strategy
        return cls(rules)

    @classmethod
    def from_env(cls, text: str | None = None) -> ConflictPolicy:
        return cls.parse(text if text is not None else os.environ.get(STRATEGIES_ENV))

    def strategy_for(self, provider: str, entity: str) -> str:
        for scope in (f"{provider}.{entity}", provider, "*"):
            if scope in self.rules:
                return self.rules[scope]
        return DEFAULT_STRATEGY


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in fields.items()}


def from_json(entity: str, values: dict[str, Any], custom: Sequence[str] = ()) -> dict[str, Any]:
    """Field values as the entity's columns take them (amounts exact, dates aware), and the ``custom``
    names (``custom.KEY``, JSON values as they are)."""
    out: dict[str, Any] = {name: values.get(name) for name in custom}
    for name in FIELDS[entity]:
        value = values.get(name)
        if value is not None and name == "amount":
            value = Decimal(str(value))
        elif value is not None and name == "close_date" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        out[name] = value
    return out


@dataclass(frozen=True)
class Detected:
    """One conflict found while applying a provider record, and what the strategy decided."""

    local_id: int
    external_id: str
    local_fields: dict[str, Any]
    remote_fields: dict[str, Any]
    local_updated_at: datetime | None
    remote_updated_at: datetime | None
    strategy: str

    @property
    def decision(self) -> str | None:
        """``provider``, ``local``, or None while waiting for someone (manual)."""
        if self.strategy == "provider_wins":
            return "provider"
        if self.strategy == "local_wins":
            return "local"
        if self.strategy == "last_modified":
            local, remote = self.local_updated_at, self.remote_updated_at
            return "local" if local and remote and local > remote else "provider"
        return None


def record(conn, integration, entity: str, found: list[Detected], now: datetime) -> None:
    """Write the decisions; a record already waiting for review gets the newer versions."""
    if not found:
        return
    open_rows = {
        row.local_id: row.id
        for row in conn.execute(
            select(conflicts.c.id, conflicts.c.local_id).where(
                conflicts.c.integration_id == integration.id, conflicts.c.entity == entity, conflicts.c.resolved_at.is_(None),
                conflicts.c.local_id.in_([d.local_id for d in found]),
            )
        )
    }
    for d in found:
        values = {
            "local_fields": to_json(d.local_fields), "remote_fields": to_json(d.remote_fields),
            "local_updated_at": d.local_updated_at, "remote_updated_at": d.remote_updated_at, "detected_at": now,
        }
        decision = d.decision
        if decision is not None:
            values |= {"decision": decision, "resolved_at": now, "resolved_by": f"auto:{d.strategy}"}
        if d.local_id in open_rows:
            conn.execute(update(conflicts).where(conflicts.c.id == open_rows[d.local_id]).values(**values))
        else:
            conn.execute(insert(conflicts).values(integration_id=integration.id, provider=integration.provider, entity=entity, local_id=d.local_id,
                                                  external_id=d.external_id, strategy=d.strategy, **values))


def open_conflict_ids(integration, entity: str):
    """Subquery of local ids waiting for a manual decision with this integration (kept out of its exports)."""
    return select(conflicts.c.local_id).where(conflicts.c.integration_id == integration.id, conflicts.c.entity == entity,
                                              conflicts.c.resolved_at.is_(None)).scalar_subquery()


def _merged_custom(current: dict[str, Any] | None, chosen: dict[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    """The row's ``custom`` column with the chosen ``custom.KEY`` values (a blank removes its key; other keys kept)."""
    merged = dict(current or {})
    for name in names:
        if chosen.get(name) is None:
            merged.pop(custom_key(name), None)
        else:
            merged[custom_key(name)] = chosen[name]
    return merged or None


class ConflictLedger:
    """List and resolve conflicts (the command line and tests use it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, *, provider: str | None = None, integration_ids=None, include_resolved: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Conflicts, oldest first; ``integration_ids`` limits them to some integrations (a store's)."""
        query = select(conflicts).order_by(conflicts.c.id).limit(limit)
        if provider:
            query = query.where(conflicts.c.provider == provider)
        if integration_ids is not None:
            query = query.where(conflicts.c.integration_id.in_(list(integration_ids)))
        if not include_resolved:
            query = query.where(conflicts.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def _held(self, integration_id: int, provider: str, entity: str) -> tuple[str, ...]:
        """The columns (``custom.KEY`` included) the integration's mapping imports."""
        from crm_pipelines.integrations.registry import IntegrationRegistry
        from crm_pipelines.mapping.integration import held_names

        try:
            integration = IntegrationRegistry(self.engine).by_id(integration_id)
        except ConfigurationError:  # the integration was removed since
            return held_fields(provider, entity)
        return held_names(integration, entity)

    def resolve(self, conflict_id: int, take: str, *, fields: dict[str, str] | None = None, by: str = "user") -> dict[str, Any]:
        """Settle a conflict: ``take`` is ``local``, ``provider`` or ``merge`` (``fields``: name -> side)."""
        if take not in ("local", "provider", "merge"):
            raise ConfigurationError(f"take must be local, provider or merge, not {take!r}")
        with self.engine.begin() as conn:
            row = conn.execute(select(conflicts).where(conflicts.c.id == conflict_id)).one_or_none()
            if row is None:
                raise ConfigurationError(f"no conflict with id {conflict_id}")
            if row.resolved_at is not None:
                raise ConfigurationError(f"conflict {conflict_id} was already resolved ({row.decision}, by {row.resolved_by})")
            entity = row.entity
            # Only the fields the provider holds were compared; the others are never written here.
            held = self._held(row.integration_id, row.provider, entity)
            custom = [name for name in held if is_custom(name)]
            local = {name: value for name, value in from_json(entity, row.local_fields, custom).items() if name in held}
            remote = {name: value for name, value in from_json(entity, row.remote_fields, custom).items() if name in held}
            if take == "merge":
                choices = fields or {}
                unknown = sorted(set(choices) - set(held))
                bad = sorted(name for name, side in choices.items() if side not in ("local", "provider"))
                if unknown or bad:
                    raise ConfigurationError(f"merge choices must name fields of {entity} ({', '.join(held)}) as local or provider; got {choices}")
                chosen = {name: (remote if choices.get(name) == "provider" else local)[name] for name in held}
            else:
                chosen = remote if take == "provider" else local
            table = ENTITY_TABLES[entity]
            now = datetime.now(timezone.utc)
            if chosen != local:
                # The provider's side needs no export (it is what the provider has); a merge or
                # the local side differs from it and goes out with the next export.
                plain = {name: value for name, value in chosen.items() if not is_custom(name)}
                if custom:
                    plain["custom"] = _merged_custom(conn.execute(select(table.c.custom).where(table.c.id == row.local_id)).scalar(), chosen, custom)
                conn.execute(update(table).where(table.c.id == row.local_id).values(**plain, updated_at=now))
            conn.execute(
                update(conflicts).where(conflicts.c.id == conflict_id).values(
                    decision="merged" if take == "merge" else take, resolved_at=now, resolved_by=by, merge_choices=fields if take == "merge" else None,
                )
            )
        return {"id": conflict_id, "entity": entity, "local_id": row.local_id, "decision": "merged" if take == "merge" else take,
                "hash": content_hash(entity, chosen, held)}


__all__ = ["ConflictLedger", "ConflictPolicy", "Detected", "STRATEGIES", "open_conflict_ids", "record"]
