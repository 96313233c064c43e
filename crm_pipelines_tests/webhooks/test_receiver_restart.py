"""A receiver process killed mid-stream and restarted loses no delivery it acknowledged."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from crm_pipelines.storage.engine import make_engine
from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.signatures import sign_hubspot_v1, sign_hubspot_v3

SECRET = "restart-test-secret"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(port: int, db_url: str) -> subprocess.Popen:
    env = dict(os.environ, HUBSPOT_CLIENT_SECRET=SECRET, CRM_DATABASE_URL=db_url)
    proc = subprocess.Popen([sys.executable, "-m", "crm_pipelines.webhooks", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("receiver did not start")


def post(url: str, event_id: int) -> bool:
    body = json.dumps([{"eventId": event_id, "subscriptionType": "contact.propertyChange", "objectId": 1000 + event_id, "occurredAt": 1767225600000, "attemptNumber": 0}]).encode()
    ts = int(time.time() * 1000)
    headers = {"Content-Type": "application/json", "X-HubSpot-Signature": sign_hubspot_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1",
               "X-HubSpot-Signature-v3": sign_hubspot_v3(SECRET, "POST", url, body, ts), "X-HubSpot-Request-Timestamp": str(ts)}
    try:
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_acknowledged_deliveries_survive_a_kill(sqlite_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    acknowledged: set[int] = set()
    proc = start_receiver(port, sqlite_url)
    stop = threading.Event()

    def sender(offset: int) -> None:
        n = offset
        while not stop.is_set():
            if post(url, n):
                acknowledged.add(n)
            n += 4

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 150:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-stream, with requests in flight
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    proc = start_receiver(port, sqlite_url)  # restart on the same database
    try:
        assert post(url, 10**6)
        acknowledged.add(10**6)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    stored = {int(r["event_id"]) for r in WebhookInbox(make_engine(sqlite_url)).read_after("hubspot", 0, 100_000)}
    assert acknowledged <= stored, f"acknowledged but lost: {sorted(acknowledged - stored)[:10]}"
