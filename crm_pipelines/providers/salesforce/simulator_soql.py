"""The SOQL subset the Salesforce simulator understands: parsed into a small syntax tree, then
evaluated against one sObject's records.

    SELECT field, ... | COUNT()  FROM sobject
    [WHERE condition]            -- AND / OR / NOT, parentheses; =, !=, <>, <, <=, >, >=,
                                 -- IN (...), NOT IN (...), LIKE 'pat%'; literals: 'text', numbers,
                                 -- TRUE/FALSE, NULL, dates (2025-02-01), datetimes (2025-02-01T09:30:11Z)
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n]

Anything else is a :class:`SoqlError` with ``MALFORMED_QUERY`` and an "unexpected token" message
as Salesforce gives. Field names are checked against the object by the simulator (``INVALID_FIELD``).
A filter value must have its field's type; text compares case-insensitively, ids by their first 15
characters, and ``LIKE`` works on text fields only (``INVALID_QUERY_FILTER_OPERATOR``).
"""

from __future__ import annotations

import operator
import re
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn

from crm_pipelines.simulator.clock import utc_iso_ms

KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "TRUE", "FALSE", "NULL", "COUNT"})

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<bad>\S+)
    )""",
    re.VERBOSE,
)

#: Field kinds sorted as text (case-insensitively); filters also compare references and ids as text.
TEXT_KINDS = ("string", "email", "phone", "url", "picklist")
FILTERED_AS_TEXT = (*TEXT_KINDS, "reference", "id")
NUMBER_KINDS = ("currency", "percent")
#: The literal a filter on a field of each kind needs (other kinds: a quoted string).
LITERAL_OF_KIND = {"datetime": "datetime", "date": "date", "boolean": "boolean", "currency": "number", "percent": "number"}
ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

Literal = namedtuple("Literal", "kind value")  # kind: string | number | boolean | null | date | datetime
Comparison = namedtuple("Comparison", "field op value")  # op: = != < <= > >= IN | NOT IN (a list of literals) | LIKE
BoolOp = namedtuple("BoolOp", "op items")  # op: AND | OR
Not = namedtuple("Not", "item")


class SoqlError(Exception):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Query:
    sobject: str = ""
    fields: list[str] = field(default_factory=list)
    count: bool = False
    where: Any = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # (field, descending, nulls_last)
    limit: int | None = None
    filtered: list[str] = field(default_factory=list)  #: the fields WHERE compares, as written

    def referenced_fields(self) -> list[str]:
        """Selected, then ordered by, then compared fields (the last written first)."""
        return [*self.fields, *(name for name, _, _ in self.order), *reversed(self.filtered)]


def format_datetime(ms: int | None) -> str | None:
    """``2025-02-01T09:30:11.000+0000`` as Salesforce writes datetimes in JSON (and Bulk API job details)."""
    return None if ms is None else utc_iso_ms(ms)[:-1] + "+0000"


def parse_datetime_literal(text: str) -> int:
    """SOQL dateTime literal -> epoch milliseconds."""
    text = text.replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    return int(moment.astimezone(timezone.utc).timestamp() * 1000)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = [(match.lastgroup, match.group(match.lastgroup)) for match in _TOKEN.finditer(text.strip())]
        bad = next((value for kind, value in self.tokens if kind == "bad"), None)
        if bad is not None:
            raise SoqlError(f"unexpected token: '{bad}'")
        self.pos = 0
        self.query = Query()

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, test: Callable[[str], bool]) -> str | None:
        """The next token's text if it is a ``kind`` passing ``test``, consumed; else ``None``."""
        token = self.peek()
        if token and token[0] == kind and test(token[1]):
            self.pos += 1
            return token[1]
        return None

    def accept(self, kind: str, *values: str) -> str | None:
        """The next token (upper-cased) if it is a ``kind`` among ``values``, consumed; else ``None``."""
        text = self.take(kind, lambda text: text.upper() in values)
        return text and text.upper()

    def expect(self, kind: str, value: str) -> None:
        if self.accept(kind, value) is None:
            self.fail(f"expecting '{value}'")

    def fail(self, expectation: str = "") -> NoReturn:
        token = self.peek()
        if token is None:
            raise SoqlError(f"unexpected end of query{': ' + expectation if expectation else ''}")
        raise SoqlError(f"unexpected token: '{token[1]}'")

    def listed(self, item: Callable[[], Any]) -> list[Any]:
        """``item, item, ...``"""
        items = [item()]
        while self.accept("punct", ","):
            items.append(item())
        return items

    def name(self) -> str:
        return self.take("name", lambda text: text.upper() not in KEYWORDS) or self.fail("expecting a field name")

    def literal(self) -> Literal:
        word = self.accept("name", "TRUE", "FALSE", "NULL")
        if word:
            return Literal("null", None) if word == "NULL" else Literal("boolean", word == "TRUE")
        kind, value = self.peek() or self.fail("expecting a value")
        if kind not in ("string", "number", "date", "datetime"):
            self.fail("expecting a value")
        self.pos += 1
        if kind == "string":
            return Literal("string", re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), value[1:-1]))
        if kind == "datetime":
            try:
                return Literal("datetime", parse_datetime_literal(value))
            except ValueError:
                raise SoqlError(f"line 1:{self.pos} no viable alternative at character '{value}'") from None
        return Literal(kind, float(value) if kind == "number" else value)

    def parse(self) -> Query:
        query = self.query
        self.expect("name", "SELECT")
        if self.accept("name", "COUNT"):
            if not (self.accept("punct", "(") and self.accept("punct", ")")):
                self.fail()
            query.count = True
        else:
            query.fields = self.listed(self.name)
        self.expect("name", "FROM")
        query.sobject = self.name()
        if self.accept("name", "WHERE"):
            query.where = self.condition()
        if self.accept("name", "ORDER"):
            self.expect("name", "BY")
            query.order = self.listed(self.ordering)
        if self.accept("name", "LIMIT"):
            query.limit = int(self.take("number", str.isdigit) or self.fail("expecting a number"))
        if self.peek() is not None:
            self.fail()
        return query

    def ordering(self) -> tuple[str, bool, bool]:
        """``field [ASC|DESC] [NULLS FIRST|LAST]``: nulls come last when descending unless said."""
        name = self.name()
        descending = self.accept("name", "ASC", "DESC") == "DESC"
        if self.accept("name", "NULLS"):
            return name, descending, (self.accept("name", "FIRST", "LAST") or self.fail("expecting FIRST or LAST")) == "LAST"
        return name, descending, descending

    def condition(self, op: str = "OR") -> Any:
        """``a OR b ...`` of conjunctions, or (``op="AND"``) ``a AND b ...`` of unary terms."""
        term = (lambda: self.condition("AND")) if op == "OR" else self.unary
        items = [term()]
        while self.accept("name", op):
            items.append(term())
        return items[0] if len(items) == 1 else BoolOp(op, items)

    def unary(self) -> Any:
        if self.accept("name", "NOT"):
            return Not(self.unary())
        if self.accept("punct", "("):
            node = self.condition()
            self.expect("punct", ")")
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.name()
        self.query.filtered.append(name)
        op = self.accept("op", "=", "!=", "<>", "<", "<=", ">", ">=")
        if op:
            return Comparison(name, "!=" if op == "<>" else op, self.literal())
        negated = self.accept("name", "NOT") is not None
        if self.accept("name", "IN"):
            self.expect("punct", "(")
            values = self.listed(self.literal)
            self.expect("punct", ")")
            return Comparison(name, "NOT IN" if negated else "IN", values)
        if not negated and self.accept("name", "LIKE"):
            value = self.literal()
            if value.kind != "string":
                raise SoqlError("LIKE needs a quoted string")
            return Comparison(name, "LIKE", value)
        self.fail("expecting an operator")


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise SoqlError("empty query")
    return _Parser(text).parse()


