"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String, Text
from sqlalchemy.types import TypeDecorator


class Unreadable(str):
    """A stored value its column's type cannot read (written by another application, e.g. an
    amount ``1.234,56`` or a date ``31/12/2026`` in SQLite): the record is rejected with the reason
    instead of failing every record read with it."""


def _tolerant(process):
    if process is None:
        return None

    def read(value):
        try:
            return process(value)
        except (ValueError, TypeError, ArithmeticError):
            return Unreadable(value)

    return read


class UTCDateTime(TypeDecorator):
    """Timestamps stored as naive UTC, returned as timezone-aware UTC datetimes."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def result_processor(self, dialect, coltype):
        return _tolerant(super().result_processor(dialect, coltype))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return Unreadable(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Money(TypeDecorator):
    """Exact decimal amounts: NUMERIC(18,2) on PostgreSQL, text on SQLite (which has no decimal type)."""

    impl = Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value).quantize(Decimal("0.01"))
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        try:
            return Decimal(value).quantize(Decimal("0.01"))
        except ArithmeticError:
            return Unreadable(value)

    def result_processor(self, dialect, coltype):
        return _tolerant(super().result_processor(dialect, coltype))


class CustomValues(TypeDecorator):
    """The ``custom`` column: mapped custom fields as one JSON object (text in the database, so bulk
    writes treat it like any other column on both databases)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if not value:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)

    def process_result_value(self, value, dialect):
        if value in (None, ""):
            return {}
        if isinstance(value, dict):
            return value
        try:
            found = json.loads(value)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
