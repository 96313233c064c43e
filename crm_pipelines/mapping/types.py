"""Value types of mapped fields: how a provider's value is read into a local column and written back.

A field's type is its local column's (``email``, ``domain``, ``document``, ``amount`` as
``decimal``, ``close_date`` as ``datetime``, text otherwise) unless the mapping names one.
Providers replace the wire format of a type where theirs differs (HubSpot writes timestamps as
ISO-8601 with milliseconds, Salesforce amounts as JSON numbers): that is provider code, not mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document, normalize_domain

TYPES = ("text", "email", "domain", "document", "decimal", "datetime", "date", "id", "number", "boolean")
#: Types a value of the JSON ``custom`` column may have (it holds JSON scalars).
CUSTOM_TYPES = ("text", "email", "domain", "document", "date", "id", "number", "boolean")

#: The type of each canonical column that is not plain text.
COLUMN_TYPES: dict[str, str] = {"email": "email", "domain": "domain", "document": "document", "amount": "decimal", "close_date": "datetime"}


@dataclass(frozen=True)
class Codec:
    """Reads a provider value as the local value (raising ``ValueError`` when it is not one) and writes it back.

    Text is never shortened here: a value longer than its column is rejected with its reason
    before any write (:mod:`crm_pipelines.storage.validate`)."""

    to_local: Callable[[Any], Any]
    to_remote: Callable[[Any], Any]


def _text_in(value: Any) -> str | None:
    return clean_text(value)


def _text_out(value: Any) -> str | None:
    return None if value is None else str(value)


#: The largest magnitude an amount column holds (numeric(18, 2)).
AMOUNT_LIMIT = Decimal("1e16")


def amount_from(text: str, *, shown: Any, label: str = "") -> Decimal:
    """``text`` (digits with a ``.`` decimal point, already read from the provider's own form) as
    an amount of two decimals; ``shown`` is the value named by the error, ``label`` its prefix."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{label}{shown!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= AMOUNT_LIMIT:
        raise ValueError(f"{label}{shown!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def decimal_in(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return amount_from(repr(value) if isinstance(value, float) else str(value).strip().replace(",", ""), shown=value)


def date_in(value: Any) -> datetime | None:
    """A ``YYYY-MM-DD`` date as midnight UTC (how date-only provider fields are kept locally)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = clean_text(value)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD") from None
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def date_out(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date().isoformat() if value.tzinfo else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def _datetime_in(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    text = clean_text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _datetime_out(value: Any) -> str | None:
    return None if value is None else (value.isoformat() if isinstance(value, datetime) else str(value))


def _custom_date_in(value: Any) -> str | None:
    """A date kept in the JSON ``custom`` column: its ISO text."""
    parsed = date_in(value)
    return None if parsed is None else parsed.date().isoformat()


def _id_in(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _number_in(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).strip().replace(",", ""))
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    return int(number) if number.is_integer() and "." not in str(value) else number


def _boolean_in(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "sim"):
        return True
    if text in ("false", "0", "no", "não", "nao"):
        return False
    raise ValueError(f"{value!r} is not true or false")


GENERIC: dict[str, Codec] = {
    "text": Codec(_text_in, _text_out),
    "email": Codec(lambda v: checked_email(v), _text_out),
    "domain": Codec(lambda v: normalize_domain(v), lambda v: None if v is None else normalize_domain(v)),
    "document": Codec(lambda v: normalize_document(v), normalize_document),
    "decimal": Codec(decimal_in, lambda v: None if v is None else format(v, "f")),
    "datetime": Codec(_datetime_in, _datetime_out),
    "date": Codec(date_in, date_out),
    "id": Codec(_id_in, _text_out),
    "number": Codec(_number_in, lambda v: v),
    "boolean": Codec(_boolean_in, lambda v: v),
}

#: Codecs of values kept in the JSON ``custom`` column (JSON scalars, dates as ISO text).
CUSTOM: dict[str, Codec] = {**GENERIC, "date": Codec(_custom_date_in, date_out)}


__all__ = ["COLUMN_TYPES", "CUSTOM_TYPES", "Codec", "GENERIC", "TYPES", "date_in", "date_out", "decimal_in"]
