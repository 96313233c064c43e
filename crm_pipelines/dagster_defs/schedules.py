"""The import and export jobs of each provider (a run syncs one integration: the partition)."""

import dagster as dg

from crm_pipelines.dagster_defs.imports import import_asset_key
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.sync.check_names import ERROR_RATE_CHECK, SYNC_CHECK


def import_job_name(provider: str) -> str:
    return f"{provider}_import"


def build_import_job(plugin: ProviderPlugin):
    keys = [import_asset_key(plugin.name, e) for e in plugin.entities]
    checks = [dg.AssetCheckKey(k, name) for k in keys for name in (ERROR_RATE_CHECK, SYNC_CHECK)]
    return dg.define_asset_job(
        import_job_name(plugin.name),
        # The checks computed with the import come with every run; the count check costs a provider call and runs on its own.
        selection=dg.AssetSelection.assets(*keys).without_checks() | dg.AssetSelection.checks(*checks),
        description=f"Import {plugin.title} {', '.join(plugin.entities)} of one integration (the partition), from its last synced point.",
        tags={"crm/provider": plugin.name},
        executor_def=dg.in_process_executor,
    )


def export_job_name(provider: str) -> str:
    return f"{provider}_export"


def build_export_job(plugin: ProviderPlugin):
    from crm_pipelines.dagster_defs.exports import export_asset_key

    return dg.define_asset_job(
        export_job_name(plugin.name),
        selection=dg.AssetSelection.assets(*[export_asset_key(plugin.name, e) for e in plugin.entities]),
        description=f"Send one integration's local changes of {', '.join(plugin.entities)} to {plugin.title}.",
        tags={"crm/provider": plugin.name, "crm/direction": "export"},
        executor_def=dg.in_process_executor,
    )
