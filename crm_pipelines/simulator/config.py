"""What every simulator can be told, the accounts it serves, and the command line built from both.

Each provider's configuration is a dataclass deriving from :class:`SimConfig`. Its fields are the
provider's facts and switches; a field typed ``Literal[...]`` only takes those values, and every
scalar field is also a command-line option (``burst_limit`` -> ``--burst-limit``; ``--no-x`` for a
switch that is on by default; 0 turns off a limit that is on by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from crm_pipelines.simulator.clock import parse_datetime
from crm_pipelines.simulator.faults import FaultConfig


@dataclass(frozen=True)
class AccountSpec:
    """One account of a simulator: its id (HubSpot portalId, Shopify shop, Pipedrive company id,
    Salesforce org id, Bling company id), the tokens it accepts (``refresh_tokens`` for providers
    with OAuth refresh) and its record counts (``None``: the configuration's)."""

    id: str
    tokens: tuple[str, ...] = ()
    refresh_tokens: tuple[str, ...] = ()
    records: Mapping[str, int] | None = None

    @classmethod
    def parse(cls, text: str) -> AccountSpec:
        """``ID=TOKEN[,TOKEN...]``; a token written ``refresh:TOKEN`` is a refresh token."""
        account_id, _, tokens = text.partition("=")
        items = [t.strip() for t in tokens.split(",") if t.strip()]
        if not account_id.strip() or not items:
            raise ValueError(f"an account is ID=TOKEN[,TOKEN...], got {text!r}")
        return cls(account_id.strip(), tuple(t for t in items if not t.startswith("refresh:")),
                   tuple(t.removeprefix("refresh:") for t in items if t.startswith("refresh:")))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountSpec:
        unknown = set(data) - {"id", "tokens", "refresh_tokens", "records"}
        if unknown or not data.get("id"):
            raise ValueError(f"an account needs an id (and may have tokens, refresh_tokens, records); unknown keys: {sorted(unknown)}")
        return cls(str(data["id"]), tuple(data.get("tokens") or ()), tuple(data.get("refresh_tokens") or ()),
                   {str(k): int(v) for k, v in data["records"].items()} if data.get("records") else None)


@dataclass
class SimConfig:
    """Shared settings. Data: ``seed``; seeded records were created and last modified within
    ``history_days`` before ``reference_time`` (``None`` = now). The simulated clock starts at
    ``clock_start``, else ``reference_time``, else the wall clock (``freeze_clock`` stops it).
    ``rate_limits_enabled=False`` turns every limit off. ``accounts`` adds accounts besides the
    default one. Webhooks go to ``webhook_url``, retried ``webhook_max_attempts`` times with a delay
    growing from ``webhook_retry_base_s``."""

    COUNTS: ClassVar[tuple[str, ...]] = ()

    seed: int = 1
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False
    rate_limits_enabled: bool = True
    faults: FaultConfig = field(default_factory=FaultConfig)
    accounts: tuple[AccountSpec, ...] = ()
    webhook_url: str | None = None
    webhook_max_attempts: int = 10
    webhook_retry_base_s: float = 0.5

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent settings."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.COUNTS and value < 0:
                raise ValueError(f"{f.name} must be >= 0")
            choices = _choices(hints[f.name])
            if choices and value not in choices:
                raise ValueError(f"{f.name} must be one of {choices}, got {value!r}")
        self.faults.validate()
        self.check()

    def check(self) -> None:
        """Provider-specific consistency checks."""

    def count_of(self, entity: str, spec: AccountSpec | None = None) -> int:
        return int((spec.records or {}).get(entity, getattr(self, entity))) if spec is not None and spec.records else int(getattr(self, entity))


def _choices(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def _scalar(hint: Any) -> Any:
    """``int`` for ``int | None`` and the like; ``None`` for types the command line leaves out."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _scalar(rest[0]) if len(rest) == 1 else None
    if typing.get_origin(hint) is Literal:
        return type(args[0])
    if typing.get_origin(hint) is tuple and args[-1] is Ellipsis and args[0] is str:
        return tuple
    return hint if hint in (int, float, str, bool, datetime) else None


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type[SimConfig], defaults: Mapping[str, Any],
                         aliases: Mapping[str, str]) -> None:
    """One option per scalar field of ``config_class`` (see the module docstring)."""
    hints = typing.get_type_hints(config_class)
    names: dict[str, list[str]] = {}
    for alias, target in aliases.items():
        names.setdefault(target, []).append(alias)
    for f in dataclasses.fields(config_class):
        kind = _scalar(hints[f.name])
        if kind is None or f.name in ("seed", "faults", "accounts"):
            continue
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        if (flag.rstrip("s") if kind is tuple else flag) in parser._option_string_actions:
            continue
        if kind is bool:
            flag = flag if not default else "--no-" + flag[2:]
            parser.add_argument(flag, *names.get(flag, ()), dest=f.name, action="store_false" if default else "store_true", default=default)
        elif kind is tuple:
            parser.add_argument(flag.rstrip("s"), *names.get(flag, ()), dest=f.name, action="append", default=None)
        else:
            off = kind is int and default is not None and type(None) in typing.get_args(hints[f.name])  # 0 turns the limit off
            convert = parse_datetime if kind is datetime else (lambda text, k=kind, o=off: None if o and int(text) == 0 else k(text))
            parser.add_argument(flag, *names.get(flag, ()), dest=f.name, type=convert, default=default, choices=_choices(hints[f.name]) or None)


def config_from_arguments(config_class: type[SimConfig], args: argparse.Namespace, **extra: Any) -> SimConfig:
    """The configuration named by parsed options (fields the command line left out keep defaults)."""
    values = {}
    for f in dataclasses.fields(config_class):
        value = getattr(args, f.name, dataclasses.MISSING)
        if value is dataclasses.MISSING or (value is None and isinstance(f.default, tuple)):
            continue
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return config_class(**values | extra)
