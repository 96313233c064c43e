"""SQL expressions that decide most values in the database, so only the doubtful ones reach Python.

Each expression is conservative: a value it accepts is valid by the project's own rules
(:mod:`crm_pipelines.core.normalize`); a value it does not accept is checked again in Python, so
the reports count exactly what hygiene would refuse. E-mails and phones use regular expressions
(PostgreSQL's ``~``; on SQLite, SQLAlchemy's ``REGEXP`` function), CPF/CNPJ check digits are
computed with integer arithmetic that both databases run alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import phonenumbers
from sqlalchemy import BigInteger, Boolean, and_, case, cast, false, func, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FunctionElement

#: The shape ``normalize.is_valid_email`` accepts (a value already without surrounding space).
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_DOCUMENT_SEPARATORS = (".", "-", "/", " ")
_CNPJ_WEIGHTS = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def filled(column) -> ColumnElement:
    """The value is present: not NULL, and for text not blank."""
    if column.type.python_type is str:
        return and_(column.is_not(None), func.trim(column) != "")
    return column.is_not(None)


def email_ok(column) -> ColumnElement:
    return column.regexp_match(EMAIL_PATTERN)


def email_group(column) -> ColumnElement:
    """The e-mail as duplicates are grouped: lower case, trimmed (whether it is an address is checked per group)."""
    return func.nullif(func.lower(func.trim(column)), "")


@functools.cache
def e164_patterns(region: str) -> tuple[tuple[tuple[int, ...], str], ...]:
    """Phones of ``region`` in E.164 that ``normalize_phone`` keeps as they are: per kind of line
    (mobile, fixed), the lengths its numbers may have (``+`` and country code included) and its pattern.

    Built from the numbering plan phonenumbers ships; a number none of them accepts (another
    country, a toll-free line, a local format) is checked by phonenumbers itself.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if metadata is None:
        return ()
    prefix = f"+{metadata.country_code}"
    kinds = [d for d in (metadata.mobile, metadata.fixed_line) if d is not None and d.national_number_pattern and d.possible_length]
    return tuple((tuple(len(prefix) + n for n in d.possible_length), rf"^\+{metadata.country_code}(?:{d.national_number_pattern})$") for d in kinds)


def phone_ok(column, region: str) -> ColumnElement:
    """The phone is a valid number of ``region`` already in E.164 (the length test first: it is cheap)."""
    kinds = [and_(func.length(column).in_(lengths), column.regexp_match(pattern)) for lengths, pattern in e164_patterns(region)]
    return or_(*kinds) if kinds else false()


def document_digits(column) -> ColumnElement:
    """The document without the usual separators (``123.456.789-09`` -> ``12345678909``)."""
    value = func.trim(column)
    for separator in _DOCUMENT_SEPARATORS:
        value = func.replace(value, separator, "")
    return value


class all_digits(FunctionElement):  # noqa: N801 - used like a SQL function
    """``value`` is exactly ``n`` digits: a regular expression on PostgreSQL, GLOB (native) on SQLite."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, value, n: int) -> None:
        self.n = n
        super().__init__(value)


@compiles(all_digits)
def _all_digits_regex(element, compiler, **kw):
    (value,) = element.clauses
    return f"({compiler.process(value, **kw)} ~ '^[0-9]{{{int(element.n)}}}$')"


@compiles(all_digits, "sqlite")
def _all_digits_glob(element, compiler, **kw):
    (value,) = element.clauses
    text = compiler.process(value, **kw)
    return f"(length({text}) = {int(element.n)} AND {text} NOT GLOB '*[^0-9]*')"


def _digits_of(value, length: int) -> Callable[[int], ColumnElement]:
    """Digit ``i`` (1-based) of an all-digit ``value`` of ``length`` digits, by integer arithmetic on the
    whole number (cheaper in PostgreSQL than a substring and a cast per digit)."""
    number = cast(value, BigInteger)
    return lambda position: (number // (10 ** (length - position))) % 10


def _weighted(digit, weights) -> ColumnElement:
    return sum((digit(i + 1) * w for i, w in enumerate(weights)), start=literal(0))


def _cpf_ok(value) -> ColumnElement:
    digit = _digits_of(value, 11)
    first = _weighted(digit, range(10, 1, -1))
    # The second check weighs the first nine digits one more each, and the first check digit by 2.
    second = first + _weighted(digit, (1,) * 9) + digit(10) * 2
    return and_((first * 10) % 11 % 10 == digit(10), (second * 10) % 11 % 10 == digit(11))


def _cnpj_check(total) -> ColumnElement:
    rest = total % 11
    return case((rest < 2, 0), else_=11 - rest)


def _cnpj_ok(value) -> ColumnElement:
    digit = _digits_of(value, 14)
    first = _cnpj_check(_weighted(digit, _CNPJ_WEIGHTS))
    second = _cnpj_check(_weighted(digit, (6, *_CNPJ_WEIGHTS)))
    return and_(first == digit(13), second == digit(14))


def document_ok(value) -> ColumnElement:
    """``value`` is a valid CPF (11 digits) or CNPJ (14 digits), written as digits only (as imports store it)."""
    not_repeated = func.replace(value, func.substr(value, 1, 1), "") != ""
    # CASE keeps the digit casts away from values that are not all digits.
    return case(
        (all_digits(value, 11), and_(not_repeated, _cpf_ok(value))),
        (all_digits(value, 14), and_(not_repeated, _cnpj_ok(value))),
        else_=False,
    )


def domain_key(column) -> ColumnElement:
    """The domain as duplicates are matched: lower case, trimmed, without ``www.``."""
    value = func.lower(func.trim(column))
    return case((value.like("www.%"), func.substr(value, 5)), (value == "", None), else_=value)


def doubtful(column, accepted: ColumnElement) -> ColumnElement:
    """A present value the SQL check does not accept (to be checked in Python)."""
    return and_(filled(column), ~func.coalesce(accepted, False))


__all__ = ["EMAIL_PATTERN", "all_digits", "document_digits", "document_ok", "doubtful", "domain_key", "e164_patterns", "email_group", "email_ok",
           "filled", "phone_ok"]
