"""Metafields on the Shopify simulator: Shopify's custom fields, typed, by namespace and key.

* Every simulated shop has the metafield definitions of :data:`DEFINITIONS` (name, namespace,
  key, type), listed by ``metafieldDefinitions(ownerType:, first:)`` with ``type { name }``.
* Customers, orders and companies answer ``metafield(namespace:, key:)`` (null when unset) and
  ``metafields(first:, after:, namespace:, keys:)``, a connection (``first`` or ``last`` required,
  at most 250, except inside a bulk query, where its objects become JSONL lines with
  ``__parentId``).
* ``customerCreate``/``customerUpdate`` (``CustomerInput.metafields``) and ``orderCreate``
  (``OrderCreateOrderInput.metafields``) take ``[MetafieldInput]``: ``namespace``, ``key``,
  ``value`` (text) and ``type`` (required when no definition exists; when one does, it must be the
  definition's). The value is checked against its type; a problem is a ``userError`` at
  ``["metafields", "<index>", "value"|"type"]`` and nothing is written. A metafield given again
  replaces its value; the others are kept.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError, GraphQLSchema

#: Metafield definitions of every simulated shop, by owner type: (name, namespace, key, type).
DEFINITIONS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "CUSTOMER": (
        ("Favorite color", "custom", "favorite_color", "single_line_text_field"),
        ("Loyalty tier", "custom", "loyalty_tier", "single_line_text_field"),
        ("Lead channel", "custom", "lead_channel", "single_line_text_field"),
        ("Birthday", "custom", "birthday", "date"),
        ("Referrals", "custom", "referrals", "number_integer"),
        ("Newsletter", "custom", "newsletter", "boolean"),
    ),
    "ORDER": (("Gift message", "custom", "gift_message", "multi_line_text_field"), ("Priority", "custom", "priority", "number_integer")),
    "COMPANY": (("Segment", "custom", "segment", "single_line_text_field"),),
}
OWNER_TYPES = {"customers": "CUSTOMER", "orders": "ORDER", "companies": "COMPANY"}
OWNER_GIDS = {"Customer": "CUSTOMER", "Order": "ORDER", "Company": "COMPANY"}
PAGE_MAX = 250

SDL = """
enum MetafieldOwnerType { COMPANY CUSTOMER ORDER }
type Metafield implements Node { id: ID! namespace: String! key: String! value: String! type: String! ownerType: MetafieldOwnerType! }
type MetafieldEdge { cursor: String! node: Metafield! }
type MetafieldConnection { edges: [MetafieldEdge!]! nodes: [Metafield!]! pageInfo: PageInfo! }
type MetafieldDefinitionType { name: String! category: String }
type MetafieldDefinition implements Node { id: ID! name: String! namespace: String! key: String! description: String type: MetafieldDefinitionType! ownerType: MetafieldOwnerType! }
type MetafieldDefinitionEdge { cursor: String! node: MetafieldDefinition! }
type MetafieldDefinitionConnection { edges: [MetafieldDefinitionEdge!]! nodes: [MetafieldDefinition!]! pageInfo: PageInfo! }
input MetafieldInput { id: ID namespace: String key: String value: String type: String }
"""
#: The fields each metafield owner type gains (added to Customer, Order and Company).
OWNER_FIELDS = ("metafield(namespace: String, key: String!): Metafield "
                "metafields(first: Int, after: String, last: Int, before: String, namespace: String, keys: [String!], reverse: Boolean = false): MetafieldConnection!")
APP_NAMESPACE = "$app"


def _definition(owner: str, namespace: str, key: str) -> tuple[str, str, str, str] | None:
    return next((d for d in DEFINITIONS.get(owner, ()) if d[1] == namespace and d[2] == key), None)


def render(kind: str, owner_id: int, stored: list[dict[str, str]] | None) -> list[dict[str, Any]]:
    """A record's metafields as GraphQL objects (ids follow their order on the record)."""
    owner = OWNER_TYPES[kind]
    return [{"__typename": "Metafield", "id": f"gid://shopify/Metafield/{owner_id * 1000 + n}", "ownerType": owner, **m}
            for n, m in enumerate(stored or (), start=1)]


def _value_problem(kind: str, value: str) -> str | None:
    if kind == "number_integer":
        try:
            int(value)
        except ValueError:
            return "Value must be an integer."
    elif kind == "number_decimal":
        try:
            if not Decimal(value).is_finite():
                return "Value must be a decimal."
        except InvalidOperation:
            return "Value must be a decimal."
    elif kind == "boolean" and value not in ("true", "false"):
        return "Value must be true or false."
    elif kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return "Value must be in YYYY-MM-DD format."
    elif kind == "single_line_text_field" and "\n" in value:
        return "Value must be a single line text string."
    return None


