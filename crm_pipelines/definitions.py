"""The Dagster code location: every provider's assets, jobs, schedules and resources."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.dagster_defs.alerts import ALERT_SENSORS, ALERTS_RESOURCE_KEY, AlertsResource
from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.exports import build_export_assets, local_table_specs
from crm_pipelines.dagster_defs.imports import build_count_check, build_import_assets
from crm_pipelines.dagster_defs.incremental import build_incremental_job, build_incremental_schedule
from crm_pipelines.dagster_defs.integration_partitions import integration_partitions_sensor
from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.job_sensor import jobs_sensor
from crm_pipelines.dagster_defs.maintenance import maintenance_job, maintenance_schedule
from crm_pipelines.dagster_defs.quality import build_quality_assets, build_quality_job, build_quality_schedule
from crm_pipelines.dagster_defs.schedules import build_export_job, build_import_job
from crm_pipelines.dagster_defs.targeted import build_sync_ids_job
from crm_pipelines.dagster_defs.webhook_sensors import build_webhook_sensor
from crm_pipelines.providers.registry import all_plugins


def build_definitions() -> dg.Definitions:
    plugins = all_plugins()
    assets: list = local_table_specs(plugins)
    jobs, schedules, sensors, checks = [maintenance_job], [maintenance_schedule], [*ALERT_SENSORS, integration_partitions_sensor, jobs_sensor], []
    resources: dict[str, object] = {DB_RESOURCE_KEY: LocalDatabaseResource(), ALERTS_RESOURCE_KEY: AlertsResource()}
    for plugin in plugins:
        assets.extend(build_import_assets(plugin))
        checks.extend(build_count_check(plugin, entity) for entity in plugin.entities)
        assets.extend(build_export_assets(plugin))
        assets.extend(build_quality_assets(plugin))
        quality = build_quality_job(plugin)
        jobs.append(quality)
        schedules.append(build_quality_schedule(plugin, quality))
        incremental = build_incremental_job(plugin)
        jobs.extend([build_import_job(plugin), build_export_job(plugin), build_sync_ids_job(plugin), incremental])
        schedules.append(build_incremental_schedule(plugin, incremental))
        if plugin.webhook_object_types:
            sensors.append(build_webhook_sensor(plugin))
        # The default store's connection, from the provider's environment variables (EnvVar secrets).
        resources[plugin.resource_key] = plugin.default_resource()
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources,
        # Syncs wait on providers and databases, not on the CPU: steps run in the run's own process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
