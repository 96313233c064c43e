"""Values checked against the database's limits before they are written (imports) or sent (exports).

A record holding a value the local schema cannot hold (a string longer than its column, a NUL
character, which PostgreSQL refuses in text, an amount that is not a number within NUMERIC(18,2),
a date that is not a date, an unreadable value another application stored) goes to the reject
ledger with the reason; the rest of its page or batch goes through. The limits are read from the
SQLAlchemy tables, so SQLite (which would store anything) and PostgreSQL behave the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import String

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.storage.schema import ENTITY_TABLES, external_links
from crm_pipelines.storage.types import Money, Unreadable, UTCDateTime

INVALID = "INVALID_VALUE"
#: NUMERIC(18, 2): 16 digits before the decimal point.
MONEY_LIMIT = Decimal(10) ** 16
EXTERNAL_ID_LENGTH = external_links.c.external_id.type.length


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def value_problem(entity: str, name: str, value: Any, *, lengths: bool = True) -> str | None:
    """Why ``value`` cannot be stored in ``entity``'s column ``name`` (None when it can; ``lengths=False`` skips length limits)."""
    if value is None:
        return None
    if isinstance(value, Unreadable):
        return f"{name}: stored value {_shown(str(value))} cannot be read as the column's type"
    column_type = ENTITY_TABLES[entity].c[name].type
    if isinstance(value, str):
        if "\x00" in value:
            return f"{name}: holds a NUL character, which the database cannot store"
        if lengths and isinstance(column_type, String) and column_type.length and len(value) > column_type.length:
            return f"{name}: {len(value)} characters, the column holds {column_type.length}"
    if isinstance(column_type, Money):
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            return f"{name}: {_shown(value)} is not a number (expected digits with a '.' decimal point, e.g. 1234.56)"
        if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
            return f"{name}: {_shown(value)} is outside the amounts the database holds (|amount| < 10^16)"
    if isinstance(column_type, UTCDateTime) and not isinstance(value, datetime):
        return f"{name}: {_shown(value)} is not a date and time (expected ISO 8601, e.g. 2026-12-31T00:00:00Z)"
    return None


@functools.cache
def _text_limits(entity: str) -> dict[str, int]:
    """The columns of ``entity`` that hold plain text, with their length (0: unlimited)."""
    return {column.name: (column.type.length or 0) for column in ENTITY_TABLES[entity].c if isinstance(column.type, String)}


def problems(entity: str, fields: dict[str, Any], *, lengths: bool = True) -> list[str]:
    """Every field of a record the database cannot hold, with the reason."""
    columns = ENTITY_TABLES[entity].c
    text = _text_limits(entity)
    found = []
    for name, value in fields.items():
        if value is None:
            continue
        # Most values are text within their column's length: settled here without the full check.
        limit = text.get(name)
        if limit is not None and type(value) is str and "\x00" not in value and (not lengths or not limit or len(value) <= limit):
            continue
        if name in columns and (problem := value_problem(entity, name, value, lengths=lengths)):
            found.append(problem)
    return found


def ref_problem(external_id: str) -> str | None:
    if "\x00" in external_id:
        return "the provider id holds a NUL character"
    if len(external_id) > EXTERNAL_ID_LENGTH:
        return f"the provider id has {len(external_id)} characters, the database holds {EXTERNAL_ID_LENGTH}"
    return None


def ledger_ref(external_id: str) -> str:
    """A provider id as the reject ledger can hold it (no NUL, at most its column's length)."""
    return external_id.replace("\x00", "\\x00")[:EXTERNAL_ID_LENGTH]


def checked_page(entity: str, page: Page) -> Page:
    """``page`` with the records the database cannot hold moved to its errors (archived records only need a usable id)."""
    good: list[RemoteRecord] = []
    errors: list[RecordError] = list(page.errors)
    for record in page.records:
        found = [p] if (p := ref_problem(record.external_id)) else ([] if record.archived else problems(entity, record.fields))
        if found:
            errors.append(RecordError(ledger_ref(record.external_id), INVALID, "; ".join(found)))
        else:
            good.append(record)
    if len(good) == len(page.records):
        return page
    return Page(good, errors, page.resume)


def split_valid(entity: str, changes: Sequence[Any]) -> tuple[list[Any], list[RecordError]]:
    """Local changes to export: those whose values can be read and stored, and rejects for the others.

    Lengths are not checked here: the value is already in the database (SQLite keeps a formatted
    CNPJ in a 14-character column), and each provider's mapping normalizes what it sends.
    """
    good, rejects = [], []
    for change in changes:
        found = problems(entity, change.fields, lengths=False)
        if found:
            rejects.append(RecordError(str(change.local_id), INVALID, "; ".join(found)))
        else:
            good.append(change)
    return good, rejects


__all__ = ["INVALID", "checked_page", "ledger_ref", "problems", "split_valid", "value_problem"]
