"""Pipedrive API v2 objects <-> canonical fields, declared once per entity.

Custom fields are addressed by name; their 40-character keys differ per company and are read
from ``/v1/personFields`` (etc.) when a reader or writer starts (:class:`FieldKeys`).

| entity    | canonical field  | Pipedrive v2 field                    | notes                                   |
|-----------|------------------|---------------------------------------|-----------------------------------------|
| contacts  | email            | emails[] (primary, else first)        | lower-cased; invalid -> reject          |
| contacts  | first_name       | first_name                            | name = first + last on writes           |
| contacts  | last_name        | last_name                             |                                         |
| contacts  | phone            | phones[] (primary, else first)        |                                         |
| contacts  | company_name     | custom "Company"                      |                                         |
| contacts  | job_title        | custom "Job title"                    |                                         |
| contacts  | lifecycle_stage  | custom "Lifecycle stage"              |                                         |
| contacts  | document         | custom "CPF/CNPJ"                     | CPF/CNPJ digits; invalid -> reject      |
| companies | name             | name                                  | required on create                      |
| companies | domain           | custom "Domain"                       | lower-cased, no scheme or www.          |
| companies | document         | custom "CPF/CNPJ"                     | CNPJ digits; invalid -> reject          |
| companies | phone            | custom "Phone"                        |                                         |
| companies | industry         | custom "Industry"                     |                                         |
| companies | city             | address.locality                      |                                         |
| companies | country          | address.country                       |                                         |
| deals     | name             | title                                 | required on create                      |
| deals     | amount           | value                                 | exact decimal (2 places)                |
| deals     | currency         | currency                              | ISO code                                |
| deals     | stage            | stage_id                              | numeric id as text                      |
| deals     | pipeline         | pipeline_id                           | numeric id as text                      |
| deals     | close_date       | expected_close_date                   | a date: midnight UTC locally            |

Every entity also carries the custom field "crm_record_id" (``<entity>:<local id>``), the
idempotency key of records this project created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document, normalize_domain

IDEMPOTENCY_FIELD = "crm_record_id"

#: Custom fields by entity: canonical field (or the idempotency key) -> field name in Pipedrive.
CUSTOM_FIELD_NAMES: dict[str, dict[str, str]] = {
    "contacts": {"company_name": "Company", "job_title": "Job title", "lifecycle_stage": "Lifecycle stage", "document": "CPF/CNPJ", IDEMPOTENCY_FIELD: IDEMPOTENCY_FIELD},
    "companies": {"domain": "Domain", "document": "CPF/CNPJ", "phone": "Phone", "industry": "Industry", IDEMPOTENCY_FIELD: IDEMPOTENCY_FIELD},
    "deals": {IDEMPOTENCY_FIELD: IDEMPOTENCY_FIELD},
}


def parse_timestamp(value: Any) -> datetime | None:
    """v2 timestamps (``2025-02-01T09:30:11Z``); v1 ``2025-02-01 09:30:11`` (UTC) is read too."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(" ", "T", 1)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)



def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"value {value!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"value {value!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def _close_date(value: Any) -> datetime | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"expected_close_date {text!r} is not a YYYY-MM-DD date") from None
    return datetime.combine(day, time(0), tzinfo=timezone.utc)



def _id_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _primary(values: Any) -> Any:
    """The primary entry's value of a v2 ``emails``/``phones`` array (else the first one)."""
    if not isinstance(values, list) or not values:
        return None
    chosen = next((v for v in values if isinstance(v, dict) and v.get("primary")), values[0])
    return chosen.get("value") if isinstance(chosen, dict) else chosen


@dataclass(frozen=True)
class FieldKeys:
    """The 40-character keys of this company's custom fields, by canonical name."""

    entity: str
    keys: dict[str, str]

    @classmethod
    def resolve(cls, entity: str, by_name: dict[str, str]) -> FieldKeys:
        """Pick the configured custom fields out of ``name -> key``; the idempotency field is required."""
        keys = {}
        for canonical, name in CUSTOM_FIELD_NAMES[entity].items():
            key = by_name.get(name.casefold())
            if key:
                keys[canonical] = key
        if IDEMPOTENCY_FIELD not in keys:
            from crm_pipelines.providers.pipedrive.api import ENTITY_SPECS

            raise ConfigurationError(
                f"Pipedrive has no custom field named {IDEMPOTENCY_FIELD!r} on {ENTITY_SPECS[entity].path}; create a text field "
                f"with that name (Settings > Data fields) so records created by the sync can be recognised after a crash"
            )
        return cls(entity, keys)

    def custom(self, obj: dict[str, Any], canonical: str) -> Any:
        key = self.keys.get(canonical)
        custom = obj.get("custom_fields") or {}
        if not isinstance(custom, dict):
            raise TypeError(f"custom_fields is {type(custom).__name__}, expected an object")
        value = custom.get(key) if key else None
        if isinstance(value, dict):  # monetary/address-like custom values
            value = value.get("value")
        return value