def like_regex(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: ``%`` any run, ``_`` one character, case-insensitive, backslash escapes."""
    parts = re.findall(r"\\(.)|(%)|(_)|([^\\])", pattern, re.DOTALL)
    return re.compile("".join(".*" if run else "." if one else re.escape(escaped or plain) for escaped, run, one, plain in parts), re.IGNORECASE | re.DOTALL)


def comparable(kind: str, value: Any) -> Any:
    """A value as filters compare it: ids by their first 15 characters, text in lower case, numbers as floats."""
    if value is None:
        return None
    if kind == "id":
        return str(value)[:15]
    if kind in FILTERED_AS_TEXT:
        return str(value).lower()
    return float(value) if kind in NUMBER_KINDS else value


def _filter_value(f: Any, literal: Literal) -> Any:
    """The value of ``literal``, which must be of the type of field ``f`` (or NULL)."""
    expected = LITERAL_OF_KIND.get(f.kind, "string")
    if literal.kind not in (expected, "null"):
        quoted = "should not be enclosed in quotes" if literal.kind == "string" else "should be enclosed in quotes" if expected == "string" else ""
        kind = "dateTime" if f.kind == "datetime" else f.kind
        raise SoqlError(f"value of filter criterion for field '{f.name}' must be of type {kind}" + (f" and {quoted}" if quoted else ""))
    return literal.value


def predicate(store: Any, node: Any) -> Callable[[Any], bool]:
    """The WHERE condition ``node`` (``None``: every record) as a test of records of ``store``
    (whose ``fields``, by lower-case name, have a ``name``, a ``kind`` and a ``value(record)``)."""
    if node is None:
        return lambda rec: True
    if isinstance(node, BoolOp):
        parts, combine = [predicate(store, item) for item in node.items], all if node.op == "AND" else any
        return lambda rec: combine(part(rec) for part in parts)
    if isinstance(node, Not):
        inner = predicate(store, node.item)
        return lambda rec: not inner(rec)
    f = store.fields[node.field.lower()]
    wanted = [_filter_value(f, literal) for literal in (node.value if isinstance(node.value, list) else [node.value])]
    if node.op == "LIKE":
        if f.kind not in FILTERED_AS_TEXT:
            raise SoqlError(f"invalid operator on {f.kind} field: LIKE", "INVALID_QUERY_FILTER_OPERATOR")
        pattern = like_regex(str(wanted[0]))
        return lambda rec: (v := f.value(rec)) is not None and pattern.fullmatch(str(v)) is not None

    def value_of(rec: Any) -> Any:
        return comparable(f.kind, f.value(rec))

    targets = [comparable(f.kind, value) for value in wanted]
    if node.op in ("IN", "NOT IN", "=", "!="):
        pool, inside = set(targets), node.op in ("IN", "=")
        return lambda rec: (value_of(rec) in pool) == inside
    if targets[0] is None:
        raise SoqlError(f"invalid comparison with null on field '{f.name}'")
    compare, target = ORDERINGS[node.op], targets[0]
    if f.kind == "id":
        return lambda rec: compare(rec.id, str(wanted[0]))  # ids order as their full string
    return lambda rec: (v := value_of(rec)) is not None and compare(v, target)


def ordered(store: Any, query: Query, rows: list[Any]) -> list[Any]:
    """``rows`` in the query's order (nulls first ascending unless said), cut at its LIMIT."""
    for name, descending, nulls_last in reversed(query.order):
        f, null_rank = store.fields[name.lower()], 1 if nulls_last != descending else -1  # the sort is reversed when descending

        def key(rec: Any, f: Any = f, null_rank: int = null_rank) -> tuple[int, Any]:
            value = f.value(rec)
            if value is None:
                return (null_rank, "")
            return (0, str(value).lower() if f.kind in TEXT_KINDS else float(value) if f.kind in NUMBER_KINDS else value)

        rows.sort(key=key, reverse=descending)
    return rows if query.limit is None else rows[: query.limit]
