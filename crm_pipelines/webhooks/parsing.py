"""Turning one delivery (raw body and headers) into inbox event rows, per provider.

Each parser returns a list of dicts with the keys ``event_id``, ``subscription_type``,
``object_type``, ``object_id`` and ``occurred_at`` (an aware UTC datetime or ``None``), or raises
:class:`MalformedDelivery` when the body is not what the provider sends. When a provider gives no
event id, the SHA-256 of the body (of the event, for a multi-event body) stands in for it, so an
identical redelivery is still recognised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

EventRow = dict[str, Any]


class MalformedDelivery(ValueError):
    """A delivery body that cannot be read as the provider's payload; the message is safe to log."""


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedDelivery("body is not valid JSON") from None
    except RecursionError:
        raise MalformedDelivery("body is nested too deeply") from None


def _storable(text: str) -> str:
    """Text the inbox can hold on every database: a NUL (refused by PostgreSQL) is kept as ``\\u0000``."""
    return text.replace("\x00", "\\u0000") if "\x00" in text else text


def _text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return _storable(str(value))[:limit]


def _merged_ids(value: Any) -> list[Any]:
    """HubSpot's ``mergedObjectIds``: a list of ids (a lone id is taken as one)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return value
    raise MalformedDelivery("HubSpot delivery holds a mergedObjectIds that is not a list of ids")


def _from_epoch_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _from_epoch_s(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _from_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _row(event_id: str, subscription_type: Any, object_type: Any, object_id: Any, occurred_at: datetime | None, account_id: Any = None) -> EventRow:
    return {
        "account_id": _text(account_id, 255) or "",
        "event_id": _storable(event_id)[:128],
        "subscription_type": _text(subscription_type, 128),
        "object_type": _text(object_type, 64),
        "object_id": _text(object_id, 64),
        "occurred_at": occurred_at,
    }


def parse_hubspot(body: bytes, headers: Mapping[str, str]) -> list[EventRow]:
    """A JSON array of events (``eventId``, ``subscriptionType``, ``objectId``, ``occurredAt``)."""
    events = _load_json(body)
    if not isinstance(events, list) or not events:
        raise MalformedDelivery("HubSpot delivery is not a non-empty JSON array")
    rows = []
    for event in events:
        if not isinstance(event, dict):
            raise MalformedDelivery("HubSpot delivery holds an event that is not an object")
        subscription_type = event.get("subscriptionType")
        object_type = event.get("objectTypeId")
        if object_type is None and isinstance(subscription_type, str) and "." in subscription_type:
            object_type = subscription_type.split(".", 1)[0]
        event_id = event.get("eventId")
        if event_id is None:
            event_id = body_hash(json.dumps(event, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        occurred = _from_epoch_ms(event.get("occurredAt"))
        portal = event.get("portalId")
        rows.append(_row(str(event_id), subscription_type, object_type, event.get("objectId"), occurred, portal))
        # A merge names the records merged away too: each gets a row, so it is synced (as gone).
        for merged in _merged_ids(event.get("mergedObjectIds")):
            if str(merged) != str(event.get("objectId")):
                rows.append(_row(f"{event_id}:merged:{merged}", subscription_type, object_type, merged, occurred, portal))
    return rows


def parse_shopify(body: bytes, headers: Mapping[str, str]) -> list[EventRow]:
    """One resource per delivery; the id is ``X-Shopify-Webhook-Id``, the type ``X-Shopify-Topic``."""
    payload = _load_json(body)
    if not isinstance(payload, dict):
        raise MalformedDelivery("Shopify delivery is not a JSON object")
    topic = headers.get("x-shopify-topic")
    object_type = topic.split("/", 1)[0] if topic else None
    event_id = (headers.get("x-shopify-webhook-id") or "").strip() or body_hash(body)
    occurred_at = _from_iso(headers.get("x-shopify-triggered-at")) or _from_iso(payload.get("updated_at"))
    return [_row(event_id, topic, object_type, payload.get("id"), occurred_at, headers.get("x-shopify-shop-domain"))]


def parse_pipedrive(body: bytes, headers: Mapping[str, str]) -> list[EventRow]:
    """A v2 body (``meta.id``/``meta.action``/``meta.entity``, ``data.id``), or a legacy v1 body."""
    payload = _load_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise MalformedDelivery("Pipedrive delivery has no meta object")
    meta = payload["meta"]
    if str(meta.get("version", "")).startswith("2") or "entity" in meta:
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        entity, action = meta.get("entity"), meta.get("action")
        object_id = data.get("id", meta.get("entity_id"))
        event_id = _text(meta.get("id"), 128) or body_hash(body)
        occurred_at = _from_iso(meta.get("timestamp"))
        company = meta.get("company_id")
    else:
        # v1: meta.id is the object's id, not the event's; the body hash identifies the event.
        current = payload.get("current") if isinstance(payload.get("current"), dict) else {}
        entity, action = meta.get("object"), meta.get("action")
        object_id = current.get("id", meta.get("id"))
        event_id = body_hash(body)
        occurred_at = _from_epoch_s(meta.get("timestamp"))
        company = meta.get("company_id")
    subscription_type = f"{entity}.{action}" if entity and action else action
    return [_row(event_id, subscription_type, entity, object_id, occurred_at, company)]


def parse_bling(body: bytes, headers: Mapping[str, str]) -> list[EventRow]:
    """``{"eventId", "date", "event": "order.updated", "data": {"id", ...}}``."""
    payload = _load_json(body)
    if not isinstance(payload, dict):
        raise MalformedDelivery("Bling delivery is not a JSON object")
    event = payload.get("event")
    object_type = event.split(".", 1)[0] if isinstance(event, str) and "." in event else None
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    event_id = _text(payload.get("eventId"), 128) or body_hash(body)
    return [_row(event_id, event, object_type, data.get("id"), _from_iso(payload.get("date")), payload.get("companyId"))]


PARSERS: dict[str, Callable[[bytes, Mapping[str, str]], list[EventRow]]] = {
    "hubspot": parse_hubspot,
    "shopify": parse_shopify,
    "pipedrive": parse_pipedrive,
    "bling": parse_bling,
}


def parse_delivery(provider: str, body: bytes, headers: Mapping[str, str]) -> list[EventRow]:
    """The event rows of one delivery; ``headers`` are looked up by lower-case name."""
    return PARSERS[provider](body, headers)