def _local_values(entity: str, obj: dict[str, Any], keys: FieldKeys) -> dict[str, Callable[[], Any]]:
    if entity == "contacts":
        return {
            "email": lambda: checked_email(_primary(obj.get("emails"))),
            "first_name": lambda: clean_text(obj.get("first_name")),
            "last_name": lambda: clean_text(obj.get("last_name")),
            "phone": lambda: clean_text(_primary(obj.get("phones"))),
            "company_name": lambda: clean_text(keys.custom(obj, "company_name")),
            "job_title": lambda: clean_text(keys.custom(obj, "job_title")),
            "lifecycle_stage": lambda: clean_text(keys.custom(obj, "lifecycle_stage")),
            "document": lambda: normalize_document(keys.custom(obj, "document")),
        }
    if entity == "companies":
        address = obj.get("address") if isinstance(obj.get("address"), dict) else {}
        return {
            "name": lambda: clean_text(obj.get("name")),
            "domain": lambda: normalize_domain(keys.custom(obj, "domain")),
            "document": lambda: normalize_document(keys.custom(obj, "document")),
            "phone": lambda: clean_text(keys.custom(obj, "phone")),
            "industry": lambda: clean_text(keys.custom(obj, "industry")),
            "city": lambda: clean_text(address.get("locality")),
            "country": lambda: clean_text(address.get("country")),
        }
    return {
        "name": lambda: clean_text(obj.get("title")),
        "amount": lambda: _amount(obj.get("value")),
        "currency": lambda: clean_text(obj.get("currency")),
        "stage": lambda: _id_text(obj.get("stage_id")),
        "pipeline": lambda: _id_text(obj.get("pipeline_id")),
        "close_date": lambda: _close_date(obj.get("expected_close_date")),
    }


def is_deleted(entity: str, obj: dict[str, Any]) -> bool:
    return bool(obj.get("is_deleted")) or (entity == "deals" and obj.get("status") == "deleted")


def to_remote_record(entity: str, obj: dict[str, Any], keys: FieldKeys) -> RemoteRecord | RecordError:
    """Map one v2 object to a canonical record, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    try:
        updated_at = parse_timestamp(obj.get("update_time"))
        created_at = parse_timestamp(obj.get("add_time"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    if is_deleted(entity, obj):
        return RemoteRecord(external_id, updated_at, {}, archived=True, created_at=created_at)
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for name, read in _local_values(entity, obj, keys).items():
        try:
            fields[name] = read()
        except (ValueError, TypeError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    return RemoteRecord(external_id, updated_at, fields, created_at=created_at)


def _set_custom(body: dict[str, Any], keys: FieldKeys, canonical: str, value: Any) -> None:
    key = keys.keys.get(canonical)
    if key is None:
        if value is not None:
            raise ValueError(f"{canonical}: Pipedrive has no custom field named {CUSTOM_FIELD_NAMES[keys.entity][canonical]!r} to hold it")
        return
    body.setdefault("custom_fields", {})[key] = value


def to_body(entity: str, fields: dict[str, Any], keys: FieldKeys, *, creating: bool) -> dict[str, Any]:
    """Canonical fields as a v2 create/update body.

    Raises ``ValueError`` naming the field when a value cannot be sent (an invalid CPF/CNPJ, a
    missing required name). Empty values are sent as null on updates, so clearing a field locally
    clears it in Pipedrive; creates leave them out.
    """
    get = fields.get
    body: dict[str, Any] = {}
    if entity == "contacts":
        email = checked_email(get("email"))
        first, last = clean_text(get("first_name")), clean_text(get("last_name"))
        name = " ".join(p for p in (first, last) if p) or email
        if not name:
            raise ValueError("name: a person needs a first name, a last name or an e-mail")
        body.update(name=name, first_name=first, last_name=last)
        body["emails"] = [{"value": email, "primary": True, "label": "work"}] if email else []
        phone = clean_text(get("phone"))
        body["phones"] = [{"value": phone, "primary": True, "label": "work"}] if phone else []
        for canonical in ("company_name", "job_title", "lifecycle_stage"):
            _set_custom(body, keys, canonical, clean_text(get(canonical)))
        _set_custom(body, keys, "document", normalize_document(get("document")))
    elif entity == "companies":
        name = clean_text(get("name"))
        if not name:
            raise ValueError("name: an organization needs a name")
        body["name"] = name
        city, country = clean_text(get("city")), clean_text(get("country"))
        body["address"] = {"value": ", ".join(p for p in (city, country) if p), "locality": city, "country": country} if (city or country) else None
        _set_custom(body, keys, "domain", normalize_domain(get("domain")))
        _set_custom(body, keys, "document", normalize_document(get("document")))
        _set_custom(body, keys, "phone", clean_text(get("phone")))
        _set_custom(body, keys, "industry", clean_text(get("industry")))
    else:
        title = clean_text(get("name"))
        if not title:
            raise ValueError("name: a deal needs a title")
        body["title"] = title
        amount = get("amount")
        body["value"] = float(_amount(amount)) if amount is not None else None
        body["currency"] = clean_text(get("currency"))
        for canonical, remote in (("stage", "stage_id"), ("pipeline", "pipeline_id")):
            value = clean_text(get(canonical))
            if value is not None and not value.isdigit():
                raise ValueError(f"{canonical}: Pipedrive {remote} must be a numeric id, not {value!r}")
            if value is not None:
                body[remote] = int(value)
        close = get("close_date")
        body["expected_close_date"] = close.astimezone(timezone.utc).date().isoformat() if isinstance(close, datetime) else (str(close)[:10] if close else None)
    if creating:
        body = {k: v for k, v in body.items() if v not in (None, [], {})}
        if "custom_fields" in body:
            body["custom_fields"] = {k: v for k, v in body["custom_fields"].items() if v is not None}
    return body
