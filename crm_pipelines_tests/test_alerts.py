"""Each alert rule fires against local receivers (chat webhook and SMTP), and stays quiet otherwise."""


import dagster as dg
import pytest

from crm_pipelines.alerts.notify import Alert, Channels, send
from crm_pipelines.dagster_defs import alerts as alerts_module
from crm_pipelines.dagster_defs.alerts import AlertsResource, error_rate_alert, failed_runs_alert, slow_runs_alert
from crm_pipelines.dagster_defs.imports import ERROR_RATE_CHECK
from crm_pipelines_tests.helpers.receivers import SmtpReceiver, WebhookReceiver


@pytest.fixture
def receivers(monkeypatch):
    hook, smtp = WebhookReceiver(), SmtpReceiver()
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("CRM_ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRM_ALERT_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("CRM_ALERT_SMTP_STARTTLS", "false")
    monkeypatch.setenv("CRM_ALERT_SMTP_USER", "alerts")
    monkeypatch.setenv("CRM_ALERT_SMTP_PASSWORD", "smtp-secret-value")
    monkeypatch.setenv("CRM_ALERT_EMAIL_TO", "dados@empresa.com.br, ops@empresa.com.br")
    yield hook, smtp
    hook.close()
    smtp.close()


def texts(hook):
    return [body["text"] for body in hook.received]


@dg.op
def broken_import() -> None:
    raise dg.Failure("hubspot HTTP 401: authentication credentials not found")


@dg.job
def broken_job():
    broken_import()


def test_failed_run_alert_reaches_webhook_and_mailbox(receivers):
    hook, smtp = receivers
    instance = dg.DagsterInstance.ephemeral()
    result = broken_job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-11-23-10:00"})
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="crm_alert_failed_runs", dagster_event=failure, dagster_instance=instance, dagster_run=result.dagster_run,
        resources={"crm_alerts": AlertsResource(ui_url="http://dagster.internal:3000")},
    ).for_run_failure()
    failed_runs_alert(context)
    [text] = texts(hook)
    assert "[failed run] Run of broken_job for 2026-11-23-10:00 failed" in text
    assert f"http://dagster.internal:3000/runs/{result.run_id}" in text
    [(recipients, message)] = smtp.messages
    assert recipients == ["dados@empresa.com.br", "ops@empresa.com.br"]
    assert message["Subject"].startswith("[crm_pipelines] Run of broken_job")
    assert smtp.logins and "smtp-secret-value" not in repr(Channels.from_env())


def test_slow_run_alert_fires_once_per_run(receivers, monkeypatch):
    hook, _ = receivers
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(broken_job)
    instance.handle_run_event(run.run_id, dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="broken_job"))
    [record] = instance.get_run_records()
    monkeypatch.setattr(alerts_module, "_now", lambda: record.start_time + 7 * 60)  # seven minutes later
    resources = {"crm_alerts": AlertsResource(slow_run_minutes=5)}
    result = slow_runs_alert(dg.build_sensor_context(instance=instance, resources=resources))
    [text] = texts(hook)
    assert "[slow run] Run of broken_job has been running for 7 minutes (threshold 5)" in text and run.run_id in text
    # The next tick does not repeat it.
    again = slow_runs_alert(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
    assert texts(hook) == [text] and again.skip_reason


def test_slow_run_alert_is_quiet_for_quick_runs(receivers):
    hook, _ = receivers
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(broken_job)
    instance.handle_run_event(run.run_id, dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="broken_job"))
    result = slow_runs_alert(dg.build_sensor_context(instance=instance, resources={"crm_alerts": AlertsResource(slow_run_minutes=5)}))
    assert result.skip_reason and texts(hook) == []


@dg.asset(check_specs=[dg.AssetCheckSpec(ERROR_RATE_CHECK, asset=dg.AssetKey(["hubspot", "contacts"]))], key=["hubspot", "contacts"])
def contacts_with_rejects(context, config: dg.PermissiveConfig) -> dg.MaterializeResult:
    failed, fetched = config.failed, config.fetched
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name=ERROR_RATE_CHECK, asset_key=dg.AssetKey(["hubspot", "contacts"]), passed=failed / fetched <= 0.10,
        metadata={"error_rate": failed / fetched, "failed": failed, "fetched": fetched})])


def test_error_rate_alert_fires_above_ten_percent_only(receivers):
    hook, _ = receivers
    instance = dg.DagsterInstance.ephemeral()
    for failed in (5, 30):  # 5% passes the check, 30% fails it
        result = dg.materialize([contacts_with_rejects], instance=instance, run_config={"ops": {"hubspot__contacts": {"config": {"failed": failed, "fetched": 100}}}})
        success = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
        error_rate_alert(dg.build_run_status_sensor_context(
            sensor_name="crm_alert_error_rate", dagster_event=success, dagster_instance=instance, dagster_run=result.dagster_run,
            resources={"crm_alerts": AlertsResource()},
        ))
    [text] = texts(hook)
    assert "[high error rate] hubspot/contacts: 30 of 100 records rejected (30% > 10%)" in text


def test_unreachable_channels_never_raise(monkeypatch):
    channels = Channels(webhook_url="http://127.0.0.1:9/nothing", smtp_host="127.0.0.1", smtp_port=9, email_to=("a@b.c",), smtp_starttls=False)
    assert send(Alert("failed run", "x"), channels, timeout_s=1) == []
