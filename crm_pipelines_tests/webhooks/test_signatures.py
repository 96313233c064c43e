"""Each signature scheme: genuine accepted, forged/altered/stale/missing rejected, reasons safe to log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from crm_pipelines.webhooks import signatures as sig
from crm_pipelines.webhooks.signatures import SignatureError, StaleTimestampError

SECRET = "s3cr3t-client-secret"
BODY = b'[{"eventId":100,"subscriptionType":"contact.creation","objectId":512,"occurredAt":1735689600000}]'
URI = "https://hooks.example.com/webhooks/hubspot?portal=62515"


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_safe(exc: SignatureError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in exc.reason and secret not in str(exc)


# --- HubSpot v3 -------------------------------------------------------------------------------


def test_hubspot_v3_matches_the_documented_formula():
    ts = 1735689600000
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), b"POST" + URI.encode() + BODY + str(ts).encode(), hashlib.sha256).digest()
    ).decode()
    assert sig.sign_hubspot_v3(SECRET, "POST", URI, BODY, ts) == expected


def test_hubspot_v3_genuine_accepted():
    ts = now_ms()
    signature = sig.sign_hubspot_v3(SECRET, "POST", URI, BODY, ts)
    assert sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, str(ts)) is None


@pytest.mark.parametrize(
    "secret, method, uri, body",
    [
        ("wrong-secret", "POST", URI, BODY),
        (SECRET, "POST", URI, BODY.replace(b"512", b"513")),
        (SECRET, "POST", URI.replace("62515", "1"), BODY),
        (SECRET, "PUT", URI, BODY),
        (SECRET, "POST", URI.replace("https", "http"), BODY),
    ],
    ids=["wrong-secret", "altered-body", "altered-query", "other-method", "other-scheme"],
)
def test_hubspot_v3_forged_rejected(secret, method, uri, body):
    ts = now_ms()
    signature = sig.sign_hubspot_v3(secret, method, uri, body, ts)
    with pytest.raises(SignatureError) as info:
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, str(ts))
    assert not isinstance(info.value, StaleTimestampError)
    assert_safe(info.value, SECRET, signature)


def test_hubspot_v3_stale_and_future_timestamps_rejected():
    for offset_ms in (-6 * 60 * 1000, 6 * 60 * 1000):
        ts = now_ms() + offset_ms
        signature = sig.sign_hubspot_v3(SECRET, "POST", URI, BODY, ts)
        with pytest.raises(StaleTimestampError) as info:
            sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, str(ts))
        assert_safe(info.value, SECRET, signature)
    # just inside the window on both sides
    for offset_ms in (-299_000, 299_000):
        ts = now_ms() + offset_ms
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, sig.sign_hubspot_v3(SECRET, "POST", URI, BODY, ts), str(ts))


def test_hubspot_v3_missing_or_bad_headers_rejected():
    ts = now_ms()
    signature = sig.sign_hubspot_v3(SECRET, "POST", URI, BODY, ts)
    with pytest.raises(SignatureError, match="missing X-HubSpot-Signature-v3"):
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, None, str(ts))
    with pytest.raises(SignatureError, match="missing X-HubSpot-Request-Timestamp"):
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, None)
    with pytest.raises(SignatureError, match="epoch-milliseconds"):
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, "yesterday")
    with pytest.raises(SignatureError):
        sig.verify_hubspot_v3(SECRET, "POST", URI, BODY, "não-ascii ✓", str(ts))


def test_hubspot_v3_uri_is_signed_decoded():
    encoded = "https://hooks.example.com/webhooks/hubspot?redirect=https%3A%2F%2Fx.com%2Fa%3Fb%3D1&name=Jo%C3%A3o"
    decoded = "https://hooks.example.com/webhooks/hubspot?redirect=https://x.com/a?b=1&name=João"
    ts = now_ms()
    # The provider signs the decoded URI; the receiver sees the encoded one.
    message = b"POST" + decoded.encode() + BODY + str(ts).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
    sig.verify_hubspot_v3(SECRET, "POST", encoded, BODY, signature, str(ts))
    assert sig.sign_hubspot_v3(SECRET, "POST", encoded, BODY, ts) == signature


def test_hubspot_v3_accepts_the_guide_s_partial_decoding():
    """HubSpot's guide decodes only a listed set of characters (e.g. not %20); both forms verify."""
    encoded = "https://hooks.example.com/webhooks/hubspot?q=a%20b%3Ac"
    partial = "https://hooks.example.com/webhooks/hubspot?q=a%20b:c"
    ts = now_ms()
    message = b"POST" + partial.encode() + BODY + str(ts).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
    sig.verify_hubspot_v3(SECRET, "POST", encoded, BODY, signature, str(ts))


