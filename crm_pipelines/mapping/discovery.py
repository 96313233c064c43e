"""Custom fields a provider account has, read from its own field-description endpoints.

Each provider module answers ``custom_fields(client, entity)`` from what the API documents:
HubSpot ``GET /crm/v3/properties/{object}`` (properties not ``hubspotDefined``), Salesforce
``GET sobjects/{X}/describe`` (fields with ``custom: true``), Pipedrive ``/v1/personFields`` (and
``organizationFields``/``dealFields``; fields with ``edit_flag``), Bling ``/campos-customizados/modulos/{id}``,
Shopify ``metafieldDefinitions(ownerType:)`` (metafields, typed, by namespace and key).
GestaoClick documents no such endpoint: its custom values travel in the tag line of ``observacoes``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProviderField:
    """One custom field of a provider account, with the name a mapping file gives it."""

    remote: str
    label: str
    type: str
    options: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {"remote": self.remote, "label": self.label, "type": self.type, "options": ", ".join(self.options)}


def discover(provider: str, client: Any, entity: str) -> list[ProviderField]:
    """The custom fields ``provider`` reports for ``entity`` through ``client``."""
    module = importlib.import_module(f"crm_pipelines.providers.{provider}.api")
    finder = getattr(module, "custom_fields", None)
    if finder is None:
        raise NotImplementedError(getattr(module, "NO_FIELD_DESCRIPTIONS", f"{provider} does not list its custom fields here yet"))
    return sorted(finder(client, entity), key=lambda f: f.remote.casefold())


__all__ = ["ProviderField", "discover"]
