"""Credentials removed from every error text, log line and metadata value, whatever a provider echoes.

Clients register the secrets they hold (tokens, client secrets, refresh tokens, passwords, the
Basic-auth value built from them) when they are built or refreshed; :func:`redact` replaces each
of them, and its URL-encoded and Base64 forms, with ``[redacted]``. Provider errors are redacted
when they are raised (CLI output, ``sync_state.last_metrics``, Dagster failures), and every log
record of the process when it is made (:func:`install_log_redaction`), Dagster's included.
"""

from __future__ import annotations

import base64
import logging
import threading
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
#: Shorter values are not treated as secrets (they would mask ordinary words and ids).
MIN_LENGTH = 8

_lock = threading.Lock()
_forms: tuple[str, ...] = ()


def register(*secrets: str | None) -> None:
    """Remember secrets (and the forms they travel in) so that :func:`redact` removes them."""
    global _forms
    new = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_LENGTH:
            continue
        new.update({secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode().rstrip("=")})
    with _lock:
        merged = set(_forms) | {f for f in new if len(f) >= MIN_LENGTH}
        _forms = tuple(sorted(merged, key=len, reverse=True))


def register_basic(user: str | None, password: str | None) -> None:
    """A user and password, and the HTTP Basic value made of them."""
    register(password, base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode())


def redact(text: str) -> str:
    """``text`` without any registered secret."""
    forms = _forms
    if not forms or not text:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_value(value: object) -> object:
    """A metadata value (text, or a dict/list of them) without any registered secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


_installed = False


def install_log_redaction() -> None:
    """Make every log record of the process carry its message with the secrets removed (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _forms:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format string is the logger's business
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)


__all__ = ["MASK", "install_log_redaction", "redact", "redact_value", "register", "register_basic"]
