"""Shopify webhook deliveries from the simulator: headers, HMAC, retries, parsing, targeted sync."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm_pipelines.providers.shopify import PLUGIN
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.sync.targeted import sync_ids
from crm_pipelines.webhooks.parsing import parse_delivery
from crm_pipelines.webhooks.signatures import SignatureError, verify_shopify
from crm_pipelines_tests.providers.shopify.conftest import FAST

SECRET = "shpss_test_secret"


class Receiver:
    """A local endpoint recording deliveries; the first ``fail_first`` answers are 500s."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.deliveries.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/shopify"

    def wait_for(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.deliveries) >= n, f"{len(self.deliveries)} deliveries of {n}"

    def close(self) -> None:
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


def test_deliveries_are_signed_and_carry_shopify_headers(start_shopify_sim, receiver):
    endpoint = receiver(fail_first=2)
    sim = start_shopify_sim(customers=10, orders=5, companies=3, webhook_url=endpoint.url, webhook_secret=SECRET, webhook_retry_base_s=0.05, **FAST)
    [created] = sim.create("contacts", 1)
    [changed] = sim.modify("deals", n=1)
    [deleted] = sim.delete("companies", 1)
    endpoint.wait_for(3)
    assert endpoint.attempts == 5  # two failed attempts were retried
    by_topic = {}
    for body, headers in endpoint.deliveries:
        verify_shopify(SECRET, body, headers["x-shopify-hmac-sha256"])
        with pytest.raises(SignatureError):
            verify_shopify("another-secret", body, headers["x-shopify-hmac-sha256"])
        assert headers["x-shopify-shop-domain"] == "loja-simulada.myshopify.com"
        assert headers["x-shopify-webhook-id"] and headers["x-shopify-event-id"] and headers["x-shopify-api-version"]
        by_topic[headers["x-shopify-topic"]] = (json.loads(body), headers)
    assert set(by_topic) == {"customers/create", "orders/updated", "companies/delete"}
    customer, _ = by_topic["customers/create"]
    assert customer["admin_graphql_api_id"] == created and customer["id"] == int(created.rsplit("/", 1)[1])
    assert by_topic["companies/delete"][0] == {"id": int(deleted.rsplit("/", 1)[1])}
    assert by_topic["orders/updated"][0]["admin_graphql_api_id"] == changed


def test_deliveries_parse_to_entities_and_sync_by_id(start_shopify_sim, receiver, store, client_for):
    endpoint = receiver()
    sim = start_shopify_sim(customers=50, orders=0, companies=0, webhook_url=endpoint.url, webhook_secret=SECRET, **FAST)
    created = sim.create("contacts", 3)
    [deleted] = sim.delete("contacts", [created[0]])
    endpoint.wait_for(4)
    rows = [row for body, headers in endpoint.deliveries for row in parse_delivery("shopify", body, headers)]
    assert {PLUGIN.webhook_object_types[r["object_type"]] for r in rows} == {"contacts"}
    assert len({r["event_id"] for r in rows}) == 4
    ids = sorted({r["object_id"] for r in rows})
    client = client_for(sim)
    figures = sync_ids(ShopifyChangeReader(client), store, "shopify", "contacts", ids, stats=client.stats)
    assert figures["created"] == 2 and figures["failed"] == 0
    linked = store.linked_records("shopify", "contacts")
    assert set(linked) == set(created[1:])
    assert deleted not in linked
