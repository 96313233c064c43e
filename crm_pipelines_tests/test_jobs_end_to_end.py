"""An application drives the jobs API against a real Dagster instance whose launcher really
launches runs (``DefaultRunLauncher``, a code server for the definitions, a process per run):
start a sync and poll it to 100 %, cancel another one mid-way (its run ends CANCELED and no batch
is left half-written), stop a third whose run is only marked CANCELING (a code server too busy to
take the termination), and read the provider's 401 message on a job with a bad token."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from crm_pipelines.dagster_defs.partitions import integration_partitions_name
from crm_pipelines.jobs.launcher import DagsterLauncher
from crm_pipelines.jobs.service import service_from_env
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.simulator.faults import FaultConfig
from crm_pipelines.storage.schema import contacts, external_links
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.app import WebhookSecrets, create_app

API_TOKEN = "e2e-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HUBSPOT_TOKEN = "e2e-hubspot-token"


def _sim(**sizes) -> HubSpotSimulator:
    now = datetime.now(timezone.utc)
    sim = HubSpotSimulator(HubSpotSimConfig(seed=3, tokens=(HUBSPOT_TOKEN,), reference_time=now - timedelta(hours=2), clock_start=now, **sizes))
    sim.start()
    return sim


@contextlib.contextmanager
def _cancel_leftovers(instance):
    """Runs still going when the test ends (the failed job's other entities) are cancelled, as the
    jobs service does it (a code server too busy to answer is logged, not raised)."""
    try:
        yield
    finally:
        launcher = DagsterLauncher(instance)
        for run in instance.get_runs():
            if not run.is_finished:
                launcher.cancel(run.run_id)


def _poll(client: TestClient, job_id: int, until, timeout_s: float = 120.0) -> list[dict]:
    """GET the job every half second, as an application's progress bar would, until ``until(job)``."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        seen.append(job)
        if until(job):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not get there in {timeout_s}s: {seen[-1]}")


@pytest.mark.slow
def test_an_application_starts_watches_and_cancels_jobs(tmp_path, monkeypatch):
    # The big account answers every call in half a second: a read of 40 pages can be cancelled mid-way.
    small = _sim(contacts=300, companies=30, deals=60)
    big = _sim(contacts=4000, companies=10, deals=10, faults=FaultConfig(rate_slow=1.0, slow_seconds=0.5))
    home = tmp_path / "dagster_home"
    home.mkdir()
    # No daemon in a test: the default coordinator hands each run to the launcher at once.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    for name, value in {"DAGSTER_HOME": str(home), "CRM_DATABASE_URL": url, "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
                        "HUBSPOT_BASE_URL": small.base_url, "E2E_BIG_TOKEN": HUBSPOT_TOKEN, "E2E_BAD_TOKEN": "not-the-token"}.items():
        monkeypatch.setenv(name, value)
    store = LocalStore.open(url)
    store.scope("hubspot")  # the default integration, from the environment
    for key in ("loja_big", "loja_bad"):
        store.integrations.add_store(key)
    store.integrations.add("hubspot", store="loja_big", connection={"access_token": {"env": "E2E_BIG_TOKEN"}, "base_url": big.base_url})
    store.integrations.add("hubspot", store="loja_bad", connection={"access_token": {"env": "E2E_BAD_TOKEN"}, "base_url": small.base_url})
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(integration_partitions_name("hubspot"), ["default", "loja_big", "loja_bad"])
    service = service_from_env(store.engine, instance)
    try:
        with TestClient(create_app(store.engine, WebhookSecrets(), jobs=service, api_token=API_TOKEN)) as client, _cancel_leftovers(instance):
            started = time.monotonic()
            first = client.post("/api/jobs", json={"provider": "hubspot"}, headers=AUTH)
            assert first.status_code == 202 and first.json()["state"] == "queued"
            assert time.monotonic() - started < 5  # well under a second in practice; generous on a loaded machine

            cancel_me = client.post("/api/jobs", json={"provider": "hubspot", "store": "loja_big", "entity": "contacts"}, headers=AUTH).json()
            bad = client.post("/api/jobs", json={"provider": "hubspot", "integration": "loja_bad"}, headers=AUTH).json()

            seen = _poll(client, first.json()["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
            done = seen[-1]
            assert done["state"] == "succeeded", done
            assert done["percent"] == 100.0 and done["processed"] == 390 and done["created"] == 390
            assert done["run_id"] and done["error"] is None
            percents = [j["percent"] for j in seen if j["percent"] is not None]
            assert percents == sorted(percents)

            running = _poll(client, cancel_me["id"], lambda j: j["processed"] > 0 or j["state"] != "queued" and j["state"] != "running")[-1]
            assert running["state"] == "running", running
            assert 0 < running["percent"] < 100 and running["total"] == 4000
            assert client.post(f"/api/jobs/{cancel_me['id']}/cancel", headers=AUTH).status_code == 202
            cancelled = _poll(client, cancel_me["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))[-1]
            assert cancelled["state"] == "cancelled", cancelled
            assert instance.get_run_by_id(cancelled["run_id"]).status == dg.DagsterRunStatus.CANCELED
            big_integration = store.integrations.get("hubspot", "loja_big")
            with store.engine.connect() as conn:
                rows = conn.execute(select(func.count()).select_from(contacts).where(contacts.c.store_id == big_integration.store_id)).scalar_one()
                links = conn.execute(select(func.count()).select_from(external_links).where(
                    external_links.c.integration_id == big_integration.id, external_links.c.entity == "contacts")).scalar_one()
            assert 0 < rows < 4000 and rows == links  # whole batches only: every row written has its link
            assert store.sync_state(big_integration, "contacts").synced_through is None  # not marked synced

            # A code server too busy to take the termination: the run is only marked CANCELING, as
            # Dagster marks it before asking that server, and its step stops by itself.
            unheard = client.post("/api/jobs", json={"provider": "hubspot", "store": "loja_big", "entity": "contacts"}, headers=AUTH).json()
            running = _poll(client, unheard["id"], lambda j: j["processed"] > 0 or j["state"] not in ("queued", "running"))[-1]
            assert running["state"] == "running", running
            instance.report_run_canceling(instance.get_run_by_id(running["run_id"]))
            stopped = _poll(client, unheard["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))[-1]
            assert stopped["state"] == "cancelled", stopped
            assert instance.get_run_by_id(stopped["run_id"]).status == dg.DagsterRunStatus.CANCELED

            failed = _poll(client, bad["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))[-1]
            assert failed["state"] == "failed"
            assert "401" in failed["error"] and "not-the-token" not in failed["error"]

            listed = client.get("/api/jobs?provider=hubspot", headers=AUTH).json()["jobs"]
            assert {j["id"] for j in listed} == {first.json()["id"], cancel_me["id"], bad["id"], unheard["id"]}
    finally:
        instance.dispose()
        store.dispose()
        small.stop()
        big.stop()
