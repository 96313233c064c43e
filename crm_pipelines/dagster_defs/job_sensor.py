"""The sensor that settles jobs whose runs ended, and sends their notifications, when no
``crm-pipelines serve`` does it (the service's watcher does the same every second)."""

import dagster as dg

from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY


@dg.sensor(
    name="crm_jobs",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    required_resource_keys={DB_RESOURCE_KEY},
    description="Gives each job the final state of its run (a run killed with its worker, a cancellation) and sends 'job finished' notifications.",
)
def jobs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    from crm_pipelines.jobs.notify import JobNotifier
    from crm_pipelines.jobs.service import JobService

    store = getattr(context.resources, DB_RESOURCE_KEY).store()
    service = JobService(store, context.instance, None, notifier=JobNotifier.from_env())
    try:
        settled, notified = service.watch_once()
    finally:
        service.close()
    return dg.SkipReason(f"{settled} jobs settled, {notified} notified")
