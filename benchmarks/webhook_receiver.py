"""Webhook receiver acknowledgement time at a steady delivery rate, on SQLite and PostgreSQL.

Starts ``python -m crm_pipelines.webhooks`` (uvicorn) against each database, sends signed
HubSpot deliveries (one event each) at ``--rate`` per second for ``--seconds`` from a pool of
senders (open loop: a slow answer does not slow the schedule), and prints the acknowledgement
time percentiles. Every acknowledged event is checked to be in the inbox.

Usage: ``python benchmarks/webhook_receiver.py [--rate 200] [--seconds 10] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_pipelines.storage.engine import make_engine
from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.signatures import sign_hubspot_v1, sign_hubspot_v3

SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(db_url: str, rate: int, seconds: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    env = dict(os.environ, HUBSPOT_CLIENT_SECRET=SECRET, CRM_DATABASE_URL=db_url)
    proc = subprocess.Popen([sys.executable, "-m", "crm_pipelines.webhooks", "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        local = threading.local()
        total = int(rate * seconds)
        # Bodies are built and signed before the clock starts, so the sender's own CPU use stays small.
        payloads = []
        for event_id in range(1, total + 1):
            body = json.dumps([{"eventId": event_id, "subscriptionType": "contact.propertyChange", "objectId": event_id, "occurredAt": int(time.time() * 1000), "attemptNumber": 0}]).encode()
            ts = int(time.time() * 1000) + int(seconds * 1000) // 2
            payloads.append((event_id, body, {"X-HubSpot-Signature": sign_hubspot_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1",
                                              "X-HubSpot-Signature-v3": sign_hubspot_v3(SECRET, "POST", url, body, ts), "X-HubSpot-Request-Timestamp": str(ts),
                                              "Content-Type": "application/json"}))

        def send(payload) -> tuple[int, float, bool, float]:
            event_id, body, headers = payload
            client = getattr(local, "client", None) or httpx.Client(timeout=10)
            local.client = client
            started = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            elapsed = time.perf_counter() - started
            server = float(response.headers.get("Server-Timing", "ack;dur=nan").split("dur=")[1]) / 1000
            return event_id, elapsed, response.status_code == 200, server

        futures = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(send, payloads[i]))
            results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    acked = {event_id for event_id, _, ok, _ in results if ok}
    stored = {int(r["event_id"]) for r in WebhookInbox(make_engine(db_url)).read_after("hubspot", 0, total + 10)}
    client_times = sorted(t for _, t, ok, _ in results if ok)
    server_times = sorted(s for _, _, ok, s in results if ok)

    def pct(values, p):
        return values[min(int(p * len(values)), len(values) - 1)] * 1000

    return {"sent": total, "acked": len(acked), "lost": len(acked - stored), "rate": total / elapsed,
            "p50": pct(client_times, 0.50), "p95": pct(client_times, 0.95), "p99": pct(client_times, 0.99), "max": client_times[-1] * 1000,
            "server_p50": pct(server_times, 0.50), "server_p99": pct(server_times, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--postgres", default=os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()

    rows = [("sqlite", measure(f"sqlite:///{Path(tempfile.mkdtemp()) / 'inbox.db'}", args.rate, args.seconds))]
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"crm_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        rows.append(("postgresql", measure(make_url(args.postgres).set(database=name).render_as_string(hide_password=False), args.rate, args.seconds)))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    print(f"Webhook receiver, {args.rate} deliveries/s for {args.seconds:g} s (one uvicorn worker, signed HubSpot deliveries)")
    print("client-side times include the sender's own queuing on the same cores; server times are the receiver's (Server-Timing)")
    header = f"{'database':<12}{'sent':>7}{'acked':>7}{'lost':>6}{'rate/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'srv p50':>9}{'srv p99':>9}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(f"{name:<12}{r['sent']:>7}{r['acked']:>7}{r['lost']:>6}{r['rate']:>8.0f}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}{r['server_p50']:>9.1f}{r['server_p99']:>9.1f}")


if __name__ == "__main__":
    main()
