"""``sync --async`` through the jobs service, and ``crm-pipelines jobs list|show|watch|cancel``."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from crm_pipelines.cli import main
from crm_pipelines.cli.jobs import bar_line
from crm_pipelines.jobs.service import JobService
from crm_pipelines.jobs.store import JobStore
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.app import WebhookSecrets, create_app
from crm_pipelines_tests.helpers.jobs import FakeLauncher

TOKEN = "cli-api-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def service_url(sqlite_url, monkeypatch):
    """``crm-pipelines serve``'s app on a port, with a launcher that records what it would launch."""
    store = LocalStore.open(sqlite_url)
    launcher = FakeLauncher()
    app = create_app(store.engine, WebhookSecrets(), jobs=JobService(store, None, launcher), api_token=TOKEN)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    monkeypatch.setenv("CRM_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("CRM_API_TOKEN", TOKEN)
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield store, launcher
    server.should_exit = True
    thread.join(timeout=10)
    store.dispose()


def test_async_goes_through_the_jobs_service(service_url, capsys):
    store, launcher = service_url
    assert main(["sync", "hubspot", "contacts", "--async", "--full"]) == 0
    out = capsys.readouterr().out
    [job] = JobStore(store.engine).list()
    assert f"job {job.id} queued" in out and f"crm-pipelines jobs watch {job.id}" in out
    assert launcher.done.wait(5)
    name, tags, config, keys = launcher.launched[0]
    assert name == "hubspot_import" and keys == [["hubspot", "contacts"]] and config["ops"]["hubspot__contacts"]["config"] == {"full": True}
    assert job.trigger == "api"


def test_jobs_commands_read_the_rows(service_url, capsys):
    store, launcher = service_url
    jobs = JobStore(store.engine)
    job = jobs.create("sync", "hubspot", store.scope("hubspot"), state="running")
    jobs.update(job.id, processed=500, total=1000, percent=50.0, eta_s=12.0)
    assert "[###############...............] 50% 500/1,000 ETA 12s running" in bar_line(jobs.get(job.id))
    assert main(["jobs", "list"]) == 0
    assert "50%" in capsys.readouterr().out
    jobs.finish(job.id, "failed", error="hubspot HTTP 401 INVALID_AUTHENTICATION")
    assert main(["jobs", "watch", str(job.id)]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "error: hubspot HTTP 401" in out
    assert main(["jobs", "show", str(job.id)]) == 0 and '"state": "failed"' in capsys.readouterr().out
    other = jobs.create("export", "hubspot", store.scope("hubspot"))
    jobs.attach_run(other.id, "run-x")
    assert main(["jobs", "cancel", str(other.id)]) == 0
    assert launcher.cancelled == ["run-x"] and jobs.get(other.id).cancel_requested


def test_status_shows_a_running_job(service_url, capsys):
    store, _ = service_url
    jobs = JobStore(store.engine)
    job = jobs.create("sync", "hubspot", store.scope("hubspot"), state="running")
    jobs.update(job.id, entities={"contacts": {"processed": 450, "total": 1000, "done": False}})
    assert main(["status", "hubspot"]) == 0
    assert f"running 45% (job {job.id})" in capsys.readouterr().out
