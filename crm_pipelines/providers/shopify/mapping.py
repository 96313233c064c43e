"""Shopify GraphQL nodes <-> local columns, read and written through the loaded field mapping
(built-in: ``crm_pipelines/mapping/defaults/shopify.yaml``).

Contacts are customers, deals orders, companies B2B companies (Shopify Plus stores only). A
mapping names a node's field by its GraphQL name, dotted for nested objects
(``defaultAddress.company``, ``totalPriceSet.shopMoney.amount``), and a metafield (Shopify's
custom field) as ``metafields.NAMESPACE.KEY``. Readers ask for each mapped metafield by an alias
(``mf0: metafield(namespace:, key:) { value }``); a bulk read selects them as the owner's
``metafields(keys:)`` connection, whose objects come as JSONL lines after their owner with
``__parentId``. Metafield values travel as text; on write each carries its type (the store's
metafield definition's, else one fitting the mapped field's type). A blank value is not sent
(Shopify refuses blank metafields), so a value cleared locally stays at Shopify.

Fields Shopify cannot hold (a customer's job title or CPF/CNPJ, a company's domain...) are left
out of the mapping: they are never sent, and imports never touch them locally. A customer's
``defaultAddress.company`` goes out with its first address, on create only. Orders cannot
change their amount, currency, financial status or name through ``orderUpdate``; the writer
reports such local changes as rejects instead of pretending to send them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_text
from crm_pipelines.mapping.compiled import CompiledMapping, default
from crm_pipelines.mapping.types import Codec, amount_from
from crm_pipelines.providers.shopify.api import MAX_QUERY_COST, PAGE_MAX, PROVIDER

#: GraphQL selections of one node per entity (what the reader requests besides mapped metafields).
NODE_FIELDS: dict[str, str] = {
    "contacts": "id email firstName lastName phone createdAt updatedAt defaultAddress { company }",
    "deals": "id name createdAt updatedAt closedAt currencyCode displayFinancialStatus displayFulfillmentStatus totalPriceSet { shopMoney { amount currencyCode } }",
    "companies": "id name createdAt updatedAt",
}
#: Requested cost of one node of NODE_FIELDS (objects cost 1, scalars 0).
NODE_COST: dict[str, int] = {"contacts": 2, "deals": 3, "companies": 1}

FINANCIAL_STATUSES = ("authorized", "expired", "paid", "partially_paid", "partially_refunded", "pending", "refunded", "voided")
METAFIELD_PREFIX = "metafields."
ADDRESS_PREFIX = "defaultAddress."
#: The metafield type a value gets when the store has no definition for it, by the mapped field's type.
METAFIELD_TYPES = {"number": "number_decimal", "boolean": "boolean", "date": "date"}
TEXT_METAFIELD = "single_line_text_field"


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
    return amount_from(text, shown=text, label="amount ")


#: Shopify's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(_amount, lambda v: v),
    "datetime": Codec(parse_timestamp, lambda v: format_timestamp(v) if isinstance(v, datetime) else v),
}


def _mapping(mapping: CompiledMapping | None) -> CompiledMapping:
    return mapping or default(PROVIDER)


# ------------------------------------------------------------------ metafields


@dataclass(frozen=True)
class MetafieldRef:
    """One metafield a mapping names: ``metafields.NAMESPACE.KEY``, and the alias a read gives it."""

    remote: str
    namespace: str
    key: str
    alias: str

    @property
    def full_key(self) -> str:
        return f"{self.namespace}.{self.key}"


def split_metafield(remote: str) -> tuple[str, str]:
    """``(namespace, key)`` of ``metafields.NAMESPACE.KEY``; ``ValueError`` when it names no metafield."""
    namespace, _, key = remote[len(METAFIELD_PREFIX):].partition(".")
    if not namespace or not key or "." in key:
        raise ValueError(f"{remote}: a metafield is named metafields.NAMESPACE.KEY")
    return namespace, key


def metafields(entity: str, mapping: CompiledMapping | None = None, *, imported: bool = True) -> tuple[MetafieldRef, ...]:
    """The metafields the mapping reads (``imported``) or writes for ``entity``, in mapping order."""
    return _metafields(entity, _mapping(mapping), imported)


@functools.lru_cache(maxsize=64)
def _metafields(entity: str, mapping: CompiledMapping, imported: bool) -> tuple[MetafieldRef, ...]:
    chosen = mapping.imported(entity) if imported else mapping.exported(entity)
    refs = []
    for number, mapped in enumerate(f for f in chosen if f.remote.startswith(METAFIELD_PREFIX)):
        namespace, key = split_metafield(mapped.remote)
        refs.append(MetafieldRef(mapped.remote, namespace, key, f"mf{number}"))
    return tuple(refs)


def node_fields(entity: str, mapping: CompiledMapping | None = None) -> str:
    """The selection of one node: :data:`NODE_FIELDS` and each mapped metafield by its alias."""
    extra = "".join(f' {r.alias}: metafield(namespace: "{r.namespace}", key: "{r.key}") {{ value }}' for r in metafields(entity, mapping))
    return NODE_FIELDS[entity] + extra


def node_cost(entity: str, mapping: CompiledMapping | None = None) -> int:
    """Requested cost of one node of :func:`node_fields` (each metafield is an object: 1)."""
    return NODE_COST[entity] + len(metafields(entity, mapping))


def page_size(entity: str, mapping: CompiledMapping | None = None) -> int:
    """Nodes per page whose requested cost stays within the single-query cap."""
    return max(1, min(PAGE_MAX, (MAX_QUERY_COST - 2) // node_cost(entity, mapping)))


def bulk_fields(entity: str, mapping: CompiledMapping | None = None) -> str:
    """The selection of one node in a bulk query: mapped metafields as the ``metafields(keys:)`` connection."""
    refs = metafields(entity, mapping)
    if not refs:
        return NODE_FIELDS[entity]
    keys = ", ".join(f'"{r.full_key}"' for r in refs)
    return f"{NODE_FIELDS[entity]} metafields(keys: [{keys}]) {{ edges {{ node {{ id namespace key value }} }} }}"


def adopt_children(entity: str, node: dict[str, Any], mapping: CompiledMapping | None = None) -> dict[str, Any]:
    """A bulk root with its child lines (``__children``): metafields put where a regular read has them."""
    children = node.pop("__children", None) or []
    by_key = {f"{c.get('namespace')}.{c.get('key')}": c for c in children if isinstance(c, dict) and c.get("key")}
    for ref in metafields(entity, mapping):
        child = by_key.get(ref.full_key)
        node[ref.alias] = {"value": child.get("value")} if child else None
    return node


# ------------------------------------------------------------------ reads


def _dig(node: Mapping[str, Any], path: str) -> Any:
    value: Any = node
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _value_reader(entity: str, node: Mapping[str, Any], mapping: CompiledMapping) -> Callable[[str], Any]:
    aliases = {r.remote: r.alias for r in metafields(entity, mapping)}

    def value_of(remote: str) -> Any:
        if remote in aliases:
            found = node.get(aliases[remote])
            return found.get("value") if isinstance(found, Mapping) else None
        return _dig(node, remote)

    return value_of


def to_remote_record(entity: str, node: dict[str, Any], mapping: CompiledMapping | None = None) -> RemoteRecord | RecordError:
    """Map one GraphQL node to local values, or say why it cannot be."""
    external_id = str(node.get("id", ""))
    chosen = _mapping(mapping)
    fields, problems = chosen.read(entity, _value_reader(entity, node, chosen))
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    try:
        updated_at = parse_timestamp(node.get("updatedAt"))
        created_at = parse_timestamp(node.get("createdAt"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    return RemoteRecord(external_id, updated_at, fields, created_at=created_at)


# ------------------------------------------------------------------ writes


#: Order fields the create input takes under its own names.
ORDER_AMOUNT, ORDER_CURRENCY, ORDER_STATUS, ORDER_CLOSED = "totalPriceSet.shopMoney.amount", "currencyCode", "displayFinancialStatus", "closedAt"


@dataclass
class Written:
    """One record's exported values, sorted by where Shopify takes them."""

    plain: dict[str, Any]
    address: dict[str, Any]
    metafields: list[dict[str, str]]


