"""Four processes calling one HubSpot account share one budget kept in the local database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert

from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore

TOKEN = "shared-budget-token"


@pytest.mark.slow
def test_four_concurrent_syncs_stay_within_the_account_limit(start_hubspot_sim, db_url):
    # 10 requests per second allowed (100 per 10 s), as HubSpot's own headers announce.
    sim = start_hubspot_sim(seed=11, contacts=2500, companies=2500, deals=2500, tokens=(TOKEN,), burst_limit=100, burst_window_s=10.0)
    store = LocalStore.open(db_url)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"novo{i}@exemplo.com.br", "first_name": "Conceição", "created_at": now, "updated_at": now} for i in range(1500)])
    env = dict(os.environ, HUBSPOT_BASE_URL=sim.base_url, HUBSPOT_ACCESS_TOKEN=TOKEN, CRM_DATABASE_URL=db_url)
    commands = [
        ["sync", "hubspot", "companies", "--full", "--priority", "low"],
        ["sync", "hubspot", "deals", "--full"],
        ["sync", "hubspot", "contacts", "--full", "--priority", "high"],
        ["export", "hubspot", "contacts", "--only-new"],
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "crm_pipelines.cli", *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for command, proc, output in zip(commands, procs, outputs):
        assert proc.returncode == 0, f"{command} failed:\n{output[-2000:]}"

    # Every process finished and every record arrived: a 429 (a stalled process can land its calls
    # late, in one window) was waited out. How many 429s the shared budget avoids is measured by
    # benchmarks/shared_budget.py, not asserted here.
    stats = sim.stats
    assert stats["total_requests"] > 100  # more than one window's worth: the processes had to share
    for entity in ("companies", "deals"):
        assert set(store.linked_records("hubspot", entity)) == set(sim.records(entity))
    # Contacts: the 2,500 imported and the 1,500 exported are all linked, each once at HubSpot.
    remote = sim.records("contacts")
    linked = store.linked_records("hubspot", "contacts")
    assert len(remote) == 4000
    assert set(linked) <= set(remote) and len(linked) >= 1500
    store.dispose()
