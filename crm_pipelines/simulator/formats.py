"""Value formats several provider APIs share: the e-mail check of their validations, and the local
date-times (``YYYY-MM-DD HH:MM:SS`` in the account's time zone) Brazilian ERPs show and filter by."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

#: What the providers accept as an e-mail address: one ``@``, no blanks, a dotted domain.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_LOCAL_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")


def local_text(epoch_s: float, tz: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``tz``."""
    return datetime.fromtimestamp(epoch_s, tz).strftime("%Y-%m-%d %H:%M:%S")


def parse_local(text: str, tz: tzinfo, *, end: bool) -> int:
    """A local date or date-time filter value as epoch seconds (a bare date covers its whole day)."""
    found = _LOCAL_RE.match(text.strip())
    if not found:
        raise ValueError(text)
    y, m, d, *clock = found.groups()
    hms = (23, 59, 59) if end and clock[0] is None else (int(part or 0) for part in clock)
    return int(datetime(int(y), int(m), int(d), *hms, tzinfo=tz).timestamp())
