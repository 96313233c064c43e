"""The canonical model every provider maps to: entities, their fields, and records in flight."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_pipelines.core.jsonutil import dumps

ENTITIES: tuple[str, ...] = ("contacts", "companies", "deals")

#: Canonical fields of each entity, in column order. Storage, mappings and hashes use this list.
FIELDS: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "first_name", "last_name", "phone", "company_name", "job_title", "lifecycle_stage", "document"),
    "companies": ("name", "domain", "document", "phone", "industry", "city", "country"),
    "deals": ("name", "amount", "currency", "stage", "pipeline", "close_date"),
}

#: Fields that identify a record across systems, used to match before creating a duplicate.
MATCH_KEYS: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "document"),
    "companies": ("domain", "document"),
    "deals": (),
}


def check_entity(entity: str) -> str:
    if entity not in FIELDS:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return entity


@dataclass(frozen=True)
class RemoteRecord:
    """One provider record, already mapped to canonical fields."""

    external_id: str
    updated_at: datetime | None
    fields: dict[str, Any]
    archived: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class RecordError:
    """A provider record that could not be mapped (kept with the reason, never silently dropped)."""

    external_id: str
    category: str
    message: str


@dataclass
class Page:
    """One page read from a provider: mapped records plus those that failed mapping.

    ``resume`` is where the read continues after this page (a JSON value only its reader
    understands: a cursor, a page number, a keyset position), or None where it cannot resume.
    The importer saves it once the page is applied, so a failed full sync goes on from there.
    """

    records: list[RemoteRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    resume: Any = None


#: Types whose values hash as they are (most field values): no canonical form to compute.
_AS_IS = frozenset({str, int, bool, type(None)})


def _canonical_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def content_hash(entity: str, fields: dict[str, Any], names: Sequence[str] | None = None) -> str:
    """A stable digest of a record's canonical fields (missing and None hash alike).

    ``names`` limits it to the fields one provider holds, so a field the provider has no place
    for neither looks changed on import nor makes a record look changed on export.
    """
    payload = [value if type(value) in _AS_IS else _canonical_value(value) for value in map(fields.get, names or FIELDS[entity])]
    return hashlib.sha256(dumps(payload)).hexdigest()[:32]
