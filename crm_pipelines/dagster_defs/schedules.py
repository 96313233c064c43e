"""The import and export jobs of each provider (a run syncs one integration: the partition)."""

import dagster as dg

from crm_pipelines.dagster_defs.imports import import_asset_key
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.sync.check_names import ERROR_RATE_CHECK, SYNC_CHECK


def provider_job(plugin: ProviderPlugin, name: str, selection: dg.AssetSelection, description: str, direction: str | None = None) -> dg.JobDefinition:
    """One provider's job over ``selection``: runs one integration (the partition), in process,
    tagged with the provider (and the direction, for the run limits and the UI's filters)."""
    tags = {"crm/provider": plugin.name} | ({"crm/direction": direction} if direction else {})
    return dg.define_asset_job(name, selection=selection, description=description, tags=tags, executor_def=dg.in_process_executor)


def import_job_name(provider: str) -> str:
    return f"{provider}_import"


def build_import_job(plugin: ProviderPlugin):
    keys = [import_asset_key(plugin.name, e) for e in plugin.entities]
    checks = [dg.AssetCheckKey(k, name) for k in keys for name in (ERROR_RATE_CHECK, SYNC_CHECK)]
    return provider_job(
        plugin, import_job_name(plugin.name),
        # The checks computed with the import come with every run; the count check costs a provider call and runs on its own.
        dg.AssetSelection.assets(*keys).without_checks() | dg.AssetSelection.checks(*checks),
        f"Import {plugin.title} {', '.join(plugin.entities)} of one integration (the partition), from its last synced point.",
    )


def export_job_name(provider: str) -> str:
    return f"{provider}_export"


def build_export_job(plugin: ProviderPlugin):
    from crm_pipelines.dagster_defs.exports import export_asset_key

    return provider_job(
        plugin, export_job_name(plugin.name),
        dg.AssetSelection.assets(*[export_asset_key(plugin.name, e) for e in plugin.entities]),
        f"Send one integration's local changes of {', '.join(plugin.entities)} to {plugin.title}.",
        direction="export",
    )
