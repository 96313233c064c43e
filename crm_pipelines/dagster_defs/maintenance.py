"""Housekeeping: remove runs and processed webhook events older than the retention period.

Dagster's ``retention`` settings purge schedule and sensor ticks, not runs; this job removes
finished runs (with their event logs) older than ``run_retention_days``, 30 by default.
"""


from datetime import datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.webhooks.inbox import WebhookInbox

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class MaintenanceConfig(dg.Config):
    run_retention_days: float = Field(default=30, ge=0, description="Delete finished runs created more than this many days ago.")
    inbox_retention_days: float = Field(default=30, ge=0, description="Delete webhook events processed more than this many days ago.")
    batch_size: int = Field(default=500, ge=1, description="Runs fetched per query while deleting.")


@dg.op(required_resource_keys={DB_RESOURCE_KEY})
def purge_old_runs_and_events(context: dg.OpExecutionContext, config: MaintenanceConfig) -> dict:
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=config.run_retention_days)
    deleted = 0
    while True:
        records = context.instance.get_run_records(filters=dg.RunsFilter(created_before=cutoff, statuses=FINISHED), limit=config.batch_size)
        if not records:
            break
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
            deleted += 1
        context.log.info("deleted %d runs created before %s so far", deleted, cutoff.isoformat(timespec="seconds"))
    engine = getattr(context.resources, DB_RESOURCE_KEY).store().engine
    events = WebhookInbox(engine).purge_processed(now - timedelta(days=config.inbox_retention_days))
    context.log.info("deleted %d runs and %d processed webhook events", deleted, events)
    context.add_output_metadata({"runs_deleted": deleted, "webhook_events_deleted": events, "runs_created_before": cutoff.isoformat(timespec="seconds")})
    return {"runs_deleted": deleted, "webhook_events_deleted": events}


@dg.job(name="crm_maintenance", description="Delete finished runs and processed webhook events older than 30 days.", tags={"crm/kind": "maintenance"})
def maintenance_job():
    purge_old_runs_and_events()


maintenance_schedule = dg.ScheduleDefinition(
    name="crm_maintenance_daily",
    job=maintenance_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    description="Every day at 03:17 UTC, remove runs and processed webhook events past their retention.",
)
