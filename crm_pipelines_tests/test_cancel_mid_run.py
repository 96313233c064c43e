"""A run whose cancellation never reaches it through the code server still stops.

Dagster marks a cancelled run CANCELING, then asks the run's code server to interrupt it; a server
too busy to answer leaves the step working. Here nobody delivers the interrupt: the run is only
marked CANCELING, as it is then. The step must stop by itself at its next page or batch, end the
run CANCELED, and leave whole pages and batches only, so that the next run completes the work
without a duplicate.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import dagster as dg
import pytest
from sqlalchemy import func, insert, select

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.integrations.model import Integration
from crm_pipelines.jobs.launcher import run_outcome
from crm_pipelines.jobs.store import JobStore
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.simulator.faults import FaultConfig
from crm_pipelines.storage.schema import contacts, export_intents, external_links
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.batch import sync_integrations
from crm_pipelines.sync.importer import ImportResult
from crm_pipelines_tests.faults.harness import TEST_SECRET_KEY
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

TOKEN = "cancel-mid-run-token"
#: Every call answers after this long: the run is still working when it is cancelled.
SLOW = FaultConfig(rate_slow=1.0, slow_seconds=0.25)


@contextlib.contextmanager
def cancelled_once(instance: dg.DagsterInstance, started: Callable[[], bool]) -> Iterator[list[str]]:
    """Mark the started run CANCELING as soon as ``started()`` holds, and deliver no interrupt."""
    marked: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if runs and started():
                instance.report_run_canceling(runs[0])
                marked.append(runs[0].run_id)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield marked
    finally:
        done.set()
        watcher.join()


def count(store: LocalStore, table, *where) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def resources(sim: HubSpotSimulator, url: str) -> dict:
    return {"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=url)}


def assert_cancelled(instance: dg.DagsterInstance, store: LocalStore, result: dg.ExecuteInJobResult, marked: list[str]) -> None:
    assert marked == [result.run_id]
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.CANCELED
    assert run_outcome(instance, JobStore(store.engine).by_run_id(result.run_id)) == ("cancelled", None)


def test_an_import_stops_at_a_page_boundary_and_the_next_run_reads_on(db_url):
    store = LocalStore.open(db_url)
    key = dg.AssetKey(["hubspot", "contacts"])
    config = HubSpotSimConfig(seed=31, contacts=5000, companies=0, deals=0, tokens=(TOKEN,), faults=SLOW)
    with HubSpotSimulator(config) as sim, instance_with_integrations() as instance:
        with cancelled_once(instance, lambda: count(store, contacts) > 0) as marked:
            first = dg.materialize([defs.get_assets_def(key)], resources=resources(sim, db_url), partition_key=DEFAULT, instance=instance,
                                   raise_on_error=False)
        assert_cancelled(instance, store, first, marked)
        integration = store.scope("hubspot")
        rows = count(store, contacts)
        assert 0 < rows < 5000 and rows % 100 == 0  # whole pages only
        assert rows == count(store, external_links, external_links.c.integration_id == integration.id, external_links.c.entity == "contacts")
        assert store.sync_state(integration, "contacts").synced_through is None

        sim.faults = FaultConfig()
        second = dg.materialize([defs.get_assets_def(key)], resources=resources(sim, db_url), partition_key=DEFAULT, instance=instance)
        assert second.success
        assert count(store, contacts) == 5000
        assert store.sync_state(integration, "contacts").synced_through is not None
    store.dispose()


def test_an_export_stops_between_batches_and_the_next_run_sends_the_rest_once(db_url, monkeypatch):
    # The cancelled run keeps its export lease (a slice of it may still finish its batch) until it
    # expires: the next export waits that long, a few seconds here.
    monkeypatch.setattr("crm_pipelines.storage.leases.LEASE_TTL_S", 6.0)
    store = LocalStore.open(db_url)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"cancel{i}@loja.com.br", "first_name": "Iracema", "created_at": now, "updated_at": now}
                                        for i in range(1000)])
    key = dg.AssetKey(["hubspot", "contacts_export"])
    config = HubSpotSimConfig(seed=32, contacts=0, companies=0, deals=0, tokens=(TOKEN,), faults=SLOW)
    with HubSpotSimulator(config) as sim, instance_with_integrations() as instance:
        integration = store.scope("hubspot")
        linked = (external_links.c.integration_id == integration.id, external_links.c.entity == "contacts")
        run_config = {"ops": {"hubspot__contacts_export": {"config": {"batch_size": 10}}}}
        with cancelled_once(instance, lambda: count(store, external_links, *linked) > 0) as marked:
            first = dg.materialize([defs.get_assets_def(key)], resources=resources(sim, db_url), partition_key=DEFAULT, instance=instance,
                                   run_config=run_config, raise_on_error=False)
        assert_cancelled(instance, store, first, marked)
        sent = sim.count("contacts")
        assert 0 < sent < 1000
        assert count(store, external_links, *linked) == sent  # every record the provider holds is linked
        assert count(store, export_intents) == 0  # no create left of unknown outcome

        sim.faults = FaultConfig()
        second = dg.materialize([defs.get_assets_def(key)], resources=resources(sim, db_url), partition_key=DEFAULT, instance=instance)
        assert second.success
        assert sim.count("contacts") == 1000  # the rest, and nothing twice
        assert count(store, external_links, *linked) == 1000
    store.dispose()


def test_a_cancelled_tick_starts_no_further_integration(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET_KEY)
    store = LocalStore.open(sqlite_url)
    keys = [f"loja_{n}" for n in range(6)]
    config = HubSpotSimConfig(seed=33, contacts=150, companies=0, deals=0, tokens=(TOKEN,), faults=SLOW)
    with HubSpotSimulator(config) as sim, instance_with_integrations(*keys) as instance:
        for key in keys:
            store.integrations.add_store(key)
            store.integrations.add("hubspot", store=key, connection={"access_token": TOKEN, "base_url": sim.base_url})
        run_config = {"ops": {"hubspot__sync_due_integrations": {"config": {"max_parallel": 1}}}}
        with cancelled_once(instance, lambda: count(store, contacts) > 0) as marked:
            result = defs.resolve_job_def("hubspot_incremental").execute_in_process(
                instance=instance, resources=resources(sim, sqlite_url), run_config=run_config, raise_on_error=False)
        assert_cancelled(instance, store, result, marked)
    synced = [key for key in keys if store.sync_state(store.integrations.get("hubspot", key), "contacts").synced_through is not None]
    assert 1 <= len(synced) < len(keys)
    store.dispose()


def test_integrations_not_started_stay_unstarted_when_the_caller_stops():
    started: list[str] = []
    stores = [Integration(id=n, store_id=n, store_key=f"loja_{n}", provider="hubspot", key=f"loja_{n}") for n in range(5)]

    def sync_one(integration, entity):
        started.append(integration.key)
        return ImportResult("hubspot", entity, None)

    runs = sync_integrations(stores, ["contacts"], sync_one, max_workers=1)
    first = next(runs)
    runs.close()
    assert first.integration.key == "loja_0"
    assert started[0] == "loja_0" and len(started) <= 2  # the one in flight when the caller stopped, at most


def test_a_run_storage_that_does_not_answer_leaves_the_step_working():
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from crm_pipelines.dagster_defs.job_records import RunCancelled, interrupt_if_cancelled

    warnings: list[str] = []
    answers: list = [OperationalError("SELECT", {}, Exception("server closed the connection")),
                     SimpleNamespace(status=dg.DagsterRunStatus.STARTED), SimpleNamespace(status=dg.DagsterRunStatus.CANCELING)]

    def get_run_by_id(run_id):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    context = SimpleNamespace(instance=SimpleNamespace(get_run_by_id=get_run_by_id), run=SimpleNamespace(run_id="r1"),
                              log=SimpleNamespace(warning=warnings.append, info=lambda message: None))
    interrupt_if_cancelled(context)  # unreadable: goes on
    interrupt_if_cancelled(context)  # started: goes on
    with pytest.raises(RunCancelled):
        interrupt_if_cancelled(context)
    assert warnings == ["could not read the run's status (OperationalError); going on"]