def apply(kind: str, stored: list[dict[str, str]] | None, inputs: list[Mapping[str, Any]] | None) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """``stored`` with ``inputs`` set (by namespace and key), and the userErrors (nothing applies when there are any)."""
    out = [dict(m) for m in stored or ()]
    errors: list[dict[str, Any]] = []
    owner = OWNER_TYPES[kind]
    for index, item in enumerate(inputs or ()):
        where = ["metafields", str(index)]
        namespace, key, value = item.get("namespace") or APP_NAMESPACE, item.get("key"), item.get("value")
        definition = _definition(owner, namespace, key or "")
        kind_given = item.get("type")
        if not key:
            errors.append({"field": [*where, "key"], "message": "Key can't be blank", "code": "BLANK"})
            continue
        if value is None or str(value).strip() == "":
            errors.append({"field": [*where, "value"], "message": "Value can't be blank", "code": "BLANK"})
            continue
        if definition is not None and kind_given and kind_given != definition[3]:
            errors.append({"field": [*where, "type"], "message": f"Type must be the same as the definition's type: {definition[3]}.", "code": "INVALID_TYPE"})
            continue
        value_type = definition[3] if definition is not None else kind_given
        if not value_type:
            errors.append({"field": [*where, "type"], "message": "Type can't be blank", "code": "BLANK"})
            continue
        problem = _value_problem(value_type, str(value))
        if problem:
            errors.append({"field": [*where, "value"], "message": problem, "code": "INVALID_VALUE"})
            continue
        entry = {"namespace": namespace, "key": key, "type": value_type, "value": str(value)}
        found = next((m for m in out if m["namespace"] == namespace and m["key"] == key), None)
        if found is None:
            out.append(entry)
        else:
            found.update(entry)
    return (list(stored or ()), errors) if errors else (out, [])


def _connection(items: list[dict[str, Any]], first: int | None, after: str | None, last: int | None, bulk: bool) -> dict[str, Any]:
    if first is None and last is None and not bulk:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    size = first if first is not None else last
    if size is not None and not bulk and not 0 <= size <= PAGE_MAX:
        raise GraphQLError(f"The page size must be between 0 and {PAGE_MAX}.", extensions={"code": "BAD_REQUEST"})
    start = 0
    if after:
        try:
            start = int(base64.b64decode(after).decode()) + 1
        except ValueError:
            raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from None
    chosen = items[start:]
    page = chosen if size is None else (chosen[:size] if first is not None else chosen[-size:])
    offset = start if first is not None or size is None else start + len(chosen) - len(page)
    edges = [{"cursor": base64.b64encode(str(offset + n).encode()).decode(), "node": node} for n, node in enumerate(page)]
    return {"edges": edges, "nodes": page, "pageInfo": {"hasNextPage": first is not None and len(chosen) > len(page), "hasPreviousPage": start > 0,
                                                        "startCursor": edges[0]["cursor"] if edges else None, "endCursor": edges[-1]["cursor"] if edges else None}}


def _owner_metafield(source: Mapping[str, Any], info: Any, key: str, namespace: str | None = None) -> dict[str, Any] | None:
    wanted = namespace or APP_NAMESPACE
    return next((m for m in source.get("metafields") or () if m["namespace"] == wanted and m["key"] == key), None)


def _owner_metafields(source: Mapping[str, Any], info: Any, first: int | None = None, after: str | None = None, last: int | None = None,
                      before: str | None = None, namespace: str | None = None, keys: list[str] | None = None, reverse: bool = False) -> dict[str, Any]:
    items = [m for m in source.get("metafields") or ()
             if (namespace is None or m["namespace"] == namespace) and (keys is None or f"{m['namespace']}.{m['key']}" in keys)]
    if reverse:
        items.reverse()
    return _connection(items, first, after, last, bool(getattr(info.root_value, "bulk", False)))


def definitions(ownerType: str, first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
                namespace: str | None = None, key: str | None = None, query: str | None = None, **_: Any) -> dict[str, Any]:
    """``metafieldDefinitions(ownerType:)``: the shop's definitions of one owner type."""
    nodes = [{"__typename": "MetafieldDefinition", "id": f"gid://shopify/MetafieldDefinition/{n}", "name": name, "namespace": ns, "key": k,
              "description": None, "type": {"name": kind, "category": None}, "ownerType": ownerType}
             for n, (name, ns, k, kind) in enumerate(DEFINITIONS.get(ownerType, ()), start=1)
             if (namespace is None or ns == namespace) and (key is None or k == key)]
    return _connection(nodes, first, after, last, False)


def install(schema: GraphQLSchema) -> None:
    """Resolve the metafield fields of the owner types (their values sit in the rendered record's ``metafields``)."""
    for type_name in OWNER_GIDS:
        fields = schema.type_map[type_name].fields  # type: ignore[union-attr]
        fields["metafield"].resolve = _owner_metafield
        fields["metafields"].resolve = _owner_metafields


__all__ = ["DEFINITIONS", "OWNER_FIELDS", "SDL", "apply", "definitions", "install", "render"]