def _metafield_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _metafield_type(mapping: CompiledMapping, entity: str, ref: MetafieldRef, value: Any, types: Mapping[str, str]) -> str:
    if ref.full_key in types:
        return types[ref.full_key]
    mapped = mapping.field(entity, ref.remote)
    kind = mapped.type if mapped is not None else "text"
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return "number_integer"
    return METAFIELD_TYPES.get(kind, TEXT_METAFIELD)


def _written(entity: str, fields: Mapping[str, Any], mapping: CompiledMapping | None, types: Mapping[str, str] | None) -> Written:
    """The mapping's export of ``fields``: plain node fields, address parts and metafield inputs (blanks left out)."""
    chosen = _mapping(mapping)
    values = chosen.write(entity, fields)
    refs = {r.remote: r for r in metafields(entity, chosen, imported=False)}
    out = Written({}, {}, [])
    for remote, value in values.items():
        if remote in refs:
            if value not in (None, ""):
                ref = refs[remote]
                out.metafields.append({"namespace": ref.namespace, "key": ref.key, "value": _metafield_text(value),
                                       "type": _metafield_type(chosen, entity, ref, value, types or {})})
        elif remote.startswith(ADDRESS_PREFIX) and entity == "contacts":
            out.address[remote[len(ADDRESS_PREFIX):]] = value
        elif "." in remote and remote != ORDER_AMOUNT:
            raise ValueError(f"{remote}: Shopify takes no such input; map it with direction: import")
        else:
            out.plain[remote] = value
    return out


