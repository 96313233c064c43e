"""The mapping an integration uses, and the local columns it reads and writes."""

from __future__ import annotations

from crm_pipelines.mapping.compiled import CompiledMapping, compiled
from crm_pipelines.mapping.spec import builtin_path


def has_mapping(provider: str) -> bool:
    """Whether ``provider`` reads and writes through a mapping file (every shipped provider does)."""
    return builtin_path(provider).exists()


def mapping_for(integration, region: str = "BR") -> CompiledMapping:
    """The integration's mapping: the provider's built-in one, extended by its ``mapping_file`` setting."""
    return compiled(integration.provider, integration.settings.mapping_file, region=region)


def held_names(integration, entity: str, direction: str = "import") -> tuple[str, ...]:
    """The local columns (``custom.KEY`` included) the integration's ``direction`` touches for ``entity``."""
    if has_mapping(integration.provider):
        return mapping_for(integration).local_names(entity, direction)
    from crm_pipelines.providers.registry import held_fields

    return held_fields(integration.provider, entity)


__all__ = ["has_mapping", "held_names", "mapping_for"]
