"""Jobs as data: every run has a job row with its progress, figures and the provider's error."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.jobs.progress import JobProgress
from crm_pipelines.jobs.store import JobNotFound, JobStore
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

TOKEN = "jobs-test-secret-token-42"
KEYS = [dg.AssetKey(["hubspot", e]) for e in ("contacts", "companies", "deals")]


@pytest.fixture
def sim():
    now = datetime.now(timezone.utc)
    simulator = HubSpotSimulator(HubSpotSimConfig(seed=5, contacts=600, companies=40, deals=80, tokens=(TOKEN,),
                                                  reference_time=now - timedelta(hours=2), clock_start=now))
    simulator.start()
    yield simulator
    simulator.stop()


def _materialize(sim, url, instance, token=TOKEN, tags=None):
    resources = {"hubspot": HubSpotResource(access_token=token, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=url)}
    return dg.materialize([defs.get_assets_def(k) for k in KEYS], resources=resources, partition_key=DEFAULT, instance=instance,
                          tags=tags or {}, raise_on_error=False)


def test_a_run_nobody_asked_for_gets_a_job_with_its_figures(sim, sqlite_url):
    """A run started from the UI (no job made first) has a job: kind, integration, figures, 100 %."""
    with instance_with_integrations() as instance:
        result = _materialize(sim, sqlite_url, instance)
        assert result.success
    store = LocalStore.open(sqlite_url)
    jobs = JobStore(store.engine).list()
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.kind, job.state, job.provider, job.integration_key, job.trigger) == ("sync", "succeeded", "hubspot", DEFAULT, "ui")
    assert job.run_id == result.run_id
    assert job.processed == 720 and job.created == 720 and job.percent == 100.0
    assert set(job.entities) == {"contacts", "companies", "deals"} and all(e["done"] for e in job.entities.values())
    assert job.started_at and job.finished_at
    store.dispose()


def test_a_job_made_before_its_run_is_the_one_the_run_keeps(sim, sqlite_url):
    store = LocalStore.open(sqlite_url)
    integration = store.scope("hubspot")
    jobs = JobStore(store.engine)
    asked = jobs.create("sync", "hubspot", integration, trigger="api", callback_url="http://app/cb")
    with instance_with_integrations() as instance:
        assert _materialize(sim, sqlite_url, instance, tags={"crm/job_id": str(asked.id)}).success
    [job] = jobs.list()
    assert job.id == asked.id and job.state == "succeeded" and job.trigger == "api" and job.callback_url == "http://app/cb"
    store.dispose()


def test_a_bad_token_fails_the_job_with_the_providers_message(sim, sqlite_url):
    with instance_with_integrations() as instance:
        assert not _materialize(sim, sqlite_url, instance, token="not-the-token").success
    store = LocalStore.open(sqlite_url)
    [job] = JobStore(store.engine).list()
    assert job.state == "failed"
    assert "401" in job.error and "Steps failed" not in job.error
    assert "not-the-token" not in job.error
    store.dispose()


def test_progress_is_written_every_few_seconds_not_every_page(store):
    clock = [0.0]
    jobs = JobStore(store.engine)
    job = jobs.create("sync", "hubspot", store.scope("hubspot"), state="running")
    progress = JobProgress(jobs, job, ["contacts", "companies"], every_s=2.0, clock=lambda: clock[0])
    for page in range(1, 11):
        clock[0] += 0.5
        progress.page("contacts", page * 100, 1000)
    assert progress.writes == 2  # at 2 s and 4 s of 5 s
    row = jobs.get(job.id)
    assert row.processed == 800 and row.total is None or row.total == 1000
    assert 0 < row.percent < 50 and row.total_is_estimate  # companies' total not known yet
    progress.entity_done("contacts", 1000, created=1000)
    progress.entity_done("companies", 50, created=40, updated=10)
    row = jobs.get(job.id)
    assert (row.processed, row.total, row.percent, row.created, row.updated) == (1050, 1050, 100.0, 1040, 10)


def test_a_finished_job_keeps_its_state(store):
    jobs = JobStore(store.engine)
    job = jobs.create("export", "hubspot", store.scope("hubspot"))
    assert jobs.finish(job.id, "cancelled")
    assert not jobs.finish(job.id, "succeeded")
    jobs.update(job.id, processed=5)
    assert jobs.get(job.id).state == "cancelled" and jobs.get(job.id).processed == 0
    with pytest.raises(JobNotFound):
        jobs.get(job.id + 1)


def test_finished_jobs_are_notified_once(store):
    from crm_pipelines.jobs.notify import job_alert
    from crm_pipelines.jobs.service import JobService

    sent = []
    service = JobService(store, None, None, notifier=sent.append)
    jobs = service.jobs
    quiet = jobs.create("sync", "hubspot", store.scope("hubspot"))
    loud = jobs.create("export", "hubspot", store.scope("hubspot"), notify=True, callback_url="http://app.example/cb")
    service.watch_once()
    assert sent == []  # nothing finished yet
    for job in (quiet, loud):
        jobs.finish(job.id, "failed", error="hubspot HTTP 401 INVALID_AUTHENTICATION")
    service.watch_once()
    service.watch_once()
    assert [job.id for job in sent] == [loud.id]
    alert = job_alert(sent[0])
    assert "failed" in alert.title and "401" in alert.details


def test_the_jobs_sensor_settles_a_job_whose_run_ended(store, db_url):
    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.dagster_defs.job_sensor import jobs_sensor

    jobs = JobStore(store.engine)
    job = jobs.create("sync", "hubspot", store.scope("hubspot"), state="running")
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
        instance.report_run_canceled(run)
        jobs.attach_run(job.id, run.run_id)
        with dg.build_sensor_context(instance=instance, resources={"crm_db": LocalDatabaseResource(url=db_url)}) as context:
            result = jobs_sensor.evaluate_tick(context)
    assert "1 jobs settled" in result.skip_message
    assert jobs.get(job.id).state == "cancelled"


def test_a_callback_url_receives_the_finished_job(store):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from crm_pipelines.alerts.notify import Channels
    from crm_pipelines.jobs.notify import JobNotifier

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        jobs = JobStore(store.engine)
        job = jobs.create("sync", "hubspot", store.scope("hubspot"), callback_url=f"http://127.0.0.1:{server.server_port}/done")
        jobs.finish(job.id, "succeeded", processed=10)
        JobNotifier(Channels())(jobs.get(job.id))
    finally:
        server.shutdown()
    assert [(r["id"], r["state"], r["percent"]) for r in received] == [(job.id, "succeeded", 100.0)]


def test_a_termination_the_code_server_does_not_take_leaves_the_job_asking_to_cancel(store, caplog):
    """On a busy machine Dagster gives up on the code server after 60 s and raises: the caller of a
    cancel still gets the job, marked as asking to cancel, and the log names the run."""
    from dagster._core.errors import DagsterUserCodeUnreachableError

    from crm_pipelines.jobs.launcher import DagsterLauncher
    from crm_pipelines.jobs.service import JobService

    class BusyCodeServer:
        def cancel_run(self, run_id: str) -> bool:
            raise DagsterUserCodeUnreachableError("User code server request timed out due to taking longer than 60 seconds to complete.")

    service = JobService(store, None, DagsterLauncher(SimpleNamespace(run_coordinator=BusyCodeServer())))
    try:
        job = service.jobs.create("sync", "hubspot", store.scope("hubspot"), run_id="run-7", state="running")
        with caplog.at_level(logging.WARNING, logger="crm_pipelines.jobs.launcher"):
            cancelled = service.cancel(job.id)
    finally:
        service.close()
    assert cancelled.cancel_requested and cancelled.state == "running"
    assert "run-7" in caplog.text and "did not take its termination" in caplog.text
