"""HubSpot properties <-> canonical fields, declared once per entity.

| entity    | canonical field  | HubSpot property       | notes                                   |
|-----------|------------------|------------------------|-----------------------------------------|
| contacts  | email            | email                  | lower-cased; invalid -> reject          |
| contacts  | first_name       | firstname              |                                         |
| contacts  | last_name        | lastname               |                                         |
| contacts  | phone            | phone                  |                                         |
| contacts  | company_name     | company                |                                         |
| contacts  | job_title        | jobtitle               |                                         |
| contacts  | lifecycle_stage  | lifecyclestage         |                                         |
| contacts  | document         | cpf_cnpj (custom)      | CPF/CNPJ digits; invalid -> reject      |
| companies | name             | name                   |                                         |
| companies | domain           | domain                 | lower-cased, no scheme or www.          |
| companies | document         | cpf_cnpj (custom)      | CNPJ digits; invalid -> reject          |
| companies | phone            | phone                  |                                         |
| companies | industry         | industry               |                                         |
| companies | city             | city                   |                                         |
| companies | country          | country                |                                         |
| deals     | name             | dealname               |                                         |
| deals     | amount           | amount                 | exact decimal                           |
| deals     | currency         | deal_currency_code     |                                         |
| deals     | stage            | dealstage              | internal stage id                       |
| deals     | pipeline         | pipeline               |                                         |
| deals     | close_date       | closedate              | ISO-8601 or epoch ms                    |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document, normalize_domain

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
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"amount {text!r} is out of range")
    return amount.quantize(Decimal("0.01"))



def _text_out(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class FieldMap:
    canonical: str
    remote: str
    to_local: Callable[[Any], Any]
    to_remote: Callable[[Any], Any] = _text_out


FIELD_MAPS: dict[str, tuple[FieldMap, ...]] = {
    "contacts": (
        FieldMap("email", "email", checked_email),
        FieldMap("first_name", "firstname", clean_text),
        FieldMap("last_name", "lastname", clean_text),
        FieldMap("phone", "phone", clean_text),
        FieldMap("company_name", "company", clean_text),
        FieldMap("job_title", "jobtitle", clean_text),
        FieldMap("lifecycle_stage", "lifecyclestage", clean_text),
        FieldMap("document", DOCUMENT_PROPERTY, normalize_document, normalize_document),
    ),
    "companies": (
        FieldMap("name", "name", clean_text),
        FieldMap("domain", "domain", normalize_domain),
        FieldMap("document", DOCUMENT_PROPERTY, normalize_document, normalize_document),
        FieldMap("phone", "phone", clean_text),
        FieldMap("industry", "industry", clean_text),
        FieldMap("city", "city", clean_text),
        FieldMap("country", "country", clean_text),
    ),
    "deals": (
        FieldMap("name", "dealname", clean_text),
        FieldMap("amount", "amount", _amount, lambda v: None if v is None else format(v, "f")),
        FieldMap("currency", "deal_currency_code", clean_text),
        FieldMap("stage", "dealstage", clean_text),
        FieldMap("pipeline", "pipeline", clean_text),
        FieldMap("close_date", "closedate", parse_timestamp, format_timestamp),
    ),
}


def properties_for(entity: str) -> list[str]:
    """The HubSpot properties to request for ``entity`` (mapped ones plus the modification date)."""
    from crm_pipelines.providers.hubspot.api import OBJECTS

    return [m.remote for m in FIELD_MAPS[entity]] + [OBJECTS[entity].modified_property]


def to_remote_record(entity: str, obj: dict[str, Any]) -> RemoteRecord | RecordError:
    """Map one HubSpot object to a canonical record, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    properties = obj.get("properties") or {}
    if not isinstance(properties, dict):
        return RecordError(external_id, "INVALID_FIELD", f"properties is {type(properties).__name__}, expected an object")
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for field_map in FIELD_MAPS[entity]:
        try:
            fields[field_map.canonical] = field_map.to_local(properties.get(field_map.remote))
        except (ValueError, TypeError) as exc:
            problems.append(f"{field_map.remote}: {exc}")
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    try:
        updated_at = parse_timestamp(obj.get("updatedAt"))
        created_at = parse_timestamp(obj.get("createdAt"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    return RemoteRecord(external_id, updated_at, fields, archived=bool(obj.get("archived")), created_at=created_at)


def to_properties(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Canonical fields as HubSpot properties (for writes).

    Raises ``ValueError`` naming the field when a value cannot be sent (an invalid CPF/CNPJ).
    """
    return {m.remote: m.to_remote(fields.get(m.canonical)) for m in FIELD_MAPS[entity] if fields.get(m.canonical) is not None}
