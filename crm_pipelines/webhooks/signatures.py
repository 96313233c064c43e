"""Signing and verification of webhook deliveries, one pair of functions per provider scheme.

Every ``verify_*`` function is pure, compares in constant time (``hmac.compare_digest``) and returns
``None`` for a genuine delivery or raises :class:`SignatureError`. The reason it carries is safe
to log: it never contains a secret, a received signature or the expected one. The ``sign_*``
functions produce what the provider sends; simulators and tests use them, so both sides share
one definition of each scheme.

Schemes (see PROVIDERS.md 1.8, 3.6, 4.4 and 5.7):

* HubSpot v3: ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret,
  METHOD + URI + body + timestamp)), ``X-HubSpot-Request-Timestamp`` in epoch milliseconds.
* HubSpot v1: ``X-HubSpot-Signature`` = hex(SHA-256(client secret + body)).
* Shopify: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app secret, body)).
* Pipedrive: HTTP Basic ``Authorization`` with the user and password set on the subscription.
* Bling: ``X-Bling-Signature-256`` = ``sha256=`` + hex(HMAC-SHA256(client secret, body)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import unquote

HUBSPOT_MAX_SKEW_MS = 300_000

# The characters HubSpot's request-validation guide lists as decoded before signing a v3 URI.
_HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}


class SignatureError(Exception):
    """A delivery whose signature or credentials are missing or wrong; ``reason`` is safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StaleTimestampError(SignatureError):
    """A signed timestamp outside the accepted window (a replay, or a badly skewed clock)."""


def _utf8(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _equal(received: str, expected: str) -> bool:
    """Constant-time comparison that tolerates non-ASCII input (compared as UTF-8 bytes)."""
    return hmac.compare_digest(_utf8(received), _utf8(expected))


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(_utf8(secret), message, hashlib.sha256).digest()


def _require(value: str | None, header: str) -> str:
    if value is None or not value.strip():
        raise SignatureError(f"missing {header} header")
    return value.strip()


# --- HubSpot v3 -------------------------------------------------------------------------------


def hubspot_v3_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the full URL with its percent-encoded characters decoded."""
    return unquote(uri)


def _hubspot_v3_uri_candidates(uri: str) -> list[str]:
    """Fully decoded (PROVIDERS.md) first, then only the characters HubSpot's guide lists."""
    partial = uri
    for encoded, decoded in _HUBSPOT_DECODED.items():
        partial = partial.replace(encoded, decoded).replace(encoded.lower(), decoded)
    full = hubspot_v3_uri(uri)
    return [full] if partial == full else [full, partial]


def _hubspot_v3_message(method: str, uri: str, body: bytes, timestamp: str) -> bytes:
    return method.upper().encode("utf-8") + uri.encode("utf-8") + body + timestamp.encode("utf-8")


def sign_hubspot_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp_ms: int | str) -> str:
    """The ``X-HubSpot-Signature-v3`` header for a request to ``uri`` (the full URL as called)."""
    message = _hubspot_v3_message(method, hubspot_v3_uri(uri), body, str(timestamp_ms))
    return base64.b64encode(_hmac_sha256(client_secret, message)).decode("ascii")


def verify_hubspot_v3(
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now_ms: int | None = None,
    max_skew_ms: int = HUBSPOT_MAX_SKEW_MS,
) -> None:
    """Check a v3 signature and its timestamp (at most ``max_skew_ms`` old or ahead)."""
    signature = _require(signature, "X-HubSpot-Signature-v3")
    timestamp = _require(timestamp, "X-HubSpot-Request-Timestamp")
    # ASCII digits only (str.isdigit accepts superscripts and other scripts' digits), and a length
    # an epoch in milliseconds can have (int() refuses more than 4,300 digits).
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 16:
        raise SignatureError("X-HubSpot-Request-Timestamp is not an epoch-milliseconds integer")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    age_ms = now_ms - int(timestamp)
    if age_ms > max_skew_ms:
        raise StaleTimestampError(f"timestamp is {age_ms // 1000} s old (limit {max_skew_ms // 1000} s)")
    if -age_ms > max_skew_ms:
        raise StaleTimestampError(f"timestamp is {-age_ms // 1000} s in the future (limit {max_skew_ms // 1000} s)")
    matched = False
    for candidate in _hubspot_v3_uri_candidates(uri):
        expected = _hmac_sha256(client_secret, _hubspot_v3_message(method, candidate, body, timestamp))
        matched |= _equal(signature, base64.b64encode(expected).decode("ascii"))
    if not matched:
        raise SignatureError("X-HubSpot-Signature-v3 does not match")


# --- HubSpot v1 -------------------------------------------------------------------------------


def sign_hubspot_v1(client_secret: str, body: bytes) -> str:
    """The ``X-HubSpot-Signature`` header (version v1) for ``body``."""
    return hashlib.sha256(_utf8(client_secret) + body).hexdigest()


def verify_hubspot_v1(client_secret: str, body: bytes, signature: str | None, version: str | None) -> None:
    """Check a v1 signature; the version header must say ``v1``."""
    signature = _require(signature, "X-HubSpot-Signature")
    version = _require(version, "X-HubSpot-Signature-Version")
    if version.lower() != "v1":
        raise SignatureError(f"unsupported X-HubSpot-Signature-Version {version[:8]!r}")
    if not _equal(signature.lower(), sign_hubspot_v1(client_secret, body)):
        raise SignatureError("X-HubSpot-Signature does not match")


# --- Shopify ----------------------------------------------------------------------------------


def sign_shopify(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` header for ``body``."""
    return base64.b64encode(_hmac_sha256(secret, body)).decode("ascii")


def verify_shopify(secret: str, body: bytes, signature: str | None) -> None:
    """Check ``X-Shopify-Hmac-Sha256`` against the raw body."""
    signature = _require(signature, "X-Shopify-Hmac-Sha256")
    if not _equal(signature, sign_shopify(secret, body)):
        raise SignatureError("X-Shopify-Hmac-Sha256 does not match")


# --- Pipedrive --------------------------------------------------------------------------------


def sign_pipedrive(user: str, password: str) -> str:
    """The ``Authorization`` header Pipedrive sends when a subscription has HTTP auth set."""
    return "Basic " + base64.b64encode(_utf8(f"{user}:{password}")).decode("ascii")


def verify_pipedrive(user: str, password: str, authorization: str | None) -> None:
    """Check the HTTP Basic credentials of a delivery."""
    authorization = _require(authorization, "Authorization")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise SignatureError("Authorization is not HTTP Basic")
    try:
        received = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Authorization is not valid base64") from None
    if not hmac.compare_digest(received, _utf8(f"{user}:{password}")):
        raise SignatureError("Authorization credentials do not match")


# --- Bling ------------------------------------------------------------------------------------


def sign_bling(client_secret: str, body: bytes) -> str:
    """The ``X-Bling-Signature-256`` header for ``body``."""
    return "sha256=" + _hmac_sha256(client_secret, body).hex()


def verify_bling(client_secret: str, body: bytes, signature: str | None) -> None:
    """Check ``X-Bling-Signature-256`` (``sha256=<hex>``) against the raw body."""
    signature = _require(signature, "X-Bling-Signature-256")
    prefix, sep, digest = signature.partition("=")
    if not sep or prefix.strip().lower() != "sha256":
        raise SignatureError("X-Bling-Signature-256 is not of the form sha256=<hex>")
    if not _equal(digest.strip().lower(), _hmac_sha256(client_secret, body).hex()):
        raise SignatureError("X-Bling-Signature-256 does not match")
