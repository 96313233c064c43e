"""Normalization of identity fields: e-mails, domains, Brazilian documents (CPF/CNPJ), phones (E.164), names."""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


#: Kept although they are control characters: tabs and line breaks are content, and a NUL is
#: kept so that the record is rejected with the reason (no database column holds it everywhere)
#: instead of being changed silently.
_KEPT_CONTROLS = frozenset("\t\n\r\x00")


def clean_text(value: object) -> str | None:
    """Strip surrounding space and terminal control characters; empty becomes None.

    Everything else is kept as the sender wrote it: accents, line breaks, zero-width joiners and
    other format characters (emoji sequences), characters newer than this Python's Unicode tables.
    Never shortened: a value longer than its column is rejected with its reason before any write
    (:mod:`crm_pipelines.storage.validate`), not cut.
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
    return text or None


def clean_name(value: object) -> str | None:
    """A name with control characters removed and every run of whitespace made one space."""
    text = clean_text(value)
    if text is None:
        return None
    return " ".join(text.split())


def normalize_phone(value: object, region: str = "BR") -> str | None:
    """A phone number in E.164 (``+5511987654321``); None when empty.

    A number without a country code is read as one of ``region`` (the store's); numbers of that
    region must be valid in its numbering plan, numbers of another country of a possible length.
    Raises ``ValueError`` naming the value as written when it is not a valid number (or carries an
    extension, which E.164 has no place for), so the caller reports it instead of changing it.
    """
    text = clean_text(value)
    if text is None:
        return None
    return _e164(text, region.upper())


@functools.lru_cache(maxsize=131_072)  # an export compares every local row each run: its phones are parsed once
def _e164(text: str, region: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"invalid phone {text!r}: not a phone number") from None
    if number.extension:
        raise ValueError(f"invalid phone {text!r}: has an extension, which E.164 cannot hold")
    if not phonenumbers.is_valid_number(number) and not _foreign_and_possible(number, region):
        raise ValueError(f"invalid phone {text!r}: not a valid number (region {region})")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # A number of zeros only ("+31 0 000000") loses digits when written in E.164: not a number.
    if not _reads_back(number, e164):
        raise ValueError(f"invalid phone {text!r}: not a valid number (region {region})")
    return e164


def forget_parsed_phones() -> None:
    """Empty the cache of phones already parsed (a benchmark's rounds each start as a new process)."""
    _e164.cache_clear()


def _reads_back(number: phonenumbers.PhoneNumber, e164: str) -> bool:
    """Whether ``e164`` (``number`` in E.164) is read back as itself.

    Read again, E.164 text can only differ where its national part starts with a zero or with
    what the country's plan strips as a national prefix; every other number (nearly all) is
    settled without parsing it a second time.
    """
    if number.national_number == 0:
        return False
    national = phonenumbers.national_significant_number(number)
    if not national.startswith("0"):
        code = number.country_code
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, phonenumbers.region_code_for_country_code(code))
        prefix = metadata.national_prefix_for_parsing if metadata is not None else None
        if metadata is not None and (not prefix or re.match(prefix, national) is None):
            return True
    return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.E164) == e164


def phone_digits(e164: str) -> set[str]:
    """The digits the number ``e164`` is written with, however punctuated: with the country code,
    national (as the store's region writes it, with its trunk prefix or without)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return {re.sub(r"\D", "", e164)}
    national = re.sub(r"\D", "", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    significant = phonenumbers.national_significant_number(number)
    return {e164[1:], national, significant, "0" + significant}


def _foreign_and_possible(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """A number written with another country's code, of a length that country uses.

    The store's own region is checked against the full numbering plan; for other countries the
    length is enough (their plans change more often than the library's copy of them, and a number
    written with its country code is unambiguous).
    """
    return number.country_code != phonenumbers.country_code_for_region(region) and phonenumbers.is_possible_number(number)


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