# --- HubSpot v1 -------------------------------------------------------------------------------


def test_hubspot_v1():
    signature = sig.sign_hubspot_v1(SECRET, BODY)
    assert signature == hashlib.sha256(SECRET.encode() + BODY).hexdigest()
    sig.verify_hubspot_v1(SECRET, BODY, signature, "v1")
    sig.verify_hubspot_v1(SECRET, BODY, signature.upper(), "V1")
    for forged, body in ((sig.sign_hubspot_v1("wrong", BODY), BODY), (signature, BODY + b" ")):
        with pytest.raises(SignatureError) as info:
            sig.verify_hubspot_v1(SECRET, body, forged, "v1")
        assert_safe(info.value, SECRET, signature)
    with pytest.raises(SignatureError, match="missing X-HubSpot-Signature "):
        sig.verify_hubspot_v1(SECRET, BODY, None, "v1")
    with pytest.raises(SignatureError, match="missing X-HubSpot-Signature-Version"):
        sig.verify_hubspot_v1(SECRET, BODY, signature, None)
    with pytest.raises(SignatureError, match="unsupported"):
        sig.verify_hubspot_v1(SECRET, BODY, signature, "v2")


# --- Shopify ----------------------------------------------------------------------------------


def test_shopify():
    body = b'{"id":706405506930370084,"email":"bob@biller.com"}'
    signature = sig.sign_shopify(SECRET, body)
    assert signature == base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    sig.verify_shopify(SECRET, body, signature)
    with pytest.raises(SignatureError) as info:
        sig.verify_shopify(SECRET, body, sig.sign_shopify("wrong", body))
    assert_safe(info.value, SECRET, signature)
    with pytest.raises(SignatureError):
        sig.verify_shopify(SECRET, body.replace(b"bob", b"eve"), signature)
    with pytest.raises(SignatureError, match="missing"):
        sig.verify_shopify(SECRET, body, "")


# --- Pipedrive --------------------------------------------------------------------------------


def test_pipedrive():
    header = sig.sign_pipedrive("hook-user", "hook-pass:with:colons")
    assert header == "Basic " + base64.b64encode(b"hook-user:hook-pass:with:colons").decode()
    sig.verify_pipedrive("hook-user", "hook-pass:with:colons", header)
    sig.verify_pipedrive("hook-user", "hook-pass:with:colons", header.replace("Basic", "basic"))
    for bad in (sig.sign_pipedrive("hook-user", "wrong"), sig.sign_pipedrive("other", "hook-pass:with:colons"),
                "Bearer abc", "Basic", "Basic !!!notbase64"):
        with pytest.raises(SignatureError) as info:
            sig.verify_pipedrive("hook-user", "hook-pass:with:colons", bad)
        assert_safe(info.value, "hook-pass:with:colons")
    with pytest.raises(SignatureError, match="missing Authorization"):
        sig.verify_pipedrive("hook-user", "hook-pass", None)


# --- Bling ------------------------------------------------------------------------------------


def test_bling():
    body = b'{"eventId":"01JABC","event":"order.updated","data":{"id":123}}'
    header = sig.sign_bling(SECRET, body)
    assert header == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sig.verify_bling(SECRET, body, header)
    sig.verify_bling(SECRET, body, header.upper().replace("SHA256=", "sha256="))
    for bad_header, bad_body in ((sig.sign_bling("wrong", body), body), (header, body + b"\n"),
                                 (header.removeprefix("sha256="), body), ("sha1=" + header[7:], body)):
        with pytest.raises(SignatureError) as info:
            sig.verify_bling(SECRET, bad_body, bad_header)
        assert_safe(info.value, SECRET, header)
    with pytest.raises(SignatureError, match="missing"):
        sig.verify_bling(SECRET, body, None)
