"""What each provider module declares so the generic Dagster layer can build its definitions."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
    #: Object types named in webhook events (lower-case) -> entity, for providers that send webhooks.
    webhook_object_types: dict[str, str] = field(default_factory=dict)


#: Provider modules under ``crm_pipelines.providers``, in the order the UI lists their groups.
PROVIDERS: tuple[str, ...] = ("hubspot", "salesforce")


def all_plugins() -> list[ProviderPlugin]:
    return [importlib.import_module(f"crm_pipelines.providers.{name}").PLUGIN for name in PROVIDERS]


def plugin(name: str) -> ProviderPlugin:
    """The plugin of one provider, with a clear message for an unknown name."""
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    return importlib.import_module(f"crm_pipelines.providers.{name}").PLUGIN
