"""The receiver app through Starlette's test client, on SQLite and PostgreSQL.

Every check reads the inbox through a separate engine, so a 200 proves the rows were committed
before the answer, and a rejection proves nothing was stored.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from starlette.testclient import TestClient

from crm_pipelines.webhooks.app import WebhookSecrets, create_app
from crm_pipelines.webhooks.inbox import WebhookInbox

from .conftest import SECRETS
from .deliveries import PROVIDERS, SIGNATURE_HEADER, body_for, sign, with_other_secrets

BASE = "http://testserver"


@pytest.fixture
def client(engine):
    with TestClient(create_app(engine, SECRETS), base_url=BASE) as client:
        yield client


def post(client: TestClient, provider: str, body: bytes, headers: dict[str, str], path: str = ""):
    return client.post(f"/webhooks/{provider}{path}", content=body, headers=headers)


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_genuine_delivery_stored_and_replay_stored_once(client, engine, count_rows, provider):
    body = body_for(provider)
    headers = sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}")
    expected = 2 if provider == "hubspot" else 1

    response = post(client, provider, body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": expected, "duplicates": 0}
    assert count_rows(provider) == expected

    replay = post(client, provider, body, headers)
    assert replay.status_code == 200
    assert replay.json() == {"stored": 0, "duplicates": expected}
    assert count_rows(provider) == expected == count_rows()

    rows = WebhookInbox(engine).read_after(provider, 0, 10)
    assert all(row["raw_body"] == body.decode() for row in rows)
    assert all(row["object_id"] and row["subscription_type"] for row in rows)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_forged_deliveries_rejected_and_not_stored(client, count_rows, provider, caplog):
    uri = f"{BASE}/webhooks/{provider}"
    body = body_for(provider)
    caplog.set_level(logging.WARNING, logger="crm_pipelines.webhooks")

    wrong_secret = sign(provider, body, with_other_secrets(SECRETS), uri=uri)
    response = post(client, provider, body, wrong_secret)
    assert response.status_code == 401, response.text

    if provider != "pipedrive":  # Basic auth does not cover the body
        altered = body.replace(b"7", b"8") if b"7" in body else body + b" "
        assert altered != body
        response = post(client, provider, altered, sign(provider, body, SECRETS, uri=uri))
        assert response.status_code == 401, response.text

    assert count_rows() == 0
    rejected = [r for r in caplog.records if r.name == "crm_pipelines.webhooks"]
    assert rejected and all("401" in r.getMessage() for r in rejected)
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for value in (SECRETS.hubspot_client_secret, SECRETS.shopify_webhook_secret, SECRETS.pipedrive_password,
                  SECRETS.bling_client_secret, wrong_secret[SIGNATURE_HEADER[provider]],
                  sign(provider, body, SECRETS, uri=uri)[SIGNATURE_HEADER[provider]].split()[-1]):
        assert value not in logged
        assert value not in response.text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_signature_headers_rejected(client, count_rows, provider):
    body = body_for(provider)
    headers = sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}")
    headers.pop(SIGNATURE_HEADER[provider])
    if provider == "hubspot":
        # without v3 the receiver falls back to v1: dropping that too leaves nothing to verify
        assert post(client, provider, body, headers).status_code == 200
        assert count_rows() == 2
        body = body_for(provider)
        headers = sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}")
        for name in ("X-HubSpot-Signature-v3", "X-HubSpot-Signature"):
            headers.pop(name)
        count_before = 2
    else:
        count_before = 0
    response = post(client, provider, body, headers)
    assert response.status_code == 401
    assert "missing" in response.json()["error"]
    assert count_rows() == count_before


def test_hubspot_v3_timestamp_header_missing(client, count_rows):
    body = body_for("hubspot")
    headers = sign("hubspot", body, SECRETS, uri=f"{BASE}/webhooks/hubspot")
    headers.pop("X-HubSpot-Request-Timestamp")
    assert post(client, "hubspot", body, headers).status_code == 401
    assert count_rows() == 0


@pytest.mark.parametrize("offset_s", [-360, 360], ids=["6-minutes-old", "6-minutes-ahead"])
def test_hubspot_stale_timestamp_rejected(client, count_rows, offset_s):
    body = body_for("hubspot")
    ts = int(time.time() * 1000) + offset_s * 1000
    headers = sign("hubspot", body, SECRETS, uri=f"{BASE}/webhooks/hubspot", timestamp_ms=ts)
    response = post(client, "hubspot", body, headers)
    assert response.status_code == 400
    assert "timestamp" in response.json()["error"]
    assert count_rows() == 0


def test_hubspot_v3_wins_over_v1(client, count_rows):
    """A valid v1 header does not rescue a bad v3 one."""
    body = body_for("hubspot")
    headers = sign("hubspot", body, SECRETS, uri=f"{BASE}/webhooks/hubspot")
    headers["X-HubSpot-Signature-v3"] = sign("hubspot", body, SECRETS, uri=f"{BASE}/elsewhere")["X-HubSpot-Signature-v3"]
    assert post(client, "hubspot", body, headers).status_code == 401
    assert count_rows() == 0


def test_hubspot_uri_with_encoded_query(client, count_rows):
    body = body_for("hubspot")
    path = "?next=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3D1&name=Jo%C3%A3o"
    headers = sign("hubspot", body, SECRETS, uri=f"{BASE}/webhooks/hubspot{path}")
    response = post(client, "hubspot", body, headers, path=path)
    assert response.status_code == 200, response.text
    assert count_rows() == 2


def test_hubspot_behind_a_proxy(client, count_rows):
    body = body_for("hubspot")
    headers = sign("hubspot", body, SECRETS, uri="https://hooks.example.com/webhooks/hubspot")
    # signed for the public URL: the request as the app sees it does not match...
    assert post(client, "hubspot", body, headers).status_code == 401
    # ...unless the proxy says where the request came in
    forwarded = headers | {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    assert post(client, "hubspot", body, forwarded).status_code == 200
    assert count_rows() == 2


def test_public_url_wins(engine, count_rows):
    secrets = WebhookSecrets(**{**SECRETS.__dict__, "public_url": "https://crm.example.com/inbound/"})
    body = body_for("hubspot")
    headers = sign("hubspot", body, secrets, uri="https://crm.example.com/inbound/webhooks/hubspot")
    headers |= {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "internal:8787"}
    with TestClient(create_app(engine, secrets), base_url=BASE) as client:
        response = post(client, "hubspot", body, headers)
    assert response.status_code == 200, response.text
    assert count_rows() == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_signed_but_malformed_body_rejected(client, count_rows, provider):
    body = b'{"not": "what the provider sends"' if provider != "shopify" else b"[1, 2]"
    headers = sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}")
    response = post(client, provider, body, headers)
    assert response.status_code == 400, response.text
    assert count_rows() == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unconfigured_provider_answers_503(engine, count_rows, provider):
    body = body_for(provider)
    headers = sign(provider, body, SECRETS, uri=f"{BASE}/webhooks/{provider}")
    with TestClient(create_app(engine, WebhookSecrets()), base_url=BASE) as client:
        response = post(client, provider, body, headers)
    assert response.status_code == 503
    assert "not configured" in response.json()["error"]
    assert count_rows() == 0


def test_secrets_from_env_and_repr_hides_them():
    secrets = WebhookSecrets.from_env({
        "HUBSPOT_CLIENT_SECRET": "a1", "SHOPIFY_WEBHOOK_SECRET": "b2", "PIPEDRIVE_WEBHOOK_USER": "u",
        "PIPEDRIVE_WEBHOOK_PASSWORD": "", "BLING_CLIENT_SECRET": "d4", "WEBHOOK_PUBLIC_URL": "https://x.example",
    })
    assert (secrets.hubspot_client_secret, secrets.shopify_webhook_secret, secrets.bling_client_secret) == ("a1", "b2", "d4")
    assert secrets.public_url == "https://x.example"
    assert not secrets.configured("pipedrive")  # the password is empty
    assert "a1" not in repr(secrets) and "b2" not in repr(secrets)


def test_get_is_not_allowed(client):
    assert client.get("/webhooks/hubspot").status_code == 405


def test_hubspot_body_of_100_events(client, count_rows):
    body = body_for("hubspot", n_events=100)
    response = post(client, "hubspot", body, sign("hubspot", body, SECRETS, uri=f"{BASE}/webhooks/hubspot"))
    assert response.json() == {"stored": 100, "duplicates": 0}
    assert count_rows() == 100
    assert len({e["eventId"] for e in json.loads(body)}) == 100
