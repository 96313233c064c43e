"""A mapping ready to use: each field's way from the provider's value to the local one and back."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping as MappingABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_pipelines.core.model import FIELDS
from crm_pipelines.mapping.spec import FieldSpec, MappingSpec, is_custom, load
from crm_pipelines.mapping.types import COLUMN_TYPES, CUSTOM, GENERIC, Codec


def field_type(entity: str, spec: FieldSpec) -> str:
    """The value type of a field: the one it names, else its local column's."""
    if spec.type:
        return spec.type
    if spec.local and not is_custom(spec.local):
        return COLUMN_TYPES.get(spec.local, "text")
    return "text"


@dataclass(frozen=True)
class MappedField:
    """One field of a compiled mapping."""

    spec: FieldSpec
    type: str
    to_local: Callable[[Any], Any]
    to_remote: Callable[[Any], Any]

    @property
    def remote(self) -> str:
        return self.spec.remote

    @property
    def local(self) -> str | None:
        return self.spec.local


def _compose(steps: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    if len(steps) == 1:
        return steps[0]  # most fields: their codec alone, called for each value of each record

    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return run


def _compile_field(entity: str, spec: FieldSpec, codecs: MappingABC[str, Codec], region: str) -> MappedField:
    kind = field_type(entity, spec)
    if spec.has_constant:
        constant = spec.constant
        return MappedField(spec, kind, lambda _raw: None, lambda _value: constant)
    custom = is_custom(spec.local)
    codec = (CUSTOM if custom else codecs).get(kind) or GENERIC[kind]
    forward = [t.steps(region)[0] for t in spec.transforms]
    backward = [t.steps(region)[1] for t in reversed(spec.transforms)]
    read_steps = [*forward, codec.to_local]
    write_steps = [codec.to_remote, *backward]
    return MappedField(spec, kind, _compose(read_steps), _compose(write_steps))


class CompiledMapping:
    """One provider's mapping with its provider's value formats, for one phone region."""

    def __init__(self, spec: MappingSpec, codecs: MappingABC[str, Codec] | None = None, *, region: str = "BR") -> None:
        self.spec = spec
        self.provider = spec.provider
        self.region = region
        merged = {**GENERIC, **(codecs or {})}
        self._fields = {entity: tuple(_compile_field(entity, s, merged, region) for s in specs) for entity, specs in spec.entities.items()}
        # Read once per record each: kept rather than filtered again every time.
        self._imported = {entity: tuple(f for f in fields if f.spec.imports) for entity, fields in self._fields.items()}
        self._exported = {entity: tuple(f for f in fields if f.spec.exports) for entity, fields in self._fields.items()}

    def fields(self, entity: str) -> tuple[MappedField, ...]:
        return self._fields.get(entity, ())

    def imported(self, entity: str) -> tuple[MappedField, ...]:
        return self._imported.get(entity, ())

    def exported(self, entity: str) -> tuple[MappedField, ...]:
        return self._exported.get(entity, ())

    def field(self, entity: str, remote: str) -> MappedField | None:
        return next((f for f in self.fields(entity) if f.remote == remote), None)

    def local_names(self, entity: str, direction: str = "import") -> tuple[str, ...]:
        """Local columns (canonical first, in column order, then ``custom.KEY``) the fields of ``direction`` touch."""
        chosen = self.imported(entity) if direction == "import" else self.exported(entity)
        names = {f.local for f in chosen if f.local}
        return tuple(n for n in FIELDS[entity] if n in names) + tuple(sorted(n for n in names if is_custom(n)))

    def remote_names(self, entity: str) -> list[str]:
        """The provider fields to read (imported ones), in mapping order."""
        return [f.remote for f in self.imported(entity)]

    def columns(self, entity: str) -> list[tuple[str, str, str]]:
        """The local columns the mapping fills for ``entity``: ``(column, type, description)``, one per column."""
        out = []
        for mapped in self.fields(entity):
            if not mapped.local:
                continue
            spec = mapped.spec
            extra = f"; {spec.describe_transforms()}" if spec.transforms else ""
            out.append((mapped.local, mapped.type, f"{self.provider} {spec.remote} ({spec.direction}{extra})"))
        return out

    def read(self, entity: str, value_of: Callable[[str], Any]) -> tuple[dict[str, Any], list[str]]:
        """Local values of one provider record (``value_of(remote)`` gives its raw values), and its problems."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for mapped in self.imported(entity):
            try:
                values[mapped.local] = mapped.to_local(value_of(mapped.remote))
            except (ValueError, TypeError) as exc:
                problems.append(f"{mapped.remote}: {exc}")
        return values, problems

    def write(self, entity: str, values: MappingABC[str, Any]) -> dict[str, Any]:
        """Provider values of one local record (``None`` for blanks), every exported field once.

        Raises ``ValueError`` naming the local column when a value cannot be written.
        """
        out: dict[str, Any] = {}
        for mapped in self.exported(entity):
            try:
                out[mapped.remote] = mapped.to_remote(values.get(mapped.local) if mapped.local else None)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{mapped.local or mapped.remote}: {exc}") from None
        return out


@functools.lru_cache(maxsize=256)
def _compiled(provider: str, override: str | None, region: str, stamp: float | None) -> CompiledMapping:
    codecs = getattr(importlib.import_module(f"crm_pipelines.providers.{provider}.mapping"), "CODECS", {})
    return CompiledMapping(load(provider, override), codecs, region=region)


def compiled(provider: str, override: str | Path | None = None, *, region: str = "BR") -> CompiledMapping:
    """The mapping of ``provider`` (its defaults, extended by ``override``), compiled with its value formats.

    Cached per file and modification time: an edited override file is read again.
    """
    stamp = None
    if override:
        try:
            stamp = Path(override).stat().st_mtime
        except OSError:
            stamp = None
    return _compiled(provider, str(override) if override else None, region.upper(), stamp)


def default(provider: str) -> CompiledMapping:
    """The built-in mapping of ``provider``."""
    return compiled(provider)


__all__ = ["CompiledMapping", "MappedField", "compiled", "default", "field_type"]
