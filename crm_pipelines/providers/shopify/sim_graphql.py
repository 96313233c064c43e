"""The GraphQL side of the Shopify simulator: schema subset, search syntax, query cost.

* ``sim_graphql.graphql`` (beside this module) is the subset of the Admin API schema the sync uses
  (customers, orders, companies, events, counts, ``nodes``, bulk operations, and the
  create/update/delete mutations with ``userErrors``); ``sim_metafields.graphql`` adds the
  metafields of :mod:`.sim_metafields`.
* :func:`parse_search` reads Shopify's search syntax (``field:value``, comparators ``> >= < <=``,
  quoted values, ``AND`` / ``OR`` / ``NOT`` / ``-field:``; AND binds tighter than OR; no
  parentheses) into a predicate over a record's search fields. Unknown fields are ignored and
  reported as search warnings, as the Admin API does.
* What every resolver shares: :func:`page_size` and :func:`connection` (``first``/``last``
  checks, ``edges``/``nodes``/``pageInfo``), :func:`mutation` and :class:`UserErrors` (a payload
  with its object or its ``userErrors``), :func:`bad_request`.
* :func:`query_cost` prices an operation the Shopify way: scalars and enums 0, objects 1,
  connections 2 + page size x item cost, mutations 10 each; ``requested`` from the arguments
  (before running), ``actual`` from the data returned (null objects cost nothing).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    build_schema,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_leaf_type,
    is_list_type,
    value_from_ast,
)
from graphql.language import DocumentNode, FragmentDefinitionNode, SelectionSetNode

from crm_pipelines.providers.shopify.api import MUTATION_COST

_SCHEMA: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    """The schema of ``sim_graphql.graphql`` and ``sim_metafields.graphql``, built once per process."""
    global _SCHEMA
    if _SCHEMA is None:
        from crm_pipelines.providers.shopify import sim_metafields

        files = resources.files(__package__)
        _SCHEMA = build_schema("".join(files.joinpath(name).read_text(encoding="utf-8") for name in ("sim_graphql.graphql", "sim_metafields.graphql")))
        sim_metafields.install(_SCHEMA)
    return _SCHEMA


def bad_request(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_REQUEST"})


class UserErrors(Exception):
    """A mutation's input problems, each ``(field, message, code)``: its payload lists them and nothing is written."""

    def __init__(self, *problems: tuple[list[str] | None, str, str | None]) -> None:
        super().__init__(problems)
        self.errors = [{"field": field, "message": message, "code": code} for field, message, code in problems]


def mutation(key: str, action: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """A mutation resolver: the payload holds what ``action`` answers under ``key``, or the :class:`UserErrors` it raised."""

    def resolve(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return {key: action(*args, **kwargs), "userErrors": []}
        except UserErrors as problems:
            return {key: None, "userErrors": problems.errors}

    return resolve


def page_size(first: int | None, last: int | None, maximum: int, bulk: bool = False) -> tuple[int | None, int]:
    """``(first, size)`` of a connection page: ``first`` or ``last`` is required, between 0 and
    ``maximum``; a bulk query reads the whole connection (no page size needed)."""
    if bulk and first is None and last is None:
        first = 1 << 62
    size = first if first is not None else last
    if size is None:
        raise bad_request("you must provide one of first or last")
    if size < 0 or (size > maximum and not bulk):
        raise bad_request(f"The page size must be between 0 and {maximum}.")
    return first, size


def connection(page: list[Any], cursor: Callable[[Any], str], node: Callable[[Any], Any], has_next: bool, has_previous: bool) -> dict[str, Any]:
    """A connection's ``edges``, ``nodes`` and ``pageInfo`` for one page."""
    edges = [{"cursor": cursor(item), "node": node(item)} for item in page]
    return {"edges": edges, "nodes": [e["node"] for e in edges], "pageInfo": {
        "hasNextPage": has_next, "hasPreviousPage": has_previous,
        "startCursor": edges[0]["cursor"] if edges else None, "endCursor": edges[-1]["cursor"] if edges else None}}


# Search syntax
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<conn>AND|OR|NOT)(?=\s|$)
      | (?P<neg>-)?(?P<field>[A-Za-z_][A-Za-z0-9_.]*):(?P<op><=|>=|<|>|=)?
            (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s]+)
      | (?P<word>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s]+)
    )""",
    re.VERBOSE,
)

DATE_FIELDS = frozenset({"updated_at", "created_at", "processed_at", "customer_since", "since_date"})


@dataclass(frozen=True)
class Term:
    field: str | None
    op: str
    value: str
    negated: bool = False


@dataclass
class Search:
    """A parsed ``query`` argument: OR of AND groups of terms, plus warnings for ignored fields."""

    groups: list[list[Term]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def matches(self, values: Callable[[str], Any]) -> bool:
        return not self.groups or any(all(_term_matches(t, values) != t.negated for t in group) for group in self.groups)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_search(query: str | None, known_fields: frozenset[str]) -> Search:
    search, group, negate_next = Search(), [], False
    for match in _TOKEN.finditer((query or "").strip()):
        connective, name = match.group("conn"), (match.group("field") or "").lower()
        if connective == "OR" and group:
            search.groups.append(group)
        if connective:
            group, negate_next = [] if connective == "OR" else group, negate_next or connective == "NOT"
            continue
        if name and name not in known_fields:
            search.warnings.append({"field": name, "message": "Invalid search field for this query."})
        else:
            value = _unquote(match.group("value") or match.group("word"))
            group.append(Term(name or None, match.group("op") or "=", value, bool(match.group("neg")) or negate_next))
        negate_next = False
    if group:
        search.groups.append(group)
    return search


def parse_search_time(value: str) -> datetime:
    """ISO-8601 instants or dates as the search syntax accepts them (naive = UTC)."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


