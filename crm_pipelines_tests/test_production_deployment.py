"""The production deployment, for real: Dagster on PostgreSQL, its daemon and webserver running.

The instance is configured by ``deploy/production/dagster.yaml`` (PostgreSQL storage, queued
runs, limits per provider), the local database is PostgreSQL too, and HubSpot is the simulator.
The test starts the incremental schedule and, once its first run has synced the default
integration, launches a backfill of that integration's partition through the webserver's GraphQL
API, as the UI does; the daemon launches the runs. Both must succeed and
the local database must then hold exactly the simulator's records.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.deployment import REPO, launch_backfill, running_dagster, start_schedule, wait_until
from crm_pipelines_tests.helpers.processes import stop_group

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.e2e]

TOKEN = "e2e-token"
IMPORT_ASSETS = [["hubspot", "contacts"], ["hubspot", "companies"], ["hubspot", "deals"]]


@pytest.fixture
def sim_sizes():
    return {"contacts": 400, "companies": 60, "deals": 80, "burst_limit": 100}


@pytest.fixture
def deployment(tmp_path, make_postgres_database, start_hubspot_sim, monkeypatch, sim_sizes):
    dagster_url = make_url(make_postgres_database()).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    crm_url = make_postgres_database()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    sim = start_hubspot_sim(seed=21, tokens=(TOKEN,), **sim_sizes)
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        DAGSTER_PG_URL=dagster_url,
        CRM_DATABASE_URL=crm_url,
        HUBSPOT_BASE_URL=sim.base_url,
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        CRM_INCREMENTAL_CRON="* * * * *",
        CRM_SYNC_START=(datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d"),
    )
    for name in ("DAGSTER_HOME", "DAGSTER_PG_URL", "CRM_DATABASE_URL", "CRM_SYNC_START"):
        monkeypatch.setenv(name, env[name])
    logs = tmp_path / "logs"
    logs.mkdir()
    init = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "init"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr[-3000:]
    with _running_dagster(env, logs) as (url, processes):
        yield {"url": url, "sim": sim, "crm_url": crm_url, "home": home, "processes": processes, "logs": logs}


@contextmanager
def _running_dagster(env: dict[str, str], logs: Path):
    """The webserver and the daemon; every process of both groups (code servers included) is gone when this exits."""
    survivors: list[str] = []
    with running_dagster(env, logs, stop=lambda proc: survivors.extend(stop_group(proc))) as running:
        yield running
    assert not survivors, f"processes left after SIGTERM: {survivors}"


def test_webserver_and_daemon_started_together_after_init_both_come_up(make_postgres_database, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", home / "dagster.yaml")
    dagster_url = make_url(make_postgres_database()).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    env = dict(os.environ, DAGSTER_HOME=str(home), DAGSTER_PG_URL=dagster_url, CRM_DATABASE_URL=make_postgres_database())
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_url)
    init = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "init"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr[-3000:]
    assert "schema" in init.stdout and "Dagster instance" in init.stdout
    logs = tmp_path / "logs"
    logs.mkdir()
    with _running_dagster(env, logs) as (_, processes):
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            wait_until(lambda: instance.get_daemon_heartbeats(), 120, "the daemon's first heartbeat", processes)
        finally:
            instance.dispose()
        assert all(proc.poll() is None for proc in processes)
    for name in ("webserver.log", "daemon.log"):
        assert "DuplicateObject" not in (logs / name).read_text()


def test_schedule_tick_and_backfill_run_under_the_daemon_on_postgres(deployment):
    url, sim = deployment["url"], deployment["sim"]
    start_schedule(url, "hubspot_incremental")

    instance = dg.DagsterInstance.from_config(str(deployment["home"]))
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

    def runs_where(predicate):
        def found():
            return [r for r in instance.get_runs() if predicate(r) and r.status in finished] or None
        return found

    def wait_for(predicate, what):
        try:
            return wait_until(runs_where(predicate), 420, what, deployment["processes"])
        except AssertionError:
            print((deployment["logs"] / "daemon.log").read_text()[-5000:])
            raise

    # The schedule's first tick syncs the default integration (from the environment) from scratch
    # and registers its partition.
    scheduled = wait_for(lambda r: r.tags.get("dagster/schedule_name") == "hubspot_incremental", "a scheduled run to finish")
    for run in scheduled:
        if run.status != dg.DagsterRunStatus.SUCCESS:
            errors = [e.message for e in instance.all_logs(run.run_id) if e.is_error or "ERROR" in str(e.level)]
            raise AssertionError(f"scheduled run ended {run.status}: {errors[-3:]}")
    assert "default" in instance.get_dynamic_partitions("hubspot_integrations")

    # A backfill of that integration's partition, launched as the UI does, re-syncs it in one run.
    launch_backfill(url, ["default"], IMPORT_ASSETS)
    backfilled = wait_for(lambda r: bool(r.tags.get("dagster/backfill")), "the backfill run to finish")
    for run in scheduled + backfilled:
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run.run_id} ({run.tags}) ended {run.status}"
    # One run for the three assets of the partition (single-run backfill policy).
    assert len(backfilled) == 1

    _reconciles(deployment["crm_url"], sim)
    instance.dispose()


def _reconciles(crm_url: str, sim) -> None:
    store = LocalStore.open(crm_url)
    try:
        for entity in ("contacts", "companies", "deals"):
            assert set(store.linked_records("hubspot", entity)) == set(sim.records(entity)), entity
            assert store.count(entity) == len(sim.records(entity)), f"{entity}: duplicates or leftovers"
    finally:
        store.dispose()


@pytest.mark.parametrize("sim_sizes", [{"contacts": 3000, "companies": 60, "deals": 80, "burst_limit": 12}])
def test_a_killed_run_worker_is_retried_and_the_next_scheduled_run_goes_through(deployment, sim_sizes):
    """kill -9 of a run's worker mid-step: the run fails, its retry and the next tick run, nothing is lost or doubled."""
    url, sim, crm_url = deployment["url"], deployment["sim"], deployment["crm_url"]
    # The default integration, synced on every tick (the tick is every minute here).
    store = LocalStore.open(crm_url)
    try:
        store.integrations.update(store.integrations.default_for("hubspot"), settings={"cadence_minutes": 1})
    finally:
        store.dispose()
    instance = dg.DagsterInstance.from_config(str(deployment["home"]))
    start_schedule(url, "hubspot_incremental")

    def scheduled_runs():
        return [r for r in instance.get_runs() if r.tags.get("dagster/schedule_name") == "hubspot_incremental"]

    def working_run():
        # A scheduled run whose step has started and is reading (12 calls per 10 s: it reads for a while).
        for run in scheduled_runs():
            if run.status == dg.DagsterRunStatus.STARTED and sim.stats["total_requests"] >= 4:
                pids = {e.dagster_event.pid for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
                if pids:
                    return run, pids.pop()
        return None

    victim, pid = wait_until(working_run, 300, "a scheduled run reading from the provider", deployment["processes"])
    os.kill(pid, signal.SIGKILL)

    def status(run_id):
        return instance.get_run_by_id(run_id).status

    wait_until(lambda: status(victim.run_id) == dg.DagsterRunStatus.FAILURE, 120, "the killed run to be marked failed", deployment["processes"])
    retry = wait_until(lambda: next((r for r in instance.get_runs() if r.tags.get("dagster/parent_run_id") == victim.run_id
                                and r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)), None),
                  420, "the retry of the killed run to finish", deployment["processes"])
    assert retry.status == dg.DagsterRunStatus.SUCCESS, f"retry {retry.run_id} ended {retry.status}"
    # Nothing of the killed run recorded anything after it was marked failed (its step died with it).
    events = [e.dagster_event.event_type_value for e in instance.all_logs(victim.run_id) if e.dagster_event]
    assert "ASSET_MATERIALIZATION" not in events[events.index("PIPELINE_FAILURE"):], events[-10:]
    _reconciles(crm_url, sim)

    # The provider changes; the next scheduled run (after the retry) goes through and brings the change.
    changed = sim.modify("contacts", n=5)
    retry_end = instance.get_run_record_by_id(retry.run_id).end_time
    later = wait_until(lambda: next((r for r in scheduled_runs() if r.run_id not in (victim.run_id, retry.run_id)
                                and instance.get_run_record_by_id(r.run_id).create_timestamp.timestamp() > retry_end
                                and r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)), None),
                  300, "the next scheduled run to finish", deployment["processes"])
    assert later.status == dg.DagsterRunStatus.SUCCESS, f"scheduled run {later.run_id} ended {later.status}"
    _reconciles(crm_url, sim)
    store = LocalStore.open(crm_url)
    try:
        local = store.linked_records("hubspot", "contacts")
        for external_id in changed:
            assert local[external_id]["email"] == (sim.records("contacts")[external_id]["properties"].get("email") or None)
    finally:
        store.dispose()
    instance.dispose()