def create_input(entity: str, fields: dict[str, Any], key: str, *, mapping: CompiledMapping | None = None,
                 metafield_types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The mutation input that creates ``fields``, tagged (or external-id'd) with ``key``.

    Raises ``ValueError`` naming the field when a record cannot be sent.
    """
    written = _written(entity, fields, mapping, metafield_types)
    if entity == "contacts":
        data = _sent(written.plain)
        data["tags"] = [key]
        address = {name: str(value) for name, value in written.address.items() if value not in (None, "")}
        if address:
            data["addresses"] = [address]
        if written.metafields:
            data["metafields"] = written.metafields
        return data
    if entity == "deals":
        return _order_create(written, key)
    _no_metafields(entity, written)
    return {"company": {**_sent(written.plain), "name": _required(written.plain, "name", "a Shopify company needs a name"), "externalId": key}}


def update_input(entity: str, fields: dict[str, Any], external_id: str, *, mapping: CompiledMapping | None = None,
                 metafield_types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The mutation variables that update ``external_id`` with ``fields`` (a customer's address is left as it is)."""
    written = _written(entity, fields, mapping, metafield_types)
    if entity == "contacts":
        return {"input": {"id": external_id} | _sent(written.plain) | ({"metafields": written.metafields} if written.metafields else {})}
    if entity == "companies":
        _no_metafields(entity, written)
        return {"companyId": external_id, "input": {**_sent(written.plain), "name": _required(written.plain, "name", "a Shopify company needs a name")}}
    raise ValueError("orders are updated by comparison, not by mutation")


def _sent(plain: Mapping[str, Any]) -> dict[str, Any]:
    """Plain fields as mutation input: text, blanks left out (Shopify keeps what it has)."""
    return {remote: str(value) for remote, value in plain.items() if value not in (None, "")}


def _no_metafields(entity: str, written: Written) -> None:
    if written.metafields:
        raise ValueError(f"{written.metafields[0]['namespace']}.{written.metafields[0]['key']}: metafields of Shopify {entity} are read only here")


def _required(fields: Mapping[str, Any], name: str, message: str) -> Any:
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


def _order_create(written: Written, key: str) -> dict[str, Any]:
    plain = dict(written.plain)
    amount = _required(plain, ORDER_AMOUNT, "a Shopify order needs an amount (its one line item's price)")
    currency = str(_required(plain, ORDER_CURRENCY, "a Shopify order needs a currency")).upper()
    status, closed = financial_status(plain.pop(ORDER_STATUS, None)), plain.pop(ORDER_CLOSED, None)
    name = plain.pop("name", None)
    plain.pop(ORDER_AMOUNT), plain.pop(ORDER_CURRENCY)
    order: dict[str, Any] = {
        **_sent(plain),
        "currency": currency,
        "lineItems": [{"title": str(name or "Pedido"), "quantity": 1, "priceSet": {"shopMoney": {"amount": format(Decimal(amount), "f"), "currencyCode": currency}}}],
        "tags": [key],
    }
    if name:
        order["name"] = str(name)
    if status:
        order["financialStatus"] = status
    if closed:
        order["closedAt"] = closed
    if written.metafields:
        order["metafields"] = written.metafields
    return order


def order_differences(fields: dict[str, Any], node: dict[str, Any], mapping: CompiledMapping | None = None) -> list[str]:
    """Local deal fields that differ from the Shopify order (orderUpdate cannot change them)."""
    current = to_remote_record("deals", node, mapping)
    if isinstance(current, RecordError):
        return ["(unreadable order)"]
    differences = []
    for name in ("amount", "currency", "stage", "name"):
        local = fields.get(name)
        if local is None or name not in current.fields:
            continue
        remote = current.fields.get(name)
        if name == "amount":
            same = remote is not None and Decimal(local).quantize(Decimal("0.01")) == remote
        else:
            same = str(local).strip().lower() == str(remote or "").strip().lower()
        if not same:
            differences.append(name)
    return differences
