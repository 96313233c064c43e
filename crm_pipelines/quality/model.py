"""The reports as values: one dataclass per kind, and the whole report of one integration and entity.

Each kind gives its figures (numbers the Dagster UI plots over time) and its table (a small
pandas frame of examples) so the Dagster asset, the CLI and the files it writes show the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd


@dataclass(frozen=True)
class FieldCompleteness:
    field: str
    filled: int
    records: int

    @property
    def share(self) -> float:
        return self.filled / self.records if self.records else 1.0


@dataclass(frozen=True)
class Completeness:
    """How many of the integration's live records have each field the provider holds filled."""

    records: int
    fields: tuple[FieldCompleteness, ...]

    def figures(self) -> dict[str, float]:
        return {f"completeness/{f.field}": round(f.share, 4) for f in self.fields}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"field": f.field, "filled": f.filled, "records": f.records, "share": round(f.share, 4)} for f in self.fields],
                            columns=["field", "filled", "records", "share"])


@dataclass(frozen=True)
class InvalidValue:
    local_id: int
    field: str
    value: str
    reason: str


@dataclass(frozen=True)
class InvalidValues:
    """Values hygiene would refuse (an export would reject the record), per field, with examples."""

    counts: dict[str, int]
    records: int
    examples: tuple[InvalidValue, ...]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def figures(self) -> dict[str, int]:
        return {"invalid_records": self.records, **{f"invalid/{name}": n for name, n in self.counts.items()}}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"local_id": e.local_id, "field": e.field, "value": e.value, "reason": e.reason} for e in self.examples],
                            columns=["local_id", "field", "value", "reason"])


@dataclass(frozen=True)
class DuplicateGroup:
    key: str
    value: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class KeyDuplicates:
    """Groups of the store's live records sharing one identity key, at least one linked to the integration."""

    key: str
    groups: int
    records: int
    examples: tuple[DuplicateGroup, ...]

    @property
    def extra(self) -> int:
        """Records beyond one per group: what a merge would remove."""
        return self.records - self.groups


@dataclass(frozen=True)
class Duplicates:
    by_key: tuple[KeyDuplicates, ...]

    def get(self, key: str) -> KeyDuplicates | None:
        return next((k for k in self.by_key if k.key == key), None)

    def figures(self) -> dict[str, int]:
        figures: dict[str, int] = {}
        for found in self.by_key:
            figures[f"duplicate_groups/{found.key}"] = found.groups
            figures[f"duplicate_records/{found.key}"] = found.records
        return figures

    def frame(self) -> pd.DataFrame:
        rows = [{"key": g.key, "value": g.value, "records": len(g.ids), "local_ids": ", ".join(map(str, g.ids))} for k in self.by_key for g in k.examples]
        return pd.DataFrame(rows, columns=["key", "value", "records", "local_ids"])


@dataclass(frozen=True)
class Orphan:
    local_id: int
    external_id: str
    deleted_at: datetime | None


@dataclass(frozen=True)
class Orphans:
    """Live local records whose record at the integration was deleted there (the export leaves them alone)."""

    count: int
    examples: tuple[Orphan, ...]

    def figures(self) -> dict[str, int]:
        return {"orphans": self.count}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"local_id": o.local_id, "external_id": o.external_id, "deleted_there_at": _when(o.deleted_at)} for o in self.examples],
                            columns=["local_id", "external_id", "deleted_there_at"])


@dataclass(frozen=True)
class StaleRecord:
    local_id: int
    external_id: str | None
    changed_at: datetime | None
    last_synced_at: datetime | None


@dataclass(frozen=True)
class StaleRecords:
    """Local records whose content has not reached the integration for longer than ``threshold_hours``.

    ``changed``: linked records changed locally since their last sync; ``never_synced``: records
    of the store never linked to the integration (counted only when it exports).
    """

    threshold_hours: float
    changed: int
    never_synced: int
    examples: tuple[StaleRecord, ...]

    @property
    def count(self) -> int:
        return self.changed + self.never_synced

    def figures(self) -> dict[str, int]:
        return {"stale": self.count, "stale/changed": self.changed, "stale/never_synced": self.never_synced}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"local_id": s.local_id, "external_id": s.external_id or "", "changed_at": _when(s.changed_at),
                              "last_synced_at": _when(s.last_synced_at)} for s in self.examples],
                            columns=["local_id", "external_id", "changed_at", "last_synced_at"])


@dataclass(frozen=True)
class ProviderState:
    integration: str
    external_id: str
    state: str  # in step | behind | deleted there | conflict


@dataclass(frozen=True)
class ProviderDifference:
    local_id: int
    states: tuple[ProviderState, ...]


@dataclass(frozen=True)
class ProviderDifferences:
    """Records linked to this integration and to other integrations of the store, and those they disagree on."""

    shared: int
    differing: int
    examples: tuple[ProviderDifference, ...]

    def figures(self) -> dict[str, int]:
        return {"shared_with_other_integrations": self.shared, "provider_differences": self.differing}

    def frame(self) -> pd.DataFrame:
        rows = [{"local_id": d.local_id, "integration": s.integration, "external_id": s.external_id, "state": s.state} for d in self.examples for s in d.states]
        return pd.DataFrame(rows, columns=["local_id", "integration", "external_id", "state"])


KINDS = ("completeness", "invalid", "duplicates", "orphans", "stale", "differences")


@dataclass(frozen=True)
class QualityReport:
    """Every report of one integration (``hubspot/loja_b``) and entity, as of ``generated_at``."""

    integration: str
    store: str
    entity: str
    generated_at: datetime
    completeness: Completeness
    invalid: InvalidValues
    duplicates: Duplicates
    orphans: Orphans
    stale: StaleRecords
    differences: ProviderDifferences
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def records(self) -> int:
        return self.completeness.records

    def figures(self) -> dict[str, int | float]:
        figures: dict[str, int | float] = {"records": self.records}
        for kind in KINDS:
            figures |= getattr(self, kind).figures()
        return figures

    def frames(self) -> dict[str, pd.DataFrame]:
        """One small table per kind (the examples; the whole list for completeness)."""
        return {kind: getattr(self, kind).frame() for kind in KINDS}

    def markdown(self) -> str:
        c, i, d, o, s, p = self.completeness, self.invalid, self.duplicates, self.orphans, self.stale, self.differences
        lines = [f"### {self.integration} {self.entity} (store {self.store})", "",
                 f"{self.records} live records linked, as of {_when(self.generated_at)}.", "",
                 "| finding | count |", "|---|---|"]
        lines.append(f"| records with an invalid value | {i.records} |")
        lines += [f"| invalid {name} | {n} |" for name, n in i.counts.items()]
        lines += [f"| duplicate groups by {k.key} ({k.records} records) | {k.groups} |" for k in d.by_key]
        lines.append(f"| orphans (deleted at the provider, live here) | {o.count} |")
        lines.append(f"| stale (not synced for over {s.threshold_hours:g} h) | {s.count} |")
        lines.append(f"| records the store's providers disagree on (of {p.shared} shared) | {p.differing} |")
        if c.fields:
            lines += ["", "Completeness: " + ", ".join(f"{f.field} {f.share:.1%}" for f in c.fields)]
        lines += ["", *[f"_{note}_" for note in self.notes]] if self.notes else []
        return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


__all__ = ["KINDS", "Completeness", "DuplicateGroup", "Duplicates", "FieldCompleteness", "InvalidValue", "InvalidValues", "KeyDuplicates", "Orphan", "Orphans",
           "ProviderDifference", "ProviderDifferences", "ProviderState", "QualityReport", "StaleRecord", "StaleRecords"]
