"""Export to Salesforce at scale: 10,000 records exactly once, and processes killed mid-export."""

from __future__ import annotations

import pytest

from .test_export import EXT, P, add_local_contacts, assert_exactly_once, export


@pytest.fixture
def make_sim(start_salesforce_sim):
    return lambda **kw: start_salesforce_sim(**({"seed": 5, "contacts": 0, "companies": 0, "deals": 0} | kw))


@pytest.mark.slow
def test_export_of_10000_contacts_lands_each_exactly_once(make_sim, store, sf_client):
    sim = make_sim()
    add_local_contacts(store, 10_000)
    client = sf_client(sim)
    result = export(client, store)
    assert result.created == 10_000 and result.rejected == 0
    assert result.api["by_kind"]["write"] == 50  # ceil(10,000 / 200)
    assert result.api["by_kind"]["match"] == 50  # one e-mail look-up per batch
    remote, links = assert_exactly_once(sim, store)
    assert sim.count("contacts") == len(remote) == len(links) == 10_000
    by_email = {o["Email"]: o for o in remote.values()}
    assert by_email["pessoa1@exemplo.com.br"]["FirstName"] == "João" and by_email["pessoa2@exemplo.com.br"]["FirstName"] == "Conceição"
    assert by_email["pessoa7@exemplo.com.br"][EXT] == f"contacts:{links[by_email['pessoa7@exemplo.com.br']['Id']]['id']}"
    again = export(sf_client(sim), store)
    assert again.selected == 0 and again.api.get("calls", 0) == 0


@pytest.mark.slow
def test_killed_export_processes_never_duplicate_or_lose_records(make_sim, sqlite_url):
    """SIGKILL the export process at several points (mid-request included); later runs create nothing twice."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from crm_pipelines.storage.store import LocalStore

    sim = make_sim()
    store = LocalStore.open(sqlite_url)
    add_local_contacts(store, 1500)
    rng = random.Random(7)
    helper = [sys.executable, "-m", "crm_pipelines_tests.providers.salesforce.export_once", sim.base_url, sqlite_url]
    cwd = Path(__file__).resolve().parents[3]
    route = "PATCH /composite/sobjects/{SObject}/{ExtId}"
    # A killed process's lease expires after 1 s; its creates in flight are waited for 1 s at most.
    env = dict(os.environ, CRM_EXPORT_LEASE_TTL_S="1", CRM_LATE_CREATE_PATIENCE_S="1")
    kills = 0
    for _ in range(30):
        before = sim.stats["by_route"].get(route, 0)
        proc = subprocess.Popen(helper, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if sim.stats["by_route"].get(route, 0) >= before + 1:
                time.sleep(rng.uniform(0, 0.02))  # anywhere: mid-request, before or after the save
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills += 1
    else:
        pytest.fail("the export never completed")
    assert kills >= 8, f"only {kills} kill points were exercised"
    time.sleep(1.0)  # what a kill left in flight may now be given up on and looked up once more
    final = subprocess.run(helper, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert final.returncode == 0, final.stderr[-2000:]
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 1500
    assert store.pending_intents(P, "contacts") == {}
    store.dispose()