COMPARE: dict[str, Callable[[Any, Any], bool]] = {"=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _term_matches(term: Term, values: Callable[[str], Any]) -> bool:
    """Whether the record's value matches the term (its negation left to the caller)."""
    if term.field is None:
        needle = term.value.casefold()
        return any(needle in str(v).casefold() for v in values("") or () if v)
    actual = values(term.field)
    try:
        if term.field in DATE_FIELDS:
            return actual is not None and COMPARE[term.op](float(actual), parse_search_time(term.value).timestamp())
        if term.field == "id":
            return COMPARE[term.op](int(actual), int(term.value.rsplit("/", 1)[-1]))
    except (TypeError, ValueError):
        return False
    if isinstance(actual, (list, tuple, set, frozenset)):
        return any(str(v).casefold() == term.value.casefold() for v in actual)
    return actual is not None and (term.value == "*" or str(actual).casefold() == term.value.casefold())


# Query cost
CONNECTION_BASE_COST = 2


def query_cost(schema_: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None = None, data: Any = None, *, actual: bool = False) -> int:
    """Requested cost (``actual=False``, from arguments) or actual cost (from ``data``)."""
    operation = get_operation_ast(document, operation_name or None)
    if operation is None:
        return 0
    cost = _Cost(schema_, document, variables or {}, actual)
    if operation.operation == OperationType.MUTATION:
        fields = cost.fields(operation.selection_set, schema_.mutation_type)
        return MUTATION_COST * sum(not actual or (isinstance(data, Mapping) and data.get(_key(node)) is not None) for node, _ in fields)
    return cost.selection(operation.selection_set, schema_.query_type, data if actual else None)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


class _Cost:
    """Prices the selections of one document: before running (``actual`` False) each connection
    counts ``first``/``last`` items; after, the data returned counts (null objects cost nothing)."""

    def __init__(self, schema_: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], actual: bool) -> None:
        self.schema = schema_
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.variables, self.actual = variables, actual

    def fields(self, selection_set: SelectionSetNode | None, parent: Any) -> list[tuple[FieldNode, Any]]:
        """The fields of a selection with their definitions (None for ``__typename``), fragments included."""
        fields = []
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                fields.append((selection, getattr(parent, "fields", {}).get(selection.name.value)))
                continue
            fragment = selection if isinstance(selection, InlineFragmentNode) else self.fragments[selection.name.value]
            condition = fragment.type_condition
            fields += self.fields(fragment.selection_set, self.schema.type_map[condition.name.value] if condition else parent)
        return fields

    def selection(self, selection_set: SelectionSetNode | None, parent: Any, data: Any) -> int:
        """Objects cost 1 plus their selection, connections 2 plus their items, lists their items, scalars nothing."""
        total = 0
        for node, definition in self.fields(selection_set, parent):
            named = get_named_type(definition.type) if definition is not None else None
            value = data.get(_key(node)) if isinstance(data, Mapping) else None
            if named is None or is_leaf_type(named) or (self.actual and value is None):
                continue
            if named.name.endswith("Connection"):
                size = self.argument(node, definition, "first") or self.argument(node, definition, "last") or 0
                total += CONNECTION_BASE_COST + sum(self.items(*page, int(size)) for page in self.pages(node, named, value))
            elif is_list_type(get_nullable_type(definition.type)):
                total += self.items(node.selection_set, named, value, len(self.argument(node, definition, "ids") or ()) or 1)
            else:
                total += 1 + self.selection(node.selection_set, named, value)
        return total

    def pages(self, node: FieldNode, connection: Any, value: Any) -> list[tuple[SelectionSetNode | None, Any, Any]]:
        """(selection, item type, items returned) of a connection's ``nodes`` and ``edges { node }``."""
        pages = []
        for child, definition in self.fields(node.selection_set, connection):
            items = value.get(_key(child)) if self.actual else None
            if child.name.value == "nodes":
                pages.append((child.selection_set, get_named_type(definition.type), items))
            elif child.name.value == "edges":
                edge = get_named_type(definition.type)
                inner = next((c for c, _ in self.fields(child.selection_set, edge) if c.name.value == "node"), None)
                items = [e.get(_key(inner)) if inner is not None and isinstance(e, Mapping) else {} for e in items or ()]
                pages.append((inner.selection_set if inner is not None else None, get_named_type(edge.fields["node"].type), items))
        return pages

    def items(self, selection: SelectionSetNode | None, item_type: Any, items: Any, count: int) -> int:
        """Each item costs 1 and its selection: the items returned (nulls cost nothing), or ``count`` of them before running."""
        if self.actual:
            return sum(1 + self.selection(selection, item_type, item) for item in items or () if item is not None)
        return count * (1 + self.selection(selection, item_type, None))

    def argument(self, node: FieldNode, definition: Any, name: str) -> Any:
        argument = next((a for a in node.arguments or () if a.name.value == name), None)
        if argument is None or name not in definition.args:
            return None
        return value_from_ast(argument.value, definition.args[name].type, self.variables)
