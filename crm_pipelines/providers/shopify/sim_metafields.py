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

The metafield types, and the ``metafield``/``metafields`` fields they add to the owner types, are
in ``sim_metafields.graphql`` beside this module.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from graphql import GraphQLSchema

from crm_pipelines.providers.shopify.api import PAGE_MAX
from crm_pipelines.providers.shopify.sim_graphql import bad_request, connection, page_size

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

APP_NAMESPACE = "$app"


def _definition(owner: str, namespace: str, key: str) -> tuple[str, str, str, str] | None:
    return next((d for d in DEFINITIONS.get(owner, ()) if d[1] == namespace and d[2] == key), None)


def render(kind: str, owner_id: int, stored: list[dict[str, str]] | None) -> list[dict[str, Any]]:
    """A record's metafields as GraphQL objects (ids follow their order on the record)."""
    owner = OWNER_TYPES[kind]
    return [{"__typename": "Metafield", "id": f"gid://shopify/Metafield/{owner_id * 1000 + n}", "ownerType": owner, **m}
            for n, m in enumerate(stored or (), start=1)]


#: What a value of each type must be: type -> (a check that raises or answers False for a bad value, the problem).
VALUE_CHECKS: dict[str, tuple[Callable[[str], Any], str]] = {
    "number_integer": (int, "Value must be an integer."),
    "number_decimal": (lambda value: Decimal(value).is_finite(), "Value must be a decimal."),
    "boolean": (lambda value: value in ("true", "false"), "Value must be true or false."),
    "date": (date.fromisoformat, "Value must be in YYYY-MM-DD format."),
    "single_line_text_field": (lambda value: "\n" not in value, "Value must be a single line text string."),
}


def _value_problem(kind: str, value: str) -> str | None:
    check, problem = VALUE_CHECKS.get(kind, (str, None))
    try:
        return problem if check(value) is False else None
    except (ValueError, ArithmeticError):
        return problem


def _input_problem(item: Mapping[str, Any], definition: tuple[str, str, str, str] | None) -> tuple[str, str, str] | None:
    """What is wrong with one ``MetafieldInput``: (the input field, message, code)."""
    value, given = item.get("value"), item.get("type")
    if not item.get("key"):
        return "key", "Key can't be blank", "BLANK"
    if value is None or str(value).strip() == "":
        return "value", "Value can't be blank", "BLANK"
    if definition is not None and given and given != definition[3]:
        return "type", f"Type must be the same as the definition's type: {definition[3]}.", "INVALID_TYPE"
    if not (definition[3] if definition is not None else given):
        return "type", "Type can't be blank", "BLANK"
    problem = _value_problem(definition[3] if definition is not None else given, str(value))
    return ("value", problem, "INVALID_VALUE") if problem else None


def apply(kind: str, stored: list[dict[str, str]] | None, inputs: list[Mapping[str, Any]] | None) -> tuple[list[dict[str, str]], list[tuple]]:
    """``stored`` with ``inputs`` set (by namespace and key), and the problems as ``(field, message, code)`` (nothing applies when there are any)."""
    out, problems = [dict(m) for m in stored or ()], []
    for index, item in enumerate(inputs or ()):
        namespace, key = item.get("namespace") or APP_NAMESPACE, item.get("key")
        definition = _definition(OWNER_TYPES[kind], namespace, key or "")
        problem = _input_problem(item, definition)
        if problem:
            problems.append((["metafields", str(index), problem[0]], *problem[1:]))
            continue
        entry = {"namespace": namespace, "key": key, "type": definition[3] if definition is not None else item["type"], "value": str(item["value"])}
        found = next((m for m in out if m["namespace"] == namespace and m["key"] == key), None)
        if found is None:
            out.append(entry)
        else:
            found.update(entry)
    return (list(stored or ()), problems) if problems else (out, [])


def _connection(items: list[dict[str, Any]], bulk: bool, first: int | None = None, after: str | None = None, last: int | None = None, **_: Any) -> dict[str, Any]:
    first, size = page_size(first, last, PAGE_MAX, bulk)
    start = 0
    if after:
        try:
            start = int(base64.b64decode(after).decode()) + 1
        except ValueError:
            raise bad_request("Invalid cursor for current pagination sort.") from None
    chosen = list(enumerate(items))[start:]
    page = chosen[:size] if first is not None else chosen[-size:]
    return connection(page, lambda pair: base64.b64encode(str(pair[0]).encode()).decode(), lambda pair: pair[1],
                      first is not None and len(chosen) > len(page), start > 0)


def _owner_metafield(source: Mapping[str, Any], info: Any, key: str, namespace: str | None = None) -> dict[str, Any] | None:
    return next((m for m in source.get("metafields") or () if m["namespace"] == (namespace or APP_NAMESPACE) and m["key"] == key), None)


def _owner_metafields(source: Mapping[str, Any], info: Any, namespace: str | None = None, keys: list[str] | None = None, reverse: bool = False,
                      **page: Any) -> dict[str, Any]:
    items = [m for m in source.get("metafields") or ()
             if (namespace is None or m["namespace"] == namespace) and (keys is None or f"{m['namespace']}.{m['key']}" in keys)]
    if reverse:
        items.reverse()
    return _connection(items, bool(getattr(info.root_value, "bulk", False)), **page)


def definitions(ownerType: str, namespace: str | None = None, key: str | None = None, **page: Any) -> dict[str, Any]:
    """``metafieldDefinitions(ownerType:)``: the shop's definitions of one owner type."""
    nodes = [{"__typename": "MetafieldDefinition", "id": f"gid://shopify/MetafieldDefinition/{n}", "name": name, "namespace": ns, "key": k,
              "description": None, "type": {"name": kind, "category": None}, "ownerType": ownerType}
             for n, (name, ns, k, kind) in enumerate(DEFINITIONS.get(ownerType, ()), start=1)
             if (namespace is None or ns == namespace) and (key is None or k == key)]
    return _connection(nodes, False, **page)


def install(schema: GraphQLSchema) -> None:
    """Resolve the metafield fields of the owner types (their values sit in the rendered record's ``metafields``)."""
    for type_name in OWNER_GIDS:
        fields = schema.type_map[type_name].fields  # type: ignore[union-attr]
        fields["metafield"].resolve = _owner_metafield
        fields["metafields"].resolve = _owner_metafields


__all__ = ["DEFINITIONS", "apply", "definitions", "install", "render"]
