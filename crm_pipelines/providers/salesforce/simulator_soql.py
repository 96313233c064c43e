"""The SOQL subset the Salesforce simulator understands, parsed into a small syntax tree.

    SELECT field, ... | COUNT()  FROM sobject
    [WHERE condition]            -- AND / OR / NOT, parentheses; =, !=, <>, <, <=, >, >=,
                                 -- IN (...), NOT IN (...), LIKE 'pat%'; literals: 'text', numbers,
                                 -- TRUE/FALSE, NULL, dates (2025-02-01), datetimes (2025-02-01T09:30:11Z)
    [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n]

Anything else is a :class:`SoqlError` with ``MALFORMED_QUERY`` and an "unexpected token" message
as Salesforce gives. Field names are checked against the object by the simulator (``INVALID_FIELD``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | boolean | null | date | datetime
    value: Any


@dataclass
class Comparison:
    field: str
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | list[Literal]


@dataclass
class BoolOp:
    op: str  # AND | OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class Query:
    sobject: str
    fields: list[str] = field(default_factory=list)
    count: bool = False
    where: Any = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # (field, descending, nulls_last)
    limit: int | None = None

    def referenced_fields(self) -> list[str]:
        names = list(self.fields) + [o[0] for o in self.order]
        stack = [self.where] if self.where is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, Comparison):
                names.append(node.field)
            elif isinstance(node, BoolOp):
                stack.extend(node.items)
            elif isinstance(node, Not):
                stack.append(node.item)
        return names


def _unescape(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), body)


def parse_datetime_literal(text: str) -> int:
    """SOQL dateTime literal -> epoch milliseconds."""
    text = text.replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    return int(moment.astimezone(timezone.utc).timestamp() * 1000)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                break
            kind = match.lastgroup or "bad"
            value = match.group(kind)
            if kind == "bad":
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value}'")
            self.tokens.append((kind, value))
            position = match.end()
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token and token[0] == "name" and token[1].upper() in words:
            self.pos += 1
            return token[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            self.fail(f"expecting '{word}'")

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token and token[0] == "punct" and token[1] == char:
            self.pos += 1
            return True
        return False

    def fail(self, expectation: str = "") -> None:
        token = self.peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected end of query{': ' + expectation if expectation else ''}")
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token[1]}'")

    def name(self) -> str:
        token = self.peek()
        if not token or token[0] != "name" or token[1].upper() in KEYWORDS:
            self.fail("expecting a field name")
        self.pos += 1
        return token[1]

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            self.fail("expecting a value")
        kind, value = token
        self.pos += 1
        if kind == "string":
            return Literal("string", _unescape(value))
        if kind == "number":
            return Literal("number", float(value))
        if kind == "date":
            return Literal("date", value)
        if kind == "datetime":
            try:
                return Literal("datetime", parse_datetime_literal(value))
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", f"line 1:{self.pos} no viable alternative at character '{value}'") from None
        if kind == "name" and value.upper() in ("TRUE", "FALSE"):
            return Literal("boolean", value.upper() == "TRUE")
        if kind == "name" and value.upper() == "NULL":
            return Literal("null", None)
        self.pos -= 1
        self.fail("expecting a value")
        raise AssertionError

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        query = Query(sobject="")
        if self.keyword("COUNT"):
            if not (self.punct("(") and self.punct(")")):
                self.fail()
            query.count = True
        else:
            query.fields.append(self.name())
            while self.punct(","):
                query.fields.append(self.name())
        self.expect_keyword("FROM")
        query.sobject = self.name()
        if self.keyword("WHERE"):
            query.where = self.condition()
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                name = self.name()
                descending = self.keyword("ASC", "DESC") == "DESC"
                nulls_last = descending
                if self.keyword("NULLS"):
                    nulls_last = (self.keyword("FIRST", "LAST") or self.fail("expecting FIRST or LAST")) == "LAST"
                query.order.append((name, descending, nulls_last))
                if not self.punct(","):
                    break
        if self.keyword("LIMIT"):
            token = self.peek()
            if not token or token[0] != "number" or "." in token[1] or token[1].startswith("-"):
                self.fail("expecting a number")
            self.pos += 1
            query.limit = int(token[1])
        if self.peek() is not None:
            self.fail()
        return query

    def condition(self, op: str = "OR") -> Any:
        """``a OR b ...`` of conjunctions, or (``op="AND"``) ``a AND b ...`` of unary terms."""
        term = (lambda: self.condition("AND")) if op == "OR" else self.unary
        items = [term()]
        while self.keyword(op):
            items.append(term())
        return items[0] if len(items) == 1 else BoolOp(op, items)

    def unary(self) -> Any:
        if self.keyword("NOT"):
            return Not(self.unary())
        if self.punct("("):
            node = self.condition()
            if not self.punct(")"):
                self.fail("expecting ')'")
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.name()
        token = self.peek()
        if token and token[0] == "op":
            self.pos += 1
            op = "!=" if token[1] == "<>" else token[1]
            return Comparison(name, op, self.literal())
        negated = self.keyword("NOT") is not None
        if self.keyword("IN"):
            if not self.punct("("):
                self.fail("expecting '('")
            values = [self.literal()]
            while self.punct(","):
                values.append(self.literal())
            if not self.punct(")"):
                self.fail("expecting ')'")
            return Comparison(name, "NOT IN" if negated else "IN", values)
        if not negated and self.keyword("LIKE"):
            value = self.literal()
            if value.kind != "string":
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a quoted string")
            return Comparison(name, "LIKE", value)
        self.fail("expecting an operator")
        raise AssertionError


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "empty query")
    return _Parser(text).parse()


def like_regex(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: ``%`` any run, ``_`` one character, case-insensitive, backslash escapes."""
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
