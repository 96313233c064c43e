"""The inbox table: one row per (provider, event id), read back in order, marked processed."""

from __future__ import annotations

import json

import pytest
from datetime import datetime, timezone

from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.parsing import parse_delivery


def hubspot_body(*event_ids: int) -> bytes:
    return json.dumps([
        {"eventId": i, "subscriptionType": "contact.propertyChange", "objectId": 500 + i,
         "occurredAt": 1735689600000, "propertyName": "email", "propertyValue": f"{i}@x.com"}
        for i in event_ids
    ]).encode()


def test_store_ignores_duplicates_and_reads_in_order(engine, count_rows):
    inbox = WebhookInbox(engine)
    body = hubspot_body(1, 2, 3)
    assert inbox.store("hubspot", parse_delivery("hubspot", body, {}), body) == 3
    assert inbox.store("hubspot", parse_delivery("hubspot", body, {}), body) == 0
    overlap = hubspot_body(3, 4, 4)
    assert inbox.store("hubspot", parse_delivery("hubspot", overlap, {}), overlap) == 1
    # the same event id from another provider is another event
    assert inbox.store("bling", [{"event_id": "1"}], b'{"eventId":"1"}') == 1
    assert count_rows("hubspot") == 4 and count_rows() == 5

    rows = inbox.read_after("hubspot", 0, 10)
    assert [r["event_id"] for r in rows] == ["1", "2", "3", "4"]
    first = rows[0]
    assert first["object_type"] == "contact" and first["object_id"] == "501"
    assert first["subscription_type"] == "contact.propertyChange"
    assert first["occurred_at"] == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert first["received_at"].tzinfo is not None and first["processed_at"] is None
    assert json.loads(first["raw_body"]) == json.loads(body)

    assert [r["event_id"] for r in inbox.read_after("hubspot", rows[1]["id"], 1)] == ["3"]
    assert inbox.read_after("hubspot", rows[-1]["id"], 10) == []

    inbox.mark_processed([rows[0]["id"], rows[1]["id"]])
    inbox.mark_processed([])
    processed = {r["event_id"]: r["processed_at"] for r in inbox.read_after("hubspot", 0, 10)}
    assert processed["1"] and processed["2"] and processed["3"] is None and processed["4"] is None


def test_group_commit_answers_each_delivery_and_isolates_a_failing_one(sqlite_url):
    from crm_pipelines.storage.engine import make_engine
    from crm_pipelines.storage.migrate import upgrade
    from crm_pipelines.webhooks.inbox import GroupCommitWriter, WebhookInbox

    engine = make_engine(sqlite_url)
    upgrade(engine)
    inbox = WebhookInbox(engine)
    original = inbox.store_many_in

    def store_many_in(conn, deliveries):
        if any(events and events[0]["event_id"] == "poison" for _, events, _ in deliveries):
            raise ValueError("cannot store this delivery")
        return original(conn, deliveries)

    inbox.store_many_in = store_many_in
    writer = GroupCommitWriter(inbox)
    try:
        futures = [writer.submit("hubspot", [{"event_id": f"e{i}", "object_id": str(i)}], b"[]") for i in range(50)]
        poison = writer.submit("hubspot", [{"event_id": "poison"}], b"[]")
        futures += [writer.submit("hubspot", [{"event_id": f"e{i}"}], b"[]") for i in range(50, 60)]
        duplicate = writer.submit("hubspot", [{"event_id": "e1"}], b"[]")
        assert [f.result(timeout=10) for f in futures] == [1] * 60
        assert duplicate.result(timeout=10) == 0
        with pytest.raises(ValueError):
            poison.result(timeout=10)
    finally:
        writer.close()
    assert len(inbox.read_after("hubspot", 0, 1000)) == 60
