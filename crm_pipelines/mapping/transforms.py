"""The fixed set of transforms a mapping field may list, each one way per direction.

On import a field's transforms run in the order written, on the provider's value, before the
value is read as its type; on export they run in reverse order, on what the type wrote.

| transform                    | import (provider -> local)           | export (local -> provider)          |
|------------------------------|--------------------------------------|-------------------------------------|
| ``trim``                     | strip surrounding whitespace         | the same                            |
| ``lower``                    | lower-case                           | the same                            |
| ``phone_e164``               | the phone in E.164 (store's region)  | the same                            |
| ``document_digits``          | the digits of a CPF/CNPJ             | the same                            |
| ``value_map: {P: L, ...}``   | provider value P becomes L           | L becomes P                         |
| ``date_format: "%d/%m/%Y"``  | a date so written becomes ISO        | an ISO date is written so           |
| ``default: V``               | a blank becomes V                    | a blank becomes V                   |

``constant`` is not a transform but a field of its own: a value always sent (export only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crm_pipelines.core.normalize import normalize_phone

NAMES = ("trim", "lower", "phone_e164", "document_digits", "value_map", "date_format", "default")
#: Transforms taking no argument (written as a bare name) and those taking one (``{name: argument}``).
BARE = ("trim", "lower", "phone_e164", "document_digits")
WITH_ARGUMENT = ("value_map", "date_format", "default")

Step = Callable[[Any], Any]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_step(fn: Callable[[str], Any]) -> Step:
    return lambda value: value if not isinstance(value, str) else fn(value)


def _digits(value: Any) -> Any:
    if _blank(value):
        return None
    return re.sub(r"\D", "", str(value)) or None


def _phone(region: str) -> Step:
    return lambda value: None if _blank(value) else normalize_phone(value, region)


def _lookup(table: dict[str, Any]) -> Step:
    """Values found in ``table`` replaced; others (and blanks) pass unchanged."""
    return lambda value: value if _blank(value) else table.get(str(value), value)


def _parse_date(fmt: str) -> Step:
    def step(value: Any) -> Any:
        if _blank(value) or isinstance(value, (date, datetime)):
            return value
        try:
            return datetime.strptime(str(value).strip(), fmt).date().isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a date written {fmt}") from None

    return step


def _format_date(fmt: str) -> Step:
    def step(value: Any) -> Any:
        if _blank(value):
            return value
        if isinstance(value, datetime):
            return value.strftime(fmt)
        if isinstance(value, date):
            return value.strftime(fmt)
        try:
            return date.fromisoformat(str(value)[:10]).strftime(fmt)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date") from None

    return step


def _default(fallback: Any) -> Step:
    return lambda value: fallback if _blank(value) else value


@dataclass(frozen=True)
class Transform:
    """One transform of a field: its name, argument, and its step each way."""

    name: str
    argument: Any = None

    def steps(self, region: str) -> tuple[Step, Step]:
        """``(import step, export step)``."""
        name, arg = self.name, self.argument
        if name == "trim":
            step = _text_step(str.strip)
            return step, step
        if name == "lower":
            step = _text_step(str.lower)
            return step, step
        if name == "phone_e164":
            step = _phone(region)
            return step, step
        if name == "document_digits":
            return _digits, _digits
        if name == "value_map":
            forward = {str(k): v for k, v in arg.items()}
            backward = {str(v): k for k, v in arg.items()}
            return _lookup(forward), _lookup(backward)
        if name == "date_format":
            return _parse_date(arg), _format_date(arg)
        if name == "default":
            step = _default(arg)
            return step, step
        raise ValueError(f"unknown transform {name!r}")

    def describe(self) -> str:
        if self.argument is None:
            return self.name
        if self.name == "value_map":
            return "value_map(" + ", ".join(f"{k}->{v}" for k, v in self.argument.items()) + ")"
        return f"{self.name}({self.argument})"


def parse_transform(raw: Any) -> Transform:
    """A transform as written in YAML: a bare name or a one-key mapping ``{name: argument}``."""
    if isinstance(raw, str):
        if raw in BARE:
            return Transform(raw)
        if raw in WITH_ARGUMENT:
            raise ValueError(f"transform {raw!r} needs an argument ({raw}: ...)")
        raise ValueError(f"unknown transform {raw!r}; expected one of {', '.join(NAMES)}")
    if isinstance(raw, dict) and len(raw) == 1:
        (name, arg), = raw.items()
        if name in BARE:
            raise ValueError(f"transform {name!r} takes no argument")
        if name not in WITH_ARGUMENT:
            raise ValueError(f"unknown transform {name!r}; expected one of {', '.join(NAMES)}")
        if name == "value_map":
            if not isinstance(arg, dict) or not arg:
                raise ValueError("value_map needs a mapping of provider value: local value")
            backward = [str(v) for v in arg.values()]
            if len(set(backward)) != len(backward):
                raise ValueError("value_map maps two provider values to one local value; it could not be exported back")
        if name == "date_format":
            if not isinstance(arg, str) or "%" not in arg:
                raise ValueError("date_format needs a strftime pattern such as '%d/%m/%Y'")
        return Transform(name, arg)
    raise ValueError(f"a transform is a name or {{name: argument}}, not {raw!r}")


__all__ = ["NAMES", "Transform", "parse_transform"]
