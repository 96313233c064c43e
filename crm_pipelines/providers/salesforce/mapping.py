"""Salesforce fields <-> canonical fields, declared once per entity.

| entity    | canonical field  | Salesforce field                 | notes                                      |
|-----------|------------------|----------------------------------|--------------------------------------------|
| contacts  | email            | Contact.Email                    | lower-cased; invalid -> reject             |
| contacts  | first_name       | Contact.FirstName                |                                            |
| contacts  | last_name        | Contact.LastName                 | required by Salesforce                     |
| contacts  | phone            | Contact.Phone                    |                                            |
| contacts  | company_name     | (not mapped)                     | a Contact points to an Account by AccountId|
| contacts  | job_title        | Contact.Title                    |                                            |
| contacts  | lifecycle_stage  | (not mapped)                     | no Contact equivalent                      |
| contacts  | document         | Contact.CPF_CNPJ__c (setting)    | CPF/CNPJ digits; invalid -> reject         |
| companies | name             | Account.Name                     | required by Salesforce                     |
| companies | domain           | Account.Website                  | read: URL -> bare domain; written bare     |
| companies | document         | Account.CPF_CNPJ__c (setting)    | CNPJ digits; invalid -> reject             |
| companies | phone            | Account.Phone                    |                                            |
| companies | industry         | Account.Industry                 | picklist value                             |
| companies | city             | Account.BillingCity              |                                            |
| companies | country          | Account.BillingCountry           |                                            |
| deals     | name             | Opportunity.Name                 | required                                   |
| deals     | amount           | Opportunity.Amount               | JSON number -> exact decimal (2 places)    |
| deals     | currency         | Opportunity.CurrencyIsoCode      | multi-currency orgs only (setting)         |
| deals     | stage            | Opportunity.StageName            | required picklist                          |
| deals     | pipeline         | (not mapped)                     | Salesforce has no pipelines                |
| deals     | close_date       | Opportunity.CloseDate            | date; required; midnight UTC locally       |

Every record also carries ``Id``, ``CreatedDate`` and ``SystemModstamp`` (the modification time the
sync uses: it also moves on system changes, and it is indexed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document, normalize_domain

DOCUMENT_FIELD = "CPF_CNPJ__c"
EXTERNAL_ID_FIELD = "Crm_Record_Id__c"
CURRENCY_FIELD = "CurrencyIsoCode"
MODIFIED_FIELD = "SystemModstamp"
SYSTEM_FIELDS = ("Id", "CreatedDate", MODIFIED_FIELD)


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce datetimes: ``2025-02-01T09:30:11.000+0000`` (also ``Z`` / ``+00:00``)."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def soql_datetime(value: datetime, *, round_up: bool = False) -> str:
    """A SOQL dateTime literal (``2025-02-01T09:30:11Z``), whole seconds as documented.

    Lower bounds are rounded down and upper bounds up, so a window never loses a record to the
    missing fraction (reading one more second costs nothing: records are de-duplicated).
    """
    moment = value.astimezone(timezone.utc)
    if round_up and moment.microsecond:
        from datetime import timedelta

        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: Any) -> datetime | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _date_out(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date().isoformat() if value.tzinfo else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]



def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"amount {value!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def _amount_out(value: Any) -> float | None:
    # Salesforce takes currency as a JSON number; two decimals survive a double exactly enough.
    return None if value is None else float(value)



def _text_out(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class FieldMap:
    canonical: str
    remote: str
    to_local: Callable[[Any], Any]
    to_remote: Callable[[Any], Any] = _text_out


@dataclass(frozen=True)
class Mapping:
    """The field maps of one org (its custom field names are settings)."""

    document_field: str = DOCUMENT_FIELD
    external_id_field: str = EXTERNAL_ID_FIELD
    currency_field: str | None = CURRENCY_FIELD

    def fields(self, entity: str) -> tuple[FieldMap, ...]:
        if entity == "contacts":
            return (
                FieldMap("email", "Email", checked_email),
                FieldMap("first_name", "FirstName", clean_text),
                FieldMap("last_name", "LastName", clean_text),
                FieldMap("phone", "Phone", clean_text),
                FieldMap("job_title", "Title", clean_text),
                FieldMap("document", self.document_field, normalize_document, normalize_document),
            )
        if entity == "companies":
            return (
                FieldMap("name", "Name", clean_text),
                FieldMap("domain", "Website", normalize_domain, lambda v: None if v is None else normalize_domain(v)),
                FieldMap("document", self.document_field, normalize_document, normalize_document),
                FieldMap("phone", "Phone", clean_text),
                FieldMap("industry", "Industry", clean_text),
                FieldMap("city", "BillingCity", clean_text),
                FieldMap("country", "BillingCountry", clean_text),
            )
        if entity == "deals":
            maps = [
                FieldMap("name", "Name", clean_text),
                FieldMap("amount", "Amount", _amount, _amount_out),
                FieldMap("stage", "StageName", clean_text),
                FieldMap("close_date", "CloseDate", _date, _date_out),
            ]
            if self.currency_field:
                maps.insert(2, FieldMap("currency", self.currency_field, clean_text))
            return tuple(maps)
        raise ValueError(f"unknown entity {entity!r}")

    def select_fields(self, entity: str) -> list[str]:
        """Fields to SELECT for ``entity``: system fields, then the mapped ones."""
        return [*SYSTEM_FIELDS, *(m.remote for m in self.fields(entity))]

    def to_remote_record(self, entity: str, obj: dict[str, Any], *, archived: bool = False) -> RemoteRecord | RecordError:
        """Map one SOQL row to a canonical record, or say why it cannot be."""
        external_id = str(obj.get("Id") or "")
        values: dict[str, Any] = {}
        problems: list[str] = []
        for field_map in self.fields(entity):
            try:
                values[field_map.canonical] = field_map.to_local(obj.get(field_map.remote))
            except (ValueError, TypeError) as exc:
                problems.append(f"{field_map.remote}: {exc}")
        if not external_id:
            return RecordError("", "MISSING_ID", "record without Id")
        if problems:
            return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
        try:
            updated_at = parse_datetime(obj.get(MODIFIED_FIELD))
            created_at = parse_datetime(obj.get("CreatedDate"))
        except ValueError as exc:
            return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
        return RemoteRecord(external_id, updated_at, values, archived=archived or bool(obj.get("IsDeleted")), created_at=created_at)

    def to_sobject(self, entity: str, values: dict[str, Any], *, clear_missing: bool = False) -> dict[str, Any]:
        """Canonical fields as Salesforce fields for a write.

        Empty values are left out of creates; with ``clear_missing`` (updates) they are sent as
        ``null``, which clears the field in Salesforce. Raises ``ValueError`` naming the field when
        a value cannot be sent (an invalid CPF/CNPJ).
        """
        out: dict[str, Any] = {}
        for field_map in self.fields(entity):
            value = values.get(field_map.canonical)
            if value is not None:
                out[field_map.remote] = field_map.to_remote(value)
            elif clear_missing:
                out[field_map.remote] = None
        return out
