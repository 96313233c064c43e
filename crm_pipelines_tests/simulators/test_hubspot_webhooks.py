"""The HubSpot simulator delivers signed, batched, retried webhooks as records change."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm_pipelines.webhooks.signatures import verify_hubspot_v1, verify_hubspot_v3

SECRET = "test-client-secret"


class Receiver:
    """A local endpoint recording deliveries; can fail the first N with 500."""

    def __init__(self, fail_first: int = 0):
        self.deliveries: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.deliveries.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/hubspot?app=crm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [event for _, body in self.deliveries for event in json.loads(body)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def _make(**kw):
        made.append(Receiver(**kw))
        return made[-1]

    yield _make
    for r in made:
        r.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_changes_are_delivered_signed_and_batched(make_hubspot, receiver):
    endpoint = receiver()
    sim = make_hubspot(webhook_url=endpoint.url, webhook_client_secret=SECRET)
    created = sim.create("contacts", 3)
    changed = sim.modify("companies", n=2)
    deleted = sim.archive("deals", 1)
    assert sim.webhooks.flush(10)
    events = endpoint.events()
    kinds = {(e["subscriptionType"], str(e["objectId"])) for e in events}
    assert {("contact.creation", i) for i in created} <= kinds
    assert {"company.propertyChange"} == {t for t, i in kinds if i in changed}
    assert ("deal.deletion", deleted[0]) in kinds
    assert len({e["eventId"] for e in events}) == len(events)
    assert len(endpoint.deliveries) < len(events)  # batched, not one request per event
    for headers, body in endpoint.deliveries:
        verify_hubspot_v1(SECRET, body, headers["X-HubSpot-Signature"], headers["X-HubSpot-Signature-Version"])
        verify_hubspot_v3(SECRET, "POST", endpoint.url, body, headers["X-HubSpot-Signature-v3"], headers["X-HubSpot-Request-Timestamp"])
        assert len(json.loads(body)) <= 100


def test_failed_deliveries_are_retried_with_attempt_numbers(make_hubspot, receiver):
    endpoint = receiver(fail_first=2)
    sim = make_hubspot(webhook_url=endpoint.url, webhook_client_secret=SECRET, webhook_retry_base_s=0.05)
    [created] = sim.create("contacts", 1)
    assert wait_for(lambda: endpoint.deliveries)
    [event] = [e for e in endpoint.events() if str(e["objectId"]) == created]
    assert event["attemptNumber"] == 2
    assert sim.webhooks.stats.snapshot()["failed_attempts"] == 2


def test_no_webhooks_without_a_url(make_hubspot):
    sim = make_hubspot()
    sim.create("contacts", 1)
    assert sim.webhooks is None
