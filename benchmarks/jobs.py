"""Jobs and webhooks, measured: ``--async`` return time, progress-write overhead, and the
change-to-row latency of webhooks through the applier.

1. ``crm-pipelines sync hubspot --async`` against a running ``crm-pipelines serve`` (the command's
   whole wall time, Python start included), and the API's ``POST /api/jobs`` alone;
2. a full HubSpot import with its job's progress written every 2 s: the time spent writing
   progress over the import's time;
3. ``--changes`` contacts created in the HubSpot simulator, which delivers signed webhooks to
   ``crm-pipelines serve``; each change's delay until its row is in the local database
   (median, p99). ``--sensor`` also runs ``benchmarks/webhook_latency.py`` (the sensor path under
   ``dagster dev``) for the comparison.

Usage: ``python benchmarks/jobs.py [--changes 200] [--every 0.05] [--contacts 20000] [--sensor]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.webhook_latency import free_port, wait_http  # noqa: E402
from crm_pipelines.jobs.progress import JobProgress  # noqa: E402
from crm_pipelines.jobs.store import JobStore  # noqa: E402
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator  # noqa: E402
from crm_pipelines.storage.schema import external_links  # noqa: E402
from crm_pipelines.storage.store import LocalStore  # noqa: E402
from crm_pipelines.sync.runner import import_now  # noqa: E402

SECRET = "jobs-bench-client-secret"
TOKEN = "jobs-bench-token"
API_TOKEN = "jobs-bench-api-token-0123456789"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def serve(work: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    log = open(work / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "crm_pipelines.cli", "serve", "--port", str(port)], cwd=work, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz", 120)
    return process


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def async_return_times(env: dict[str, str], port: int, runs: int) -> tuple[list[float], list[float]]:
    """Seconds for the whole ``--async`` command, and for the API call alone."""
    commands = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "sync", "hubspot", "--async"], env=env, check=True, capture_output=True)
        commands.append(time.perf_counter() - started)
    calls = []
    for _ in range(runs * 4):
        started = time.perf_counter()
        response = httpx.post(f"http://127.0.0.1:{port}/api/jobs", json={"provider": "hubspot"}, headers={"Authorization": f"Bearer {API_TOKEN}"})
        calls.append(time.perf_counter() - started)
        response.raise_for_status()
    return commands, calls


def progress_overhead(db_url: str, contacts: int) -> tuple[float, float, int]:
    """(import seconds, seconds spent writing progress, writes) for a full import of ``contacts``."""
    now = datetime.now(timezone.utc)
    sim = HubSpotSimulator(HubSpotSimConfig(seed=9, contacts=contacts, companies=0, deals=0, tokens=(TOKEN,), burst_limit=1000,
                                            reference_time=now - timedelta(hours=1), clock_start=now))
    sim.start()
    os.environ.update(HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_BASE_URL=sim.base_url)
    store = LocalStore.open(db_url)
    try:
        jobs = JobStore(store.engine)
        job = jobs.create("sync", "hubspot", store.scope("hubspot"), state="running")
        progress = JobProgress(jobs, job, ["contacts"], every_s=2.0)
        spent = [0.0]
        flush = progress.flush

        def timed_flush() -> None:
            started = time.perf_counter()
            flush()
            spent[0] += time.perf_counter() - started

        progress.flush = timed_flush  # type: ignore[method-assign]
        started = time.perf_counter()
        result = import_now("hubspot", "contacts", store, full=True, progress=lambda n: progress.page("contacts", n, contacts))
        progress.entity_done("contacts", result.fetched, created=result.outcome.created)
        return time.perf_counter() - started, spent[0], progress.writes
    finally:
        store.dispose()
        sim.stop()


def webhook_latency(work: Path, env: dict[str, str], db_url: str, changes: int, every: float, timeout: float) -> list[float]:
    port = free_port()
    store = LocalStore.open(db_url)
    sim = HubSpotSimulator(HubSpotSimConfig(seed=3, contacts=50, companies=0, deals=0, tokens=(TOKEN,),
                                            webhook_url=f"http://127.0.0.1:{port}/webhooks/hubspot", webhook_client_secret=SECRET))
    sim.start()
    env = dict(env, CRM_DATABASE_URL=db_url, HUBSPOT_BASE_URL=sim.base_url, HUBSPOT_CLIENT_SECRET=SECRET)
    process = serve(work, env, port)
    integration = store.scope("hubspot")
    query = select(external_links.c.external_id).where(external_links.c.integration_id == integration.id, external_links.c.entity == "contacts")
    delays: list[float] = []
    pending: dict[str, float] = {}
    try:
        next_change = time.perf_counter()
        made = 0
        while made < changes or pending:
            now = time.perf_counter()
            if made < changes and now >= next_change:
                [record_id] = sim.create("contacts", 1)
                pending[record_id] = time.perf_counter()
                made += 1
                next_change = now + every
            with store.engine.connect() as conn:
                local = {row[0] for row in conn.execute(query)}
            seen = time.perf_counter()
            for record_id in [r for r in pending if r in local]:
                delays.append(seen - pending.pop(record_id))
            for record_id in [r for r, t in pending.items() if seen - t > timeout]:
                pending.pop(record_id)
                print(f"  contact {record_id} not local after {timeout:.0f}s", flush=True)
            time.sleep(0.01)
    finally:
        stop(process)
        sim.stop()
        store.dispose()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between two changes")
    parser.add_argument("--contacts", type=int, default=20_000, help="records of the import whose progress is written")
    parser.add_argument("--runs", type=int, default=5, help="--async commands timed")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--sensor", action="store_true", help="also run benchmarks/webhook_latency.py (the sensor path, dagster dev)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crm-jobs-bench-"))
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    db_url = f"sqlite:///{work / 'crm.db'}"
    LocalStore.open(db_url).dispose()
    env = dict(os.environ, DAGSTER_HOME=str(home), CRM_DATABASE_URL=db_url, CRM_API_TOKEN=API_TOKEN, HUBSPOT_ACCESS_TOKEN=TOKEN,
               PYTHONPATH=str(ROOT))

    port = free_port()
    env["CRM_API_URL"] = f"http://127.0.0.1:{port}"
    process = serve(work, env, port)
    try:
        commands, calls = async_return_times(env, port, args.runs)
    finally:
        stop(process)
    print(f"sync --async, whole command (Python start included), {len(commands)} runs: median {statistics.median(commands):.2f}s, max {max(commands):.2f}s")
    print(f"POST /api/jobs alone, {len(calls)} calls: median {statistics.median(calls) * 1000:.1f} ms, max {max(calls) * 1000:.1f} ms")

    duration, spent, writes = progress_overhead(f"sqlite:///{work / 'progress.db'}", args.contacts)
    print(f"progress writes during a {args.contacts:,}-contact import of {duration:.1f}s: {writes} writes, {spent * 1000:.1f} ms "
          f"({spent / duration:.3%} of the import)")

    delays = webhook_latency(work, env, f"sqlite:///{work / 'webhooks.db'}", args.changes, args.every, args.timeout)
    if delays:
        print(f"webhook change -> local row through the applier, {len(delays)} of {args.changes} changes {args.every}s apart: "
              f"median {statistics.median(delays):.2f}s, p99 {percentile(delays, 0.99):.2f}s, max {max(delays):.2f}s")
    else:
        print("no change reached the local database; see", work / "serve.log")
    if args.sensor:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "webhook_latency.py")], check=False)


if __name__ == "__main__":
    main()
