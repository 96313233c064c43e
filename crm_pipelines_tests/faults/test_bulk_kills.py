"""SIGKILL on the bulk paths: a sync killed while its bulk job runs, or while it applies the job's
results, runs again without starting a second job, and ends with exact reconciliation."""

from __future__ import annotations

import signal
import time

import pytest

from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.bulk import BulkJobMemory
from crm_pipelines_tests.faults.crash import _child
from crm_pipelines_tests.faults.harness import add_local, reconcile_export, reconcile_import
from crm_pipelines_tests.providers.salesforce.conftest import start_salesforce_sim  # noqa: F401 - fixture
from crm_pipelines_tests.providers.shopify.conftest import FAST, start_shopify_sim  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def spawn(provider: str, op: str, db_url: str, sim):
    return _child(provider, op, db_url, "contacts", [], plugin(provider).simulator_env(sim))


def kill_when(proc, condition, timeout_s: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``condition()`` holds (it must still be running then)."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline and not condition():
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before its kill point: " + proc.communicate()[1].decode()[-1500:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def run_to_end(provider: str, op: str, db_url: str, sim) -> None:
    proc = spawn(provider, op, db_url, sim)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]


def bulk_store(db_url: str, provider: str, threshold: int = 100) -> LocalStore:
    store = LocalStore.open(db_url)
    store.integrations.update(store.scope(provider), settings={"bulk_threshold": threshold})
    return store


def remembered(store: LocalStore, provider: str, direction: str):
    return lambda: BulkJobMemory(store, provider, "contacts", direction).get() is not None


@pytest.mark.parametrize("kill_point", ["job running", "applying results"])
def test_salesforce_bulk_import_killed_then_rerun_reconciles_with_one_job(start_salesforce_sim, db_url, kill_point):
    running = kill_point == "job running"
    sim = start_salesforce_sim(seed=9, contacts=3_000 if running else 20_000, companies=0, deals=0, bulk_processing_s=3 if running else 0)
    store = bulk_store(db_url, "salesforce")
    proc = spawn("salesforce", "import", db_url, sim)
    kill_when(proc, remembered(store, "salesforce", "import") if running else lambda: store.count("contacts") > 0)
    assert store.count("contacts") < len(sim.records("contacts"))
    run_to_end("salesforce", "import", db_url, sim)
    assert sim.account().bulk_query_jobs == 1  # found again by its id, not started twice
    checked, lost, duplicated, detail = reconcile_import(sim, store, "salesforce", "contacts")
    assert (lost, duplicated) == (0, 0) and checked == len(sim.records("contacts")), detail
    assert BulkJobMemory(store, "salesforce", "contacts", "import").get() is None
    store.dispose()


@pytest.mark.parametrize("kill_point", ["job created", "job processing"])
def test_salesforce_bulk_export_killed_then_rerun_lands_each_record_once(start_salesforce_sim, db_url, kill_point):
    sim = start_salesforce_sim(seed=9, contacts=0, companies=0, deals=0, bulk_processing_s=2)
    store = bulk_store(db_url, "salesforce")
    add_local(store, "contacts", 1_500, tag="bulkkill")
    proc = spawn("salesforce", "export", db_url, sim)
    jobs = lambda: list(sim.account().jobs.values())  # noqa: E731
    if kill_point == "job created":
        kill_when(proc, remembered(store, "salesforce", "export"))
    else:
        kill_when(proc, lambda: any(job["state"] == "UploadComplete" for job, _ in jobs()))
    run_to_end("salesforce", "export", db_url, sim)
    checked, lost, duplicated, detail = reconcile_export(sim, store, "salesforce", "contacts", before=0)
    assert (lost, duplicated) == (0, 0) and checked == 1_500, detail
    assert len(sim.records("contacts")) == 1_500
    # One create job ran: an uploaded one was waited for and its creates linked by key, never sent again;
    # one killed before its upload was aborted without a row processed.
    creates = [(job["state"], internal["processed"]) for job, internal in jobs() if job["operation"] == "upsert"]
    assert [processed for _, processed in creates if processed] == [1_500]
    assert all(state == "Aborted" for state, processed in creates if not processed), creates
    if kill_point == "job processing":
        assert len(creates) == 1, creates
    assert BulkJobMemory(store, "salesforce", "contacts", "export").get() is None
    run_to_end("salesforce", "export", db_url, sim)  # nothing left to send
    assert len(sim.records("contacts")) == 1_500
    store.dispose()


@pytest.mark.parametrize("kill_point", ["operation running", "applying results"])
def test_shopify_bulk_import_killed_then_rerun_reconciles_with_one_operation(start_shopify_sim, db_url, kill_point):
    running = kill_point == "operation running"
    customers = 2_000 if running else 20_000
    sim = start_shopify_sim(seed=9, customers=customers, orders=0, companies=0, bulk_processing_s=3 if running else 0, **FAST)
    store = bulk_store(db_url, "shopify")
    proc = spawn("shopify", "import", db_url, sim)
    kill_when(proc, remembered(store, "shopify", "import") if running else lambda: store.count("contacts") > 0)
    assert store.count("contacts") < customers
    run_to_end("shopify", "import", db_url, sim)
    assert len(sim.account().bulk_ops) == 1  # found again by its id (running, or completed with its file), not started twice
    checked, lost, duplicated, detail = reconcile_import(sim, store, "shopify", "contacts")
    assert (lost, duplicated) == (0, 0) and checked == customers, detail
    assert BulkJobMemory(store, "shopify", "contacts", "import").get() is None
    store.dispose()


def test_shopify_bulk_export_killed_while_the_mutation_runs_then_rerun_lands_each_record_once(start_shopify_sim, db_url):
    sim = start_shopify_sim(seed=9, customers=0, orders=0, companies=0, bulk_processing_s=3, **FAST)
    store = bulk_store(db_url, "shopify")
    add_local(store, "contacts", 600, tag="bulkkill")
    proc = spawn("shopify", "export", db_url, sim)
    kill_when(proc, remembered(store, "shopify", "export"))
    run_to_end("shopify", "export", db_url, sim)
    checked, lost, duplicated, detail = reconcile_export(sim, store, "shopify", "contacts", before=0)
    assert (lost, duplicated) == (0, 0) and checked == 600, detail
    assert len(sim.records("contacts")) == 600
    # The rerun waited for the running mutation and linked its creates by key: it created nothing
    # again (the records it linked that way are sent once more, as updates).
    first, *later = sim.account().bulk_ops.values()
    assert "customerCreate" in first.query and all("customerUpdate" in op.query for op in later)
    store.dispose()
