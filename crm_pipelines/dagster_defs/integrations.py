"""The integration a step works on, from its partition key, and the client to reach it.

The default store's integration of a provider takes its connection from the provider's Dagster
resource (``hubspot``, ``bling``...: ``EnvVar`` credentials, shown in the UI by variable name);
every other integration from its row in the ``integrations`` table.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.integrations.model import Integration
from crm_pipelines.integrations.registry import bind_database
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.storage.store import LocalStore

DB_RESOURCE_KEY = "crm_db"


def integration_for(store: LocalStore, plugin: ProviderPlugin, key: str) -> Integration:
    """The integration named by a partition key, with a run-stopping error when it cannot be synced."""
    try:
        integration = store.integrations.get(plugin.name, key)
    except ConfigurationError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if not integration.active:
        raise dg.Failure(
            description=f"{integration.label} is disabled; enable it with: crm-pipelines integrations enable {plugin.name} {key}",
            allow_retries=False,
        )
    return integration


def client_resource(context: Any, store: LocalStore, plugin: ProviderPlugin, integration: Integration) -> Any:
    """What opens readers and writers for ``integration`` (``ConfigurationError`` when its connection is unusable)."""
    if integration.from_env:
        resource = getattr(context.resources, plugin.resource_key)
        bind_database(resource, store.engine)
        return resource
    return store.integrations.resource(integration)


def step_client(context: Any, store: LocalStore, plugin: ProviderPlugin, integration: Integration) -> Any:
    """:func:`client_resource` for a step: an unusable connection fails the step with its message, without retries."""
    try:
        return client_resource(context, store, plugin, integration)
    except ConfigurationError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def integration_tags(integration: Integration) -> dict[str, str]:
    return {"crm/provider": integration.provider, "crm/integration": integration.key, "crm/store": integration.store_key}


__all__ = ["DB_RESOURCE_KEY", "client_resource", "integration_for", "integration_tags", "step_client"]
