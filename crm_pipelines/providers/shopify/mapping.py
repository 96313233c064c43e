"""Shopify resources <-> canonical fields, declared once per entity.

| entity    | canonical field | Shopify (GraphQL)                        | notes                                            |
|-----------|-----------------|------------------------------------------|--------------------------------------------------|
| contacts  | email           | Customer.email                           | lower-cased; Shopify rejects duplicates          |
| contacts  | first_name      | Customer.firstName                       |                                                  |
| contacts  | last_name       | Customer.lastName                        |                                                  |
| contacts  | phone           | Customer.phone                           | E.164 at Shopify (it normalizes what is sent)    |
| contacts  | company_name    | Customer.defaultAddress.company          | sent with the first address on create only       |
| contacts  | job_title, lifecycle_stage, document | —                   | no Shopify field; not synced                     |
| deals     | name            | Order.name (``#1001``)                    | sent on create; Shopify numbers it when absent    |
| deals     | amount          | Order.totalPriceSet.shopMoney.amount     | create: one custom line item of that price        |
| deals     | currency        | Order.currencyCode                       | required on create                               |
| deals     | stage           | Order.displayFinancialStatus (lower)     | ``paid``, ``pending``, ``authorized``...          |
| deals     | pipeline        | Order.displayFulfillmentStatus (lower)   | read only (set by fulfilment)                     |
| deals     | close_date      | Order.closedAt                           |                                                  |
| companies | name            | Company.name                             | B2B stores only                                  |
| companies | domain, document, phone, industry, city, country | —       | no Company field (locations/metafields); not synced |

Orders cannot change their amount, currency or financial status through ``orderUpdate``; the
writer reports such local changes as rejects instead of pretending to send them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text

#: GraphQL selections of one node per entity (what the reader requests).
NODE_FIELDS: dict[str, str] = {
    "contacts": "id email firstName lastName phone createdAt updatedAt defaultAddress { company }",
    "deals": "id name createdAt updatedAt closedAt currencyCode displayFinancialStatus displayFulfillmentStatus totalPriceSet { shopMoney { amount currencyCode } }",
    "companies": "id name createdAt updatedAt",
}
#: Requested cost of one node of NODE_FIELDS (objects cost 1, scalars 0).
NODE_COST: dict[str, int] = {"contacts": 2, "deals": 3, "companies": 1}

FINANCIAL_STATUSES = ("authorized", "expired", "paid", "partially_paid", "partially_refunded", "pending", "refunded", "voided")


def parse_timestamp(value: Any) -> datetime | None:
    """GraphQL ``DateTime`` (UTC ``Z``) or REST timestamps with an offset."""
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")



def _amount(value: Any) -> Decimal | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"amount {text!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def _lower(value: Any) -> str | None:
    return (clean_text(value) or "").lower() or None



@dataclass(frozen=True)
class FieldMap:
    canonical: str
    path: tuple[str, ...]
    to_local: Callable[[Any], Any]


FIELD_MAPS: dict[str, tuple[FieldMap, ...]] = {
    "contacts": (
        FieldMap("email", ("email",), checked_email),
        FieldMap("first_name", ("firstName",), clean_text),
        FieldMap("last_name", ("lastName",), clean_text),
        FieldMap("phone", ("phone",), clean_text),
        FieldMap("company_name", ("defaultAddress", "company"), clean_text),
    ),
    "deals": (
        FieldMap("name", ("name",), clean_text),
        FieldMap("amount", ("totalPriceSet", "shopMoney", "amount"), _amount),
        FieldMap("currency", ("currencyCode",), clean_text),
        FieldMap("stage", ("displayFinancialStatus",), _lower),
        FieldMap("pipeline", ("displayFulfillmentStatus",), _lower),
        FieldMap("close_date", ("closedAt",), parse_timestamp),
    ),
    "companies": (FieldMap("name", ("name",), clean_text),),
}


def _dig(node: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = node
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def to_remote_record(entity: str, node: dict[str, Any]) -> RemoteRecord | RecordError:
    """Map one GraphQL node to a canonical record, or say why it cannot be."""
    external_id = str(node.get("id", ""))
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for field_map in FIELD_MAPS[entity]:
        try:
            fields[field_map.canonical] = field_map.to_local(_dig(node, field_map.path))
        except (ValueError, TypeError) as exc:
            problems.append(f"{'.'.join(field_map.path)}: {exc}")
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    try:
        updated_at = parse_timestamp(node.get("updatedAt"))
        created_at = parse_timestamp(node.get("createdAt"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    return RemoteRecord(external_id, updated_at, fields, created_at=created_at)


# ------------------------------------------------------------------ writes


def create_input(entity: str, fields: dict[str, Any], key: str) -> dict[str, Any]:
    """The mutation input that creates ``fields``, tagged (or external-id'd) with ``key``.

    Raises ``ValueError`` naming the field when a record cannot be sent.
    """
    if entity == "contacts":
        data = _customer_fields(fields)
        data["tags"] = [key]
        if fields.get("company_name"):
            data["addresses"] = [{"company": fields["company_name"]}]
        return data
    if entity == "deals":
        return _order_create(fields, key)
    return {"company": {"name": _required(fields, "name", "a Shopify company needs a name"), "externalId": key}}


def update_input(entity: str, fields: dict[str, Any], external_id: str) -> dict[str, Any]:
    """The mutation variables that update ``external_id`` with ``fields``."""
    if entity == "contacts":
        return {"input": {"id": external_id} | _customer_fields(fields)}
    if entity == "companies":
        return {"companyId": external_id, "input": {"name": _required(fields, "name", "a Shopify company needs a name")}}
    raise ValueError("orders are updated by comparison, not by mutation")


def _customer_fields(fields: dict[str, Any]) -> dict[str, Any]:
    names = {"email": "email", "first_name": "firstName", "last_name": "lastName", "phone": "phone"}
    return {remote: str(fields[local]) for local, remote in names.items() if fields.get(local) not in (None, "")}


def _required(fields: dict[str, Any], name: str, message: str) -> Any:
    value = fields.get(name)
    if value in (None, ""):
        raise ValueError(message)
    return value


def financial_status(stage: Any) -> str | None:
    """The ``OrderCreateFinancialStatus`` for a canonical stage (None keeps Shopify's default)."""
    if stage in (None, ""):
        return None
    value = str(stage).strip().lower()
    if value not in FINANCIAL_STATUSES:
        raise ValueError(f"stage {stage!r} is not a Shopify financial status ({', '.join(FINANCIAL_STATUSES)})")
    return value.upper()


def _order_create(fields: dict[str, Any], key: str) -> dict[str, Any]:
    amount = _required(fields, "amount", "a Shopify order needs an amount (its one line item's price)")
    currency = str(_required(fields, "currency", "a Shopify order needs a currency")).upper()
    name = fields.get("name")
    order: dict[str, Any] = {
        "currency": currency,
        "lineItems": [{"title": str(name or "Pedido"), "quantity": 1, "priceSet": {"shopMoney": {"amount": format(Decimal(amount), "f"), "currencyCode": currency}}}],
        "tags": [key],
    }
    if name:
        order["name"] = str(name)
    status = financial_status(fields.get("stage"))
    if status:
        order["financialStatus"] = status
    if fields.get("close_date"):
        order["closedAt"] = format_timestamp(fields["close_date"])
    return order


def order_differences(fields: dict[str, Any], node: dict[str, Any]) -> list[str]:
    """Canonical deal fields that differ from the Shopify order (orderUpdate cannot change them)."""
    current = to_remote_record("deals", node)
    if isinstance(current, RecordError):
        return ["(unreadable order)"]
    differences = []
    for name in ("amount", "currency", "stage", "name"):
        local = fields.get(name)
        if local is None:
            continue
        remote = current.fields.get(name)
        if name == "amount":
            same = remote is not None and Decimal(local).quantize(Decimal("0.01")) == remote
        else:
            same = str(local).strip().lower() == str(remote or "").strip().lower()
        if not same:
            differences.append(name)
    return differences
