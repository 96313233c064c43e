"""The Dagster code location: every provider's assets, jobs, schedules and resources."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.dagster_defs.alerts import ALERT_SENSORS, ALERTS_RESOURCE_KEY, AlertsResource
from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.exports import build_export_assets, local_table_specs
from crm_pipelines.dagster_defs.imports import DB_RESOURCE_KEY, build_count_check, build_import_assets
from crm_pipelines.dagster_defs.maintenance import maintenance_job, maintenance_schedule
from crm_pipelines.dagster_defs.schedules import build_export_job, build_import_job, build_incremental_schedule
from crm_pipelines.dagster_defs.targeted import build_sync_ids_job
from crm_pipelines.dagster_defs.webhook_sensors import build_webhook_sensor
from crm_pipelines.providers.registry import all_plugins


def build_definitions() -> dg.Definitions:
    plugins = all_plugins()
    assets: list = local_table_specs(sorted({e for p in plugins for e in p.entities}))
    jobs, schedules, sensors, checks = [maintenance_job], [maintenance_schedule], list(ALERT_SENSORS), []
    resources: dict[str, object] = {DB_RESOURCE_KEY: LocalDatabaseResource(), ALERTS_RESOURCE_KEY: AlertsResource()}
    for plugin in plugins:
        assets.extend(build_import_assets(plugin))
        checks.extend(build_count_check(plugin, entity) for entity in plugin.entities)
        assets.extend(build_export_assets(plugin))
        job = build_import_job(plugin)
        jobs.extend([job, build_export_job(plugin), build_sync_ids_job(plugin)])
        schedules.append(build_incremental_schedule(plugin, job))
        if plugin.webhook_object_types:
            sensors.append(build_webhook_sensor(plugin))
        resources[plugin.resource_key] = plugin.default_resource()
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources)


defs = build_definitions()
