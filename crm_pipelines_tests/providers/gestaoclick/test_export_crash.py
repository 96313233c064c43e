"""GestaoClick creates are idempotent across crashes: intents recovered by the key in observacoes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.providers.gestaoclick.conftest import ACCESS, SECRET
from crm_pipelines_tests.providers.gestaoclick.helpers import (
    add_contacts,
    assert_exactly_once,
    export,
)


def test_crash_between_write_and_save_does_not_duplicate(make_empty_sim, store, monkeypatch):
    """Contacts without e-mail or CPF cannot be matched: only the key in observacoes finds them again."""
    sim = make_empty_sim(contacts=150)
    add_contacts(store, 230, email=False)
    original = LocalStore.save_exported
    calls = {"n": 0}

    def crash_on_second_batch(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("process killed")
        return original(self, *args, **kw)

    monkeypatch.setattr(LocalStore, "save_exported", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        export(sim, store)
    sent = sim.count("contacts") - 150  # the second batch reached GestaoClick unsaved (the third may have too)
    assert sent >= 200 and len(store.pending_intents("gestaoclick", "contacts")) == sent - 100
    monkeypatch.setattr(LocalStore, "save_exported", original)

    result = export(sim, store)
    assert result.recovered == sent - 100 and result.created == 230 - sent
    remote, links = assert_exactly_once(sim, store)
    assert sim.count("contacts") == 150 + 230 and len(links) == 230
    assert store.pending_intents("gestaoclick", "contacts") == {}


@pytest.mark.slow
def test_killed_exports_never_duplicate_or_lose_records(make_empty_sim, sqlite_url):
    """SIGKILL the export process at random points; the runs that follow create nothing twice."""
    sim = make_empty_sim()
    store = LocalStore.open(sqlite_url)
    add_contacts(store, 600, email=False)
    rng = random.Random(7)
    # The creates in flight at a kill are waited for 1 s (then looked up once more and sent if absent).
    env = dict(os.environ, CRM_LATE_CREATE_PATIENCE_S="1")
    helper = [sys.executable, "-m", "crm_pipelines_tests.providers.gestaoclick.export_once", sim.base_url, ACCESS, SECRET, sqlite_url]
    cwd = Path(__file__).resolve().parents[3]
    writes = lambda: sim.stats["by_route"].get("POST /clientes", 0)  # noqa: E731
    kills = 0
    for _ in range(20):
        target = writes() + rng.randint(20, 120)
        proc = subprocess.Popen(helper, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if writes() >= target:
                time.sleep(rng.uniform(0, 0.005))
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills += 1
    else:
        pytest.fail("the export never completed")
    assert kills >= 3, f"only {kills} kill points were exercised"
    time.sleep(1.0)
    final = subprocess.run(helper, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert final.returncode == 0, final.stderr[-2000:]
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 600
    assert store.pending_intents("gestaoclick", "contacts") == {}
    store.dispose()
