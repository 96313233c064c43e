"""A create the provider applies late, and an exporter killed (SIGKILL) while it waits to know.

The simulator holds one create back (its connection closed unanswered: a client timeout) and
applies it only when the test says so. The exporter is killed right then; the next exports run
*before* the create lands: the records of the killed batch (sent or not, nobody can tell) wait
for their answer and are never sent again within the patience, the other records go through.
Once the create has landed and the patience is over, the next export finds it by its idempotency
key and sends only what never left. At the end every local record is at the provider exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.faults.crash import ROOT
from crm_pipelines_tests.faults.harness import add_local, reconcile_export, remote_keys as keys_at, start

pytestmark = pytest.mark.slow

#: The route of one create request at each provider that creates one record per request.
CREATE_ROUTE = {"pipedrive": "POST /api/v2/{entity}", "bling": "create contato", "gestaoclick": "POST /clientes"}
#: A dead exporter loses its lease in 1 s (a create without an answer waits for the patience given).
PATIENT = {"CRM_EXPORT_LEASE_TTL_S": "1"}


def _export(provider: str, db_url: str, sim, patience_s: int = 600) -> subprocess.Popen:
    env = dict(os.environ, **plugin(provider).simulator_env(sim), **PATIENT, CRM_LATE_CREATE_PATIENCE_S=str(patience_s), CRM_DATABASE_URL=db_url,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "crm_pipelines_tests.faults.crash_once", provider, "export", db_url, "contacts"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(provider: str, db_url: str, sim, patience_s: int = 600) -> str:
    out, err = _export(provider, db_url, sim, patience_s).communicate(timeout=600)
    assert not err.decode().count("Traceback"), err.decode()[-2000:]
    return out.decode()


@pytest.mark.parametrize("provider", ["pipedrive", "bling", "gestaoclick"])
def test_a_create_applied_after_the_exporter_was_killed_is_never_sent_twice(provider, sqlite_url):
    sim = start(provider, (0, 0, 0))
    store = LocalStore.open(sqlite_url)
    try:
        add_local(store, "contacts", 30, tag=f"late{provider[:3]}")
        sim.fail_next(1, kind="late", delay_s=3600, route=CREATE_ROUTE[provider])
        exporter = _export(provider, sqlite_url, sim)
        deadline = time.monotonic() + 300
        while not sim.late_writes_pending() and exporter.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.late_writes_pending() == 1, "the create was never held back: " + (exporter.stderr.read().decode()[-1500:] if exporter.poll() is not None else "")
        exporter.send_signal(signal.SIGKILL)
        exporter.communicate(timeout=60)
        time.sleep(1.5)  # the dead exporter's lease expires

        # The next exports run before the held-back create lands: nothing of the killed batch is
        # sent again (the held-back create among it), everything else goes through.
        for _ in range(2):
            _run(provider, sqlite_url, sim)
            waiting = store.pending_intents(provider, "contacts")
            assert waiting and not set(waiting) & set(keys_at(sim, "contacts"))
            assert len(sim.records("contacts")) + len(waiting) == 30

        assert sim.land_late_writes() == 1
        time.sleep(1.5)
        _run(provider, sqlite_url, sim, patience_s=1)  # the landed create found by its key, the never-sent ones sent once
        checked, lost, duplicated, detail = reconcile_export(sim, store, provider, "contacts", 0)
        assert (checked, lost, duplicated) == (30, 0, 0), detail
        assert not store.pending_intents(provider, "contacts")
    finally:
        store.dispose()
        sim.stop()
