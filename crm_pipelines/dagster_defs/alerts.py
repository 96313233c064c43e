"""The three alert rules as sensors: failed runs, runs slower than 5 minutes, error rates above 10%.

They run by default; with no channel configured (see :mod:`crm_pipelines.alerts.notify`) an
alert is only logged by the daemon.
"""

import json
import os
import time

import dagster as dg
from pydantic import Field

from crm_pipelines.alerts.notify import Alert, Channels, send
from crm_pipelines.sync.check_names import ERROR_RATE_CHECK, MAX_ERROR_RATE

#: The sensors take the resource by this parameter name.
ALERTS_RESOURCE_KEY = "crm_alerts"
REMEMBERED_RUNS = 500


def _now() -> float:
    return time.time()


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go (from CRM_ALERT_* environment variables) and the thresholds of the rules."""

    slow_run_minutes: float = Field(default=5.0, description="Alert when a run has been running longer than this.")
    ui_url: str | None = Field(default=None, description="Base URL of the Dagster UI, for links in alerts (default: $DAGSTER_UI_URL).")

    def run_link(self, run_id: str) -> str:
        base = (self.ui_url or os.environ.get("DAGSTER_UI_URL") or "").rstrip("/")
        return f"{base}/runs/{run_id}" if base else f"run {run_id}"

    def send(self, alert: Alert) -> list[str]:
        return send(alert, Channels.from_env())


@dg.run_failure_sensor(
    name="crm_alert_failed_runs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert when any run of this code location fails.",
)
def failed_runs_alert(context: dg.RunFailureSensorContext, crm_alerts: AlertsResource) -> None:
    run = context.dagster_run
    alerts = crm_alerts
    message = context.failure_event.message if context.failure_event else "no message"
    partition = run.tags.get("dagster/partition")
    title = f"Run of {run.job_name}{f' for {partition}' if partition else ''} failed"
    alerts.send(Alert("failed run", title, f"{message}\n{alerts.run_link(run.run_id)}"))


@dg.sensor(
    name="crm_alert_slow_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert once per run that has been running for longer than the threshold (5 minutes).",
)
def slow_runs_alert(context: dg.SensorEvaluationContext, crm_alerts: AlertsResource) -> dg.SensorResult:
    alerts = crm_alerts
    alerted: list[str] = json.loads(context.cursor) if context.cursor else []
    now = _now()
    threshold_s = alerts.slow_run_minutes * 60
    fresh = []
    for record in context.instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=1000):
        run = record.dagster_run
        if record.start_time is None or now - record.start_time <= threshold_s or run.run_id in alerted:
            continue
        minutes = (now - record.start_time) / 60
        alerts.send(Alert("slow run", f"Run of {run.job_name} has been running for {minutes:.0f} minutes (threshold {alerts.slow_run_minutes:g})",
                          alerts.run_link(run.run_id)))
        fresh.append(run.run_id)
    if not fresh:
        return dg.SensorResult(skip_reason="no run is slower than the threshold")
    return dg.SensorResult(cursor=json.dumps((alerted + fresh)[-REMEMBERED_RUNS:]))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="crm_alert_error_rate",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Alert when an import rejects more than {MAX_ERROR_RATE:.0%} of the records it read (its error-rate check fails).",
)
def error_rate_alert(context: dg.RunStatusSensorContext, crm_alerts: AlertsResource) -> None:
    run = context.dagster_run
    for entry in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.check_name != ERROR_RATE_CHECK or evaluation.passed:
            continue
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        partition = getattr(evaluation, "partition", None) or run.tags.get("dagster/partition")
        crm_alerts.send(Alert(
            "high error rate",
            f"{evaluation.asset_key.to_user_string()}{f' [{partition}]' if partition else ''}: {meta.get('failed')} of {meta.get('fetched')} records rejected "
            f"({float(meta.get('error_rate', 0)):.0%} > {MAX_ERROR_RATE:.0%})",
            f"See them with: crm-pipelines rejects list\n{crm_alerts.run_link(run.run_id)}",
        ))


ALERT_SENSORS = [failed_runs_alert, slow_runs_alert, error_rate_alert]
