"""HubSpot properties <-> local columns: the value formats of HubSpot, and records read and written
through the loaded field mapping (built-in: ``crm_pipelines/mapping/defaults/hubspot.yaml``).

HubSpot writes amounts as text with a ``.`` decimal separator and timestamps as ISO-8601 with
milliseconds (or epoch milliseconds); custom properties are properties like any other.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_text
from crm_pipelines.mapping.compiled import CompiledMapping, default
from crm_pipelines.mapping.types import Codec, amount_from

PROVIDER = "hubspot"
DOCUMENT_PROPERTY = "cpf_cnpj"


def parse_timestamp(value: Any) -> datetime | None:
    """HubSpot timestamps: ISO-8601 (``2025-02-01T09:30:11.123Z``) or epoch milliseconds."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
        except (OverflowError, OSError):  # beyond what a datetime holds: a bad value, not a crash
            raise ValueError(f"timestamp {text[:20]} ms is out of range") from None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)



#: "1,234.56": commas only as thousands separators ("1.234,56" is refused, not read as 1.23).
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _amount(value: Any) -> Decimal | None:
    text = clean_text(value)
    if text is None:
        return None
    if "," in text:
        if not _THOUSANDS.fullmatch(text):
            raise ValueError(f"amount {text!r} is not a number (the decimal separator is '.')")
        text = text.replace(",", "")
    return amount_from(text, shown=text, label="amount ")


def _timestamp_in(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


#: HubSpot's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(lambda value: _amount(value), lambda v: None if v is None else format(v, "f")),
    "datetime": Codec(_timestamp_in, format_timestamp),
}


def _mapping(mapping: CompiledMapping | None) -> CompiledMapping:
    return mapping or default(PROVIDER)


def properties_for(entity: str, mapping: CompiledMapping | None = None) -> list[str]:
    """The HubSpot properties to request for ``entity`` (mapped ones plus the modification date)."""
    from crm_pipelines.providers.hubspot.api import OBJECTS

    return [*_mapping(mapping).remote_names(entity), OBJECTS[entity].modified_property]


def to_remote_record(entity: str, obj: dict[str, Any], mapping: CompiledMapping | None = None) -> RemoteRecord | RecordError:
    """Map one HubSpot object to local values, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    properties = obj.get("properties") or {}
    if not isinstance(properties, dict):
        return RecordError(external_id, "INVALID_FIELD", f"properties is {type(properties).__name__}, expected an object")
    fields, problems = _mapping(mapping).read(entity, properties.get)
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    try:
        updated_at = parse_timestamp(obj.get("updatedAt"))
        created_at = parse_timestamp(obj.get("createdAt"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    return RemoteRecord(external_id, updated_at, fields, archived=bool(obj.get("archived")), created_at=created_at)


def to_properties(entity: str, fields: dict[str, Any], mapping: CompiledMapping | None = None) -> dict[str, Any]:
    """Local values as HubSpot properties (for writes); blanks are left out.

    Raises ``ValueError`` naming the field when a value cannot be sent (an invalid CPF/CNPJ).
    """
    return {name: value for name, value in _mapping(mapping).write(entity, fields).items() if value is not None}
