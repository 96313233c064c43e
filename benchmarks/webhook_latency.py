"""Change-to-local-database delay through webhooks, end to end under ``dagster dev``.

Starts the webhook receiver, the HubSpot simulator (delivering signed webhooks to it) and
``dagster dev`` (webserver + daemon) on a fresh Dagster home and SQLite database, turns the
``hubspot_webhooks`` sensor on, then creates or changes a contact in the simulator every few
seconds and measures how long each takes to appear in the local database. Prints the median,
90th percentile and worst delay.

Usage: ``python benchmarks/webhook_latency.py [--changes 10] [--every 4]``
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[1]
SECRET = "latency-client-secret"
TOKEN = "latency-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between changes")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on a change after this many seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crm-latency-"))
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    db_url = f"sqlite:///{work / 'crm.db'}"
    store = LocalStore.open(db_url)
    receiver_port, ui_port = free_port(), free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), CRM_DATABASE_URL=db_url, HUBSPOT_CLIENT_SECRET=SECRET, HUBSPOT_ACCESS_TOKEN=TOKEN)
    processes: list[subprocess.Popen] = []
    sim = None
    try:
        processes.append(subprocess.Popen([sys.executable, "-m", "crm_pipelines.webhooks", "--port", str(receiver_port), "--log-level", "warning"],
                                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_http(f"http://127.0.0.1:{receiver_port}/healthz", 60)
        sim = HubSpotSimulator(HubSpotSimConfig(seed=3, contacts=200, companies=0, deals=0, tokens=(TOKEN,),
                                                webhook_url=f"http://127.0.0.1:{receiver_port}/webhooks/hubspot", webhook_client_secret=SECRET))
        sim.start()
        env["HUBSPOT_BASE_URL"] = sim.base_url
        log = open(work / "dagster.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-m", "crm_pipelines.definitions", "-p", str(ui_port)],
                                          cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_http(f"http://127.0.0.1:{ui_port}/server_info", 180)
        subprocess.run([sys.executable, "-m", "dagster", "sensor", "start", "hubspot_webhooks", "-m", "crm_pipelines.definitions"],
                       cwd=work, env=env, check=True, capture_output=True)
        print(f"dagster dev on :{ui_port}, receiver on :{receiver_port}, simulator at {sim.base_url}; sensor on", flush=True)

        delays = []
        pending: dict[str, float] = {}
        next_change = time.monotonic()
        made = 0
        while made < args.changes or pending:
            now = time.monotonic()
            if made < args.changes and now >= next_change:
                [record_id] = sim.create("contacts", 1)
                pending[record_id] = time.monotonic()
                made += 1
                next_change = now + args.every
            linked = store.linked_records("hubspot", "contacts")
            for record_id in [r for r in pending if r in linked]:
                delays.append(time.monotonic() - pending.pop(record_id))
                print(f"  contact {record_id} local after {delays[-1]:.1f}s", flush=True)
            for record_id in [r for r, t in pending.items() if time.monotonic() - t > args.timeout]:
                pending.pop(record_id)
                print(f"  contact {record_id} not local after {args.timeout:.0f}s", flush=True)
            time.sleep(0.2)
    finally:
        for proc in reversed(processes):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        if sim is not None:
            sim.stop()
        store.dispose()

    if not delays:
        print("no change reached the local database; see", work / "dagster.log")
        sys.exit(1)
    ordered = sorted(delays)
    print(f"\nwebhook -> sensor (15 s minimum interval) -> run -> local database, {len(delays)} of {args.changes} changes:")
    print(f"median {statistics.median(ordered):.1f}s, p90 {ordered[min(int(0.9 * len(ordered)), len(ordered) - 1)]:.1f}s, max {ordered[-1]:.1f}s")


if __name__ == "__main__":
    main()
