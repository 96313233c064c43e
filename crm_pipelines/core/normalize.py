"""Normalization of identity fields: e-mails, domains, Brazilian documents (CPF/CNPJ)."""

from __future__ import annotations

import re
import unicodedata

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


#: Kept although they are control characters: tabs and line breaks are content, and a NUL is
#: kept so that the record is rejected with the reason (no database column holds it everywhere)
#: instead of being changed silently.
_KEPT_CONTROLS = frozenset("\t\n\r\x00")


def clean_text(value: object, max_length: int | None = None) -> str | None:
    """Strip surrounding space and terminal control characters; empty becomes None.

    Everything else is kept as the sender wrote it: accents, line breaks, zero-width joiners and
    other format characters (emoji sequences), characters newer than this Python's Unicode tables.
    """
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if not text.isprintable():
        # Only text holding a control, format or separator character needs the per-character pass.
        text = "".join(ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch) != "Cc")
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if not text:
        return None
    if max_length is not None:
        text = text[:max_length]
    return text


def normalize_email(value: object) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    text = text.lower()
    return text if _EMAIL_RE.match(text) else None


def is_valid_email(value: object) -> bool:
    text = clean_text(value)
    return text is not None and bool(_EMAIL_RE.match(text))


def checked_email(value: object) -> str | None:
    """A provider's or a local e-mail, normalized; None when empty; ``ValueError`` when it is not an address."""
    if clean_text(value) is None:
        return None
    email = normalize_email(value)
    if email is None:
        raise ValueError(f"invalid email {clean_text(value)!r}")
    return email


def normalize_domain(value: object) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    text = text.lower()
    text = re.sub(r"^[a-z]+://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0]
    if text.startswith("www."):
        text = text[4:]
    return text.strip(".") or None


def _digits(value: object) -> str:
    return re.sub(r"\D", "", str(value or ""))


def _cpf_check(digits: str) -> bool:
    if len(digits) != 11 or digits == digits[0] * 11:
        return False
    for size in (9, 10):
        total = sum(int(d) * w for d, w in zip(digits[:size], range(size + 1, 1, -1)))
        check = (total * 10) % 11 % 10
        if check != int(digits[size]):
            return False
    return True


def _cnpj_check(digits: str) -> bool:
    if len(digits) != 14 or digits == digits[0] * 14:
        return False
    weights = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for size in (12, 13):
        w = weights if size == 12 else [6] + weights
        total = sum(int(d) * k for d, k in zip(digits[:size], w))
        check = 0 if total % 11 < 2 else 11 - total % 11
        if check != int(digits[size]):
            return False
    return True


def normalize_document(value: object) -> str | None:
    """Digits of a valid CPF (11) or CNPJ (14); None when empty.

    Raises ``ValueError`` with the reason when a document is present but invalid, so the caller
    can report it instead of dropping it.
    """
    text = clean_text(value)
    if text is None:
        return None
    digits = _digits(text)
    if len(digits) == 11 and _cpf_check(digits):
        return digits
    if len(digits) == 14 and _cnpj_check(digits):
        return digits
    kind = "CPF" if len(digits) == 11 else "CNPJ" if len(digits) == 14 else "CPF/CNPJ"
    raise ValueError(f"invalid {kind} {text!r}: check digits do not match" if kind != "CPF/CNPJ" else f"invalid CPF/CNPJ {text!r}: expected 11 or 14 digits")
