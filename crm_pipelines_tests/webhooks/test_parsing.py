"""Per-provider parsing of one delivery into inbox rows."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from crm_pipelines.webhooks.parsing import MalformedDelivery, parse_delivery


def test_hubspot_array_of_events():
    body = json.dumps([
        {"eventId": 100, "subscriptionType": "contact.creation", "objectId": 512, "occurredAt": 1735689600000},
        {"eventId": 101, "subscriptionType": "object.propertyChange", "objectTypeId": "0-3", "objectId": 9},
        {"subscriptionType": "deal.deletion", "objectId": 7},
    ]).encode()
    rows = parse_delivery("hubspot", body, {})
    assert rows[0] == {"account_id": "", "event_id": "100", "subscription_type": "contact.creation", "object_type": "contact",
                       "object_id": "512", "occurred_at": datetime(2025, 1, 1, tzinfo=timezone.utc)}
    assert rows[1]["object_type"] == "0-3" and rows[1]["occurred_at"] is None
    assert len(rows[2]["event_id"]) == 64 and rows[2]["object_type"] == "deal"


def test_shopify_headers_give_id_and_topic():
    body = b'{"id":706405506930370084,"email":"bob@biller.com"}'
    headers = {"x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "x-shopify-topic": "customers/update",
               "x-shopify-triggered-at": "2025-02-01T09:30:11.000Z"}
    [row] = parse_delivery("shopify", body, headers)
    assert row == {"account_id": "", "event_id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "subscription_type": "customers/update",
                   "object_type": "customers", "object_id": "706405506930370084",
                   "occurred_at": datetime(2025, 2, 1, 9, 30, 11, tzinfo=timezone.utc)}
    [row] = parse_delivery("shopify", body, {})
    assert row["event_id"] == hashlib.sha256(body).hexdigest()


def test_each_provider_names_the_account_an_event_belongs_to():
    hubspot = json.dumps([{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 5, "portalId": 62515}]).encode()
    assert parse_delivery("hubspot", hubspot, {})[0]["account_id"] == "62515"
    assert parse_delivery("shopify", b'{"id":1}', {"x-shopify-shop-domain": "loja-b.myshopify.com"})[0]["account_id"] == "loja-b.myshopify.com"
    pipedrive = {"meta": {"action": "change", "entity": "person", "id": "u1", "version": "2.0", "company_id": "9876543"}, "data": {"id": 7}}
    assert parse_delivery("pipedrive", json.dumps(pipedrive).encode(), {})[0]["account_id"] == "9876543"
    assert parse_delivery("bling", b'{"eventId":"e","event":"order.updated","companyId":"c-77","data":{"id":1}}', {})[0]["account_id"] == "c-77"


def test_pipedrive_v2_and_v1():
    v2 = {"meta": {"action": "change", "entity": "person", "entity_id": "7", "id": "0b8f-uuid",
                   "timestamp": "2025-02-01T09:30:11.000Z", "version": "2.0"}, "data": {"id": 7}, "previous": {}}
    [row] = parse_delivery("pipedrive", json.dumps(v2).encode(), {})
    assert row["event_id"] == "0b8f-uuid" and row["subscription_type"] == "person.change"
    assert row["object_type"] == "person" and row["object_id"] == "7"
    v2_delete = {"meta": {"action": "delete", "entity": "deal", "entity_id": "9", "id": "u2", "version": "2.0"}, "data": None}
    assert parse_delivery("pipedrive", json.dumps(v2_delete).encode(), {})[0]["object_id"] == "9"
    v1 = {"v": 1, "meta": {"v": 1, "action": "updated", "object": "person", "id": 7, "timestamp": 1738402211},
          "current": {"id": 7}, "previous": {"id": 7}, "event": "updated.person"}
    body = json.dumps(v1).encode()
    [row] = parse_delivery("pipedrive", body, {})
    assert row["event_id"] == hashlib.sha256(body).hexdigest() and row["subscription_type"] == "person.updated"
    assert row["occurred_at"] == datetime(2025, 2, 1, 9, 30, 11, tzinfo=timezone.utc)


def test_bling_event_id_or_body_hash():
    body = b'{"eventId":"01JABC","date":"2025-02-01T09:30:11Z","event":"order.updated","data":{"id":123}}'
    [row] = parse_delivery("bling", body, {})
    assert row == {"account_id": "", "event_id": "01JABC", "subscription_type": "order.updated", "object_type": "order",
                   "object_id": "123", "occurred_at": datetime(2025, 2, 1, 9, 30, 11, tzinfo=timezone.utc)}
    anonymous = b'{"event":"contact.deleted","data":{"id":5}}'
    assert parse_delivery("bling", anonymous, {})[0]["event_id"] == hashlib.sha256(anonymous).hexdigest()


@pytest.mark.parametrize("provider, body", [
    ("hubspot", b"not json"), ("hubspot", b"{}"), ("hubspot", b"[]"), ("hubspot", b"[1]"),
    ("shopify", b"[1]"), ("pipedrive", b'{"data":{}}'), ("bling", b'"x"'), ("bling", b"\xff\xfe"),
])
def test_malformed_bodies(provider, body):
    with pytest.raises(MalformedDelivery):
        parse_delivery(provider, body, {})
