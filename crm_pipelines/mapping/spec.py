"""Mapping files: what they may say, how they are read and checked, and how an override extends the defaults.

A mapping file is YAML::

    version: 1
    provider: hubspot
    entities:
      contacts:
        - {remote: email, local: email}
        - {remote: favorite_color, local: custom.favorite_color, transforms: [trim, lower]}
        - {remote: hs_lead_status, local: lifecycle_stage, transforms: [{value_map: {NEW: lead}}]}
        - {remote: lead_source, constant: crm_pipelines}

Every field names the provider's field (``remote``) and the local column (``local``: a canonical
column of the entity, or ``custom.KEY``, a key of the table's JSON ``custom`` column), with an
optional ``direction`` (``both``, ``import`` or ``export``), ``type`` and ``transforms``. A field
with a ``constant`` has no local column and is only exported.

Errors name the file, the line and the field (:class:`MappingError`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import FIELDS
from crm_pipelines.mapping.transforms import Transform, parse_transform
from crm_pipelines.mapping.types import CUSTOM_TYPES, TYPES

DEFAULTS_DIR = Path(__file__).parent / "defaults"
VERSION = 1
CUSTOM_PREFIX = "custom."
_CUSTOM_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LINE = "__line__"


class MappingError(ConfigurationError):
    """A mapping file that cannot be used, with the file, line and field at fault."""


def is_custom(local: str | None) -> bool:
    return bool(local) and local.startswith(CUSTOM_PREFIX)


def custom_key(local: str) -> str:
    return local[len(CUSTOM_PREFIX):]


class FieldSpec(BaseModel):
    """One mapped field, as written in a mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: str
    local: str | None = None
    direction: Literal["import", "export", "both"] | None = None
    type: str | None = None
    transforms: tuple[Transform, ...] = ()
    constant: Any = None
    line: int = 0

    @field_validator("remote")
    @classmethod
    def _remote(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("remote must name the provider's field")
        return value

    @field_validator("transforms", mode="before")
    @classmethod
    def _transforms(cls, value: Any) -> tuple[Transform, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ValueError("transforms is a list")
        return tuple(t if isinstance(t, Transform) else parse_transform(t) for t in value)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in TYPES:
            raise ValueError(f"unknown type {value!r}; expected one of {', '.join(TYPES)}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> FieldSpec:
        if "constant" in self.model_fields_set:
            if self.local is not None:
                raise ValueError("a constant has no local column (it is only exported)")
            if self.direction not in (None, "export"):
                raise ValueError("a constant is only exported (direction: export)")
            object.__setattr__(self, "direction", "export")
        elif not self.local:
            raise ValueError("local must name a column (or custom.KEY), or the field needs a constant")
        if self.direction is None:
            object.__setattr__(self, "direction", "both")
        if is_custom(self.local):
            if not _CUSTOM_KEY.match(custom_key(self.local)):
                raise ValueError(f"custom key {custom_key(self.local)!r} must be lower-case letters, digits or underscores")
            if self.type is not None and self.type not in CUSTOM_TYPES:
                raise ValueError(f"type {self.type!r} cannot be kept in the custom column; expected one of {', '.join(CUSTOM_TYPES)}")
        return self

    @property
    def has_constant(self) -> bool:
        return "constant" in self.model_fields_set

    @property
    def imports(self) -> bool:
        return self.direction in ("import", "both")

    @property
    def exports(self) -> bool:
        return self.direction in ("export", "both")

    def describe_transforms(self) -> str:
        return ", ".join(t.describe() for t in self.transforms)


@dataclass(frozen=True)
class MappingSpec:
    """One provider's mapping: its fields per entity, and the files it was read from."""

    provider: str
    entities: dict[str, tuple[FieldSpec, ...]]
    sources: tuple[str, ...] = field(default=())

    def fields(self, entity: str) -> tuple[FieldSpec, ...]:
        return self.entities.get(entity, ())


class _LineLoader(yaml.SafeLoader):
    """A YAML loader recording the line of every mapping (``__line__``, 1-based)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def parse_text(text: str, source: str, *, provider: str | None = None) -> MappingSpec:
    """Read and check a mapping file's text; ``source`` names it in errors."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise MappingError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise MappingError(f"{source}:1: a mapping file is a YAML mapping with version, provider and entities")
    top_line = data.get(_LINE, 1)
    unknown = sorted(set(data) - {"version", "provider", "entities", _LINE})
    if unknown:
        raise MappingError(f"{source}:{top_line}: unknown key(s) {', '.join(map(str, unknown))} (expected version, provider, entities)")
    if data.get("version") != VERSION:
        raise MappingError(f"{source}:{top_line}: version must be {VERSION}, not {data.get('version')!r}")
    named = data.get("provider")
    if not isinstance(named, str) or (provider is not None and named != provider):
        raise MappingError(f"{source}:{top_line}: provider must be {provider or 'a provider name'!r}, not {named!r}")
    entities = data.get("entities")
    if not isinstance(entities, dict):
        raise MappingError(f"{source}:{top_line}: entities must map each entity to its list of fields")
    out: dict[str, tuple[FieldSpec, ...]] = {}
    for entity, items in entities.items():
        if entity == _LINE:
            continue
        line = entities.get(_LINE, top_line)
        if entity not in FIELDS:
            raise MappingError(f"{source}:{line}: unknown entity {entity!r}; expected one of {', '.join(FIELDS)}")
        if not isinstance(items, list):
            raise MappingError(f"{source}:{line}: {entity} must be a list of fields")
        specs = []
        for item in items:
            if not isinstance(item, dict):
                raise MappingError(f"{source}:{line}: {entity}: each field is a mapping with remote and local, not {item!r}")
            specs.append(_field(source, entity, item))
        _check_entity(source, entity, specs)
        out[entity] = tuple(specs)
    return MappingSpec(named, out, (source,))


def _field(source: str, entity: str, item: dict[str, Any]) -> FieldSpec:
    line = item.get(_LINE, 0)
    data = _strip_lines(item)
    name = data.get("remote") or data.get("local") or "?"
    try:
        spec = FieldSpec.model_validate({**data, "line": line})
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise MappingError(f"{source}:{line}: {entity} field {name!r}: {problems}") from None
    if spec.local and not is_custom(spec.local) and spec.local not in FIELDS[entity]:
        raise MappingError(f"{source}:{line}: {entity} field {name!r}: unknown local column {spec.local!r}; "
                           f"expected one of {', '.join(FIELDS[entity])} or custom.KEY")
    return spec


def _problem(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _check_entity(source: str, entity: str, specs: list[FieldSpec]) -> None:
    remotes: dict[tuple[str, bool], FieldSpec] = {}
    locals_in: dict[str, FieldSpec] = {}
    for spec in specs:
        for direction, applies in (("import", spec.imports), ("export", spec.exports)):
            if not applies:
                continue
            key = (spec.remote, direction == "export")
            if key in remotes and direction == "export":
                raise MappingError(f"{source}:{spec.line}: {entity} field {spec.remote!r}: already exported by the field on line {remotes[key].line}")
            remotes[key] = spec
        if spec.imports and spec.local:
            earlier = locals_in.get(spec.local)
            if earlier is not None:
                raise MappingError(f"{source}:{spec.line}: {entity} field {spec.remote!r}: {spec.local} is already imported "
                                   f"from {earlier.remote!r} (line {earlier.line})")
            locals_in[spec.local] = spec


def read_file(path: str | Path, *, provider: str | None = None) -> MappingSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_text(text, str(path), provider=provider)


def builtin_path(provider: str) -> Path:
    return DEFAULTS_DIR / f"{provider}.yaml"


@functools.cache
def builtin(provider: str) -> MappingSpec:
    """The mapping shipped with the package for ``provider`` (its defaults)."""
    return read_file(builtin_path(provider), provider=provider)


def extend(base: MappingSpec, override: MappingSpec) -> MappingSpec:
    """``base`` with ``override``'s fields: one naming the same provider field, or importing into the
    same local column, replaces the default's; the others are added."""
    entities = dict(base.entities)
    for entity, specs in override.entities.items():
        kept = list(entities.get(entity, ()))
        for spec in specs:
            kept = [old for old in kept if old.remote != spec.remote and not (spec.imports and old.imports and old.local and old.local == spec.local)]
        merged = [*kept, *specs]
        _check_entity(" + ".join((*base.sources, *override.sources)), entity, merged)
        entities[entity] = tuple(merged)
    return MappingSpec(base.provider, entities, (*base.sources, *override.sources))


def load(provider: str, override: str | Path | None = None) -> MappingSpec:
    """The built-in mapping of ``provider``, extended by the ``override`` file when given."""
    base = builtin(provider)
    if not override:
        return base
    return extend(base, read_file(override, provider=provider))


__all__ = ["CUSTOM_PREFIX", "FieldSpec", "MappingError", "MappingSpec", "builtin", "builtin_path", "custom_key", "extend", "is_custom", "load",
           "parse_text", "read_file"]
