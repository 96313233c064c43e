"""A first sync that fails part way keeps what it read; the retry goes on from its checkpoint.

Each provider's simulator holds a few pages of contacts. A clean first sync (its own database)
counts the requests a full read takes; then a first sync into a new database meets an outage half
way (every request refused for longer than the client retries) and fails. The retry, with the
provider healthy again, must take fewer requests than the clean read, and the database must hold
every provider record exactly once. Bling's first sync under a heavy fault mix, where a read meets
8 faults in a row every few hundred requests (more than one full read takes), must complete within
a bounded number of runs.
"""

from __future__ import annotations

import pytest

from crm_pipelines.core import ratelimit
from crm_pipelines.providers.bling.api import BlingClient
from crm_pipelines.providers.gestaoclick.api import GestaoClickClient
from crm_pipelines.providers.salesforce.api import SalesforceClient
from crm_pipelines.cli.demo import start_simulator
from crm_pipelines.simulator.server import FaultConfig
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.checkpoint import ReadCheckpoint
from crm_pipelines.sync.runner import import_now
from crm_pipelines_tests.faults.harness import FaultRun, provider_env, reconcile_import, simulated_client_time

#: Contacts per simulator: four or five pages at the page sizes set below.
CONTACTS = {"salesforce": 900}
DEFAULT_CONTACTS = 350
#: Requests a second for clients and simulators whose real limits (3 a second) would make the test slow.
FAST = 100_000
#: What each provider's client is built with here: smaller pages, no real-time pacing.
CLIENT_OPTIONS = {
    "bling": (BlingClient, {"per_second": FAST}),
    "gestaoclick": (GestaoClickClient, {"per_second": FAST}),
    "salesforce": (SalesforceClient, {"query_batch_size": 200}),  # the smallest batch Salesforce answers
}
#: Records per page where the reader chooses it.
SMALL_PAGES = {
    "pipedrive": ("crm_pipelines.providers.pipedrive.reader.LIST_PAGE_MAX", 100),
    "shopify": ("crm_pipelines.providers.shopify.reader.PAGE_MAX", 100),
}
#: Seconds an outage refuses every request: longer than any read retries.
LONG_OUTAGE_S = 10_000_000


@pytest.fixture
def quick(monkeypatch):
    """Start ``provider``'s simulator with ``contacts`` contacts, small pages and no real-time pacing."""
    started = []
    monkeypatch.setattr(ratelimit, "_SHARED", {})  # limiters of earlier tests keep their real rates

    def apply(provider: str, contacts: int, seed: int = 3):
        if provider in SMALL_PAGES:
            monkeypatch.setattr(*SMALL_PAGES[provider])
        if provider in CLIENT_OPTIONS:
            client_class, options = CLIENT_OPTIONS[provider]
            original = client_class.__init__
            monkeypatch.setattr(client_class, "__init__", lambda self, *a, **kw: original(self, *a, **{**kw, **options}))
        sim = start_simulator(provider, sizes=(contacts, 0, 0), seed=seed, extra=["--per-second", str(FAST)] if provider in ("bling", "gestaoclick") else None)
        started.append(sim)
        return sim

    yield apply
    for sim in started:
        sim.stop()


def _requests_of(run: FaultRun, action) -> int:
    before = run.api_requests
    action()
    return run.api_requests - before


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "bling", "pipedrive", "gestaoclick", "shopify"])
def test_a_failed_first_sync_goes_on_from_its_checkpoint(provider, tmp_path, quick):
    contacts = CONTACTS.get(provider, DEFAULT_CONTACTS)
    sim = quick(provider, contacts)
    clean, store = LocalStore.open(f"sqlite:///{tmp_path / 'clean.db'}"), LocalStore.open(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        run = FaultRun(sim)
        with provider_env(provider, sim), simulated_client_time([sim]):
            from_scratch = _requests_of(run, lambda: import_now(provider, "contacts", clean, shared=False))
            run.outage(after_requests=run.api_requests + from_scratch * 3 // 5, seconds=LONG_OUTAGE_S)
            with pytest.raises(Exception) as failure:
                import_now(provider, "contacts", store, shared=False)
            checkpoint = ReadCheckpoint(store, provider, "contacts").load()
            kept = len(store.linked_records(provider, "contacts"))
            run.calm()
            results = []
            resumed = _requests_of(run, lambda: results.append(import_now(provider, "contacts", store, shared=False)))
        assert provider in str(failure.value).lower(), failure.value
        assert checkpoint is not None and 0 < checkpoint.records < contacts, checkpoint
        assert kept >= checkpoint.records and results[0].metadata()["resumed_after_records"] == checkpoint.records
        assert resumed < from_scratch, f"the retry took {resumed} requests, a read from scratch {from_scratch}"
        print(f"{provider}: first sync failed after {checkpoint.records} of {contacts} records; the retry took {resumed} requests, a read from scratch {from_scratch}")
        checked, lost, duplicated, detail = reconcile_import(sim, store, provider, "contacts")
        assert (checked, lost, duplicated) == (contacts, 0, 0), detail
        state = store.sync_state(provider, "contacts")
        assert state.last_status == "success" and "read_checkpoint" not in state.last_metrics
    finally:
        clean.dispose()
        store.dispose()


def test_bling_first_sync_completes_under_a_heavy_fault_mix(tmp_path, quick):
    """5xx, resets and truncated bodies at 28% of requests, and 8 faults in a row (as many as the client tries one read) every 250
    requests: fewer than one full read takes (about 600 here), so only a sync that keeps its
    progress across runs completes."""
    sim = quick("bling", DEFAULT_CONTACTS, seed=5)
    store = LocalStore.open(f"sqlite:///{tmp_path / 'crm.db'}")
    burst_every, max_runs = 250, 12
    try:
        run = FaultRun(sim)
        sim.faults = FaultConfig(seed=11, rate_5xx=0.2, rate_reset=0.03, rate_truncated=0.05)
        for n in range(burst_every, 100_000, burst_every):
            run.at_request(n, lambda: sim.fail_next(8, 503))
        runs, failures = 0, []
        with provider_env("bling", sim), simulated_client_time([sim]):
            while runs < max_runs:
                runs += 1
                try:
                    import_now("bling", "contacts", store, shared=False)
                    break
                except Exception as exc:  # noqa: BLE001 - a failed run is retried, as the schedule would
                    failures.append(str(exc)[:120])
        assert failures, "no read met 8 faults in a row: the scenario did not happen"
        assert store.sync_state("bling", "contacts").last_status == "success", f"not complete after {runs} runs: {failures}"
        checked, lost, duplicated, detail = reconcile_import(sim, store, "bling", "contacts")
        assert (checked, lost, duplicated) == (DEFAULT_CONTACTS, 0, 0), detail
        print(f"bling under the heavy fault mix: complete after {runs} runs ({len(failures)} failed), {run.api_requests} requests")
    finally:
        store.dispose()
