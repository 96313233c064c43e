"""Genuine deliveries for each provider, signed with the same functions the receiver verifies with."""

from __future__ import annotations

import json
import time
import uuid

from crm_pipelines.webhooks import signatures as sig
from crm_pipelines.webhooks.app import WebhookSecrets

PROVIDERS = ("hubspot", "shopify", "pipedrive", "bling")

# The header each scheme signs with, so tests can drop or corrupt it.
SIGNATURE_HEADER = {
    "hubspot": "X-HubSpot-Signature-v3",
    "shopify": "X-Shopify-Hmac-Sha256",
    "pipedrive": "Authorization",
    "bling": "X-Bling-Signature-256",
}


def body_for(provider: str, n_events: int = 2) -> bytes:
    """A realistic body: ``n_events`` events for HubSpot, one event for the others."""
    if provider == "hubspot":
        base = uuid.uuid4().int % 10**9
        return json.dumps([
            {"eventId": base + i, "subscriptionId": 2001, "portalId": 62515, "appId": 54321,
             "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.propertyChange",
             "attemptNumber": 0, "objectId": 512 + i, "propertyName": "email", "propertyValue": f"n{i}@b.com"}
            for i in range(n_events)
        ]).encode()
    if provider == "shopify":
        return json.dumps({"id": 706405506930370084, "email": "bob@biller.com", "first_name": "Bob"}).encode()
    if provider == "pipedrive":
        return json.dumps({
            "meta": {"action": "change", "entity": "person", "entity_id": "7", "id": str(uuid.uuid4()),
                     "timestamp": "2025-02-01T09:30:11.000Z", "version": "2.0", "webhook_id": "55"},
            "data": {"id": 7, "name": "Ana"}, "previous": {"name": "Ana Maria"},
        }).encode()
    return json.dumps({"eventId": str(uuid.uuid4()), "date": "2025-02-01T09:30:11Z", "version": "v1",
                       "event": "order.updated", "data": {"id": 123}}).encode()


def sign(provider: str, body: bytes, secrets: WebhookSecrets, *, uri: str = "", timestamp_ms: int | None = None) -> dict[str, str]:
    """The headers the provider sends with ``body`` (HubSpot: v3 for ``uri``, plus v1)."""
    headers = {"Content-Type": "application/json"}
    if provider == "hubspot":
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        headers |= {
            "X-HubSpot-Signature-v3": sig.sign_hubspot_v3(secrets.hubspot_client_secret, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
            "X-HubSpot-Signature": sig.sign_hubspot_v1(secrets.hubspot_client_secret, body),
            "X-HubSpot-Signature-Version": "v1",
        }
    elif provider == "shopify":
        headers |= {
            "X-Shopify-Hmac-Sha256": sig.sign_shopify(secrets.shopify_webhook_secret, body),
            "X-Shopify-Topic": "customers/update",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Shop-Domain": "acme.myshopify.com",
            "X-Shopify-Triggered-At": "2025-02-01T09:30:11.000Z",
        }
    elif provider == "pipedrive":
        headers["Authorization"] = sig.sign_pipedrive(secrets.pipedrive_user, secrets.pipedrive_password)
    else:
        headers["X-Bling-Signature-256"] = sig.sign_bling(secrets.bling_client_secret, body)
    return headers


def with_other_secrets(secrets: WebhookSecrets) -> WebhookSecrets:
    """The same configuration with every secret changed: what a forger would sign with."""
    return WebhookSecrets(
        hubspot_client_secret="forged-" + secrets.hubspot_client_secret,
        shopify_webhook_secret="forged-" + secrets.shopify_webhook_secret,
        pipedrive_user=secrets.pipedrive_user,
        pipedrive_password="forged-" + secrets.pipedrive_password,
        bling_client_secret="forged-" + secrets.bling_client_secret,
    )
