"""Malformed, unsigned and oversized deliveries: answered 400, 401 or 413, never 500; bodies stored once per delivery."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from crm_pipelines.storage.schema import webhook_deliveries
from crm_pipelines.webhooks.app import create_app
from crm_pipelines.webhooks.inbox import WebhookInbox

from .conftest import SECRETS
from .deliveries import PROVIDERS, body_for, sign

BASE = "http://testserver"
HUBSPOT = f"{BASE}/webhooks/hubspot"


@pytest.fixture
def client(engine):
    with TestClient(create_app(engine, SECRETS, max_body_bytes=64 * 1024), base_url=BASE, raise_server_exceptions=False) as client:
        yield client


def signed_hubspot(events) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode() if not isinstance(events, bytes) else events
    return body, sign("hubspot", body, SECRETS, uri=HUBSPOT)


def event(**extra):
    return {"eventId": 9001, "portalId": 62515, "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.merge", "objectId": 512} | extra


@pytest.mark.parametrize("timestamp", ["１２３４", "²³", "1" * 5000, "-5", ""])
def test_odd_hubspot_timestamps_are_refused_not_crashed_on(client, count_rows, timestamp):
    body = body_for("hubspot")
    try:  # the server reads headers as Latin-1: superscript digits arrive as such
        raw = timestamp.encode("latin-1")
    except UnicodeEncodeError:
        raw = timestamp.encode("utf-8")
    headers = sign("hubspot", body, SECRETS, uri=HUBSPOT) | {"X-HubSpot-Request-Timestamp": raw}
    response = client.post("/webhooks/hubspot", content=body, headers=headers)
    assert response.status_code in (400, 401), response.text
    assert count_rows() == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_over_the_limit_is_answered_413_unsigned_or_not(client, count_rows, provider):
    body = b"[" + b"0," * 40_000 + b"0]"  # 80 KB
    assert client.post(f"/webhooks/{provider}", content=body, headers={"Content-Type": "application/json"}).status_code == 413
    signed = client.post(f"/webhooks/{provider}", content=body, headers=sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}"))
    assert signed.status_code == 413
    streamed = client.post(f"/webhooks/{provider}", content=iter([body[:40_000], body[40_000:]]), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413  # no Content-Length: counted while reading
    assert count_rows() == 0


def test_signed_deeply_nested_json_is_a_400(client, count_rows):
    body, headers = signed_hubspot(b"[" * 20_000 + b"]" * 20_000)
    assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == 400
    assert count_rows() == 0


@pytest.mark.parametrize("merged, rows", [("789", 2), (789, 2), ([789, 790], 3), ([], 1), ({"id": 789}, None), ([[789]], None)])
def test_merged_object_ids_are_ids_or_the_delivery_is_refused(client, count_rows, merged, rows):
    body, headers = signed_hubspot([event(mergedObjectIds=merged)])
    response = client.post("/webhooks/hubspot", content=body, headers=headers)
    if rows is None:
        assert response.status_code == 400 and count_rows() == 0
    else:
        assert response.status_code == 200, response.text
        assert count_rows() == rows


def test_a_nul_in_an_event_id_is_stored_escaped(client, engine, count_rows):
    body, headers = signed_hubspot([event(eventId="ab\u0000cd", objectId="5\u00001")])
    response = client.post("/webhooks/hubspot", content=body, headers=headers)
    assert response.status_code == 200, response.text
    [row] = WebhookInbox(engine).read_after("hubspot", 0, 10)
    assert row["event_id"] == "ab\\u0000cd" and row["object_id"] == "5\\u00001"
    assert client.post("/webhooks/hubspot", content=body, headers=headers).json() == {"stored": 0, "duplicates": 1}


def test_the_raw_body_is_stored_once_per_delivery(client, engine, count_rows):
    body, headers = signed_hubspot([event(eventId=100 + i, objectId=600 + i) for i in range(20)])
    assert client.post("/webhooks/hubspot", content=body, headers=headers).json() == {"stored": 20, "duplicates": 0}
    assert client.post("/webhooks/hubspot", content=body, headers=headers).json() == {"stored": 0, "duplicates": 20}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar() == 1  # the replay kept no copy
        assert conn.execute(select(func.sum(func.length(webhook_deliveries.c.body)))).scalar() == len(body)
    rows = WebhookInbox(engine).read_after("hubspot", 0, 50)
    assert len(rows) == 20 and all(r["raw_body"] == body.decode() for r in rows)
