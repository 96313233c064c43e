"""Crash matrix: SIGKILL a sync process at random points, run it again, reconcile exactly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.faults.harness import Outcome, add_local, reconcile_export, reconcile_import, start

ROOT = Path(__file__).resolve().parents[2]
#: Simulator sizes (contacts, companies, deals) for import and sync-by-id crashes; Bling reads one contato per request at 3/s.
CRASH_SIZES = {"bling": (12, 2, 2), "gestaoclick": (60, 5, 5)}
DEFAULT_SIZES = (120, 10, 10)
EXPORT_RECORDS = {"bling": 15, "gestaoclick": 30, "pipedrive": 30}
#: A killed export's lease expires after 1 s; the creates it had in flight are waited for 1 s.
CRASH_TIMINGS = {"CRM_EXPORT_LEASE_TTL_S": "1", "CRM_LATE_CREATE_PATIENCE_S": "1"}


def _child(provider: str, op: str, db_url: str, entity: str, ids: list[str], env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "crm_pipelines_tests.faults.crash_once", provider, op, db_url, entity, *ids]
    full_env = dict(os.environ, **env, CRM_DATABASE_URL=db_url, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    **CRASH_TIMINGS)
    return subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _requests(sim) -> int:
    return sim.stats["total_requests"]


def run_crash_matrix(provider: str, op: str, db_url: str, *, kills: int, seed: int = 11, entity: str = "contacts") -> Outcome:
    """Kill ``op`` ``kills`` times at random points (a request count plus a random delay), then let it finish."""
    rng = random.Random(f"{seed}-{provider}-{op}")
    outcome = Outcome("SIGKILL", provider, {"ids": "sync by id"}.get(op, op))
    sizes = (0, 0, 0) if op == "export" else CRASH_SIZES.get(provider, DEFAULT_SIZES)
    sim = start(provider, sizes)
    store = LocalStore.open(db_url)
    try:
        env = plugin(provider).simulator_env(sim)
        ids: list[str] = []
        if op == "export":
            add_local(store, entity, EXPORT_RECORDS.get(provider, 60), tag=f"crash{provider[:3]}")
        elif op == "ids":
            ids = sorted(sim.records(entity))
        before = len(sim.records(entity)) if op == "export" else 0

        def run_to_end() -> int:
            start_count = _requests(sim)
            proc = _child(provider, op, db_url, entity, ids, env)
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise AssertionError(f"{provider} {op} failed: {err.decode()[-1500:]}")
            return _requests(sim) - start_count

        # A clean run on a copy of the situation tells how many requests a run makes (the kill range).
        span = None
        attempts = 0
        while outcome.failed_runs < kills and attempts < kills * 4:
            attempts += 1
            outcome.runs += 1
            start_count = _requests(sim)
            proc = _child(provider, op, db_url, entity, ids, env)
            # Bling rotates its refresh token at each process's first request: a kill between its answer
            # and the save loses the authorization (the provider's design; re-authorize the app), so
            # Bling's kill points start after it.
            first = 2 if provider == "bling" else 1
            target = start_count + rng.randint(first, max(first, span or 4))
            while proc.poll() is None and _requests(sim) < target:
                time.sleep(0.002)
            if proc.poll() is None:
                time.sleep(rng.uniform(0, 0.05))  # mid-request, mid-apply, before or after a commit
                proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=600)
            if proc.returncode == -signal.SIGKILL:
                outcome.failed_runs += 1
            elif proc.returncode != 0:
                raise AssertionError(f"{provider} {op} failed: {err.decode()[-1500:]}")
            else:
                span = max(span or 0, _requests(sim) - start_count)  # completed: now we know its length
                if op == "export":  # give the next run something to send
                    add_local(store, entity, EXPORT_RECORDS.get(provider, 60) // 3, tag=f"more{attempts}")
        outcome.runs += 1
        time.sleep(float(CRASH_TIMINGS["CRM_LATE_CREATE_PATIENCE_S"]))  # what a kill left in flight may now be given up on
        run_to_end()
        outcome.completed = True
        if op == "export":
            checked, lost, duplicated, detail = reconcile_export(sim, store, provider, entity, before)
            if store.pending_intents(provider, entity):
                detail += f"; {len(store.pending_intents(provider, entity))} intents left"
                lost += len(store.pending_intents(provider, entity))
        else:
            checked, lost, duplicated, detail = reconcile_import(sim, store, provider, entity)
        outcome.checked, outcome.lost, outcome.duplicated, outcome.detail = checked, lost, duplicated, detail
    finally:
        store.dispose()
        sim.stop()
    return outcome
