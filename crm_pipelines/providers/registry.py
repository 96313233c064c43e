"""What each provider module declares so the generic Dagster layer can build its definitions."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_pipelines.core.model import FIELDS


@dataclass(frozen=True)
class ProviderPlugin:
    """One provider: its name, entities, and the resource that opens change readers.

    The resource returned by ``default_resource`` must offer
    ``open_reader(strategy=..., logger=...)``, a context manager yielding ``(reader, call_stats)``.
    """

    name: str
    title: str
    entities: tuple[str, ...]
    resource_key: str
    default_resource: Callable[[], Any]
    env_vars: tuple[str, ...] = ()
    #: Object types named in webhook events (lower-case) -> entity (or entities, when one event
    #: type covers several, like Bling's "contact" for persons and companies).
    webhook_object_types: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    #: Canonical fields the provider has a place for, per entity (default: all of them). Imports
    #: leave the other local fields alone, and changes to them are not exported to this provider.
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The environment variables that point the resource at a running simulator of this provider.
    simulator_env: Callable[[Any], dict[str, str]] | None = None
    #: The resource class (imported on demand); an integration's connection holds its field values.
    resource_class: Callable[[], type] | None = None
    #: A person's name is one field at the provider ("nome"): importing it back keeps the local
    #: split into first and last name when the words are the same ("João Pedro" / "Gonçalves").
    person_name_in_one_field: bool = False
    #: Rate settings an integration may lower but not raise past the provider's published limits.
    rate_limits: dict[str, float] = field(default_factory=dict)

    def resource_type(self) -> type:
        if self.resource_class is not None:
            return self.resource_class()
        return type(self.default_resource())

    def secret_fields(self) -> tuple[str, ...]:
        """Connection fields holding credentials (stored as references or encrypted, never in plain text)."""
        fields = self.resource_type().model_fields
        return tuple(name for name, info in fields.items() if (info.json_schema_extra or {}).get("dagster__is_secret"))


#: Provider modules under ``crm_pipelines.providers``, in the order the UI lists their groups.
PROVIDERS: tuple[str, ...] = ("hubspot", "salesforce", "pipedrive", "shopify", "bling", "gestaoclick")


def all_plugins() -> list[ProviderPlugin]:
    return [importlib.import_module(f"crm_pipelines.providers.{name}").PLUGIN for name in PROVIDERS]


@functools.cache
def person_name_in_one_field(provider: str) -> bool:
    return provider in PROVIDERS and plugin(provider).person_name_in_one_field


def held_fields(provider: str, entity: str) -> tuple[str, ...]:
    """The canonical fields of ``entity`` that ``provider`` holds (all of them for unknown names)."""
    if provider in PROVIDERS:
        held = plugin(provider).fields.get(entity)
        if held:
            return tuple(name for name in FIELDS[entity] if name in held)
    return FIELDS[entity]


def plugin(name: str) -> ProviderPlugin:
    """The plugin of one provider, with a clear message for an unknown name."""
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    return importlib.import_module(f"crm_pipelines.providers.{name}").PLUGIN
