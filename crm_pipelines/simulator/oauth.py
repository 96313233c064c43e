"""The refresh-token grant of the simulated OAuth token endpoints (Bling, Salesforce).

:func:`refresh_grant` reads the form and the client credentials and runs the checks in the
provider's order; the provider words each failure and issues (and maybe rotates) the tokens.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs


def _basic(header: str) -> tuple[str, str]:
    try:
        given = base64.b64decode(header[6:].strip()).decode() if header.lower().startswith("basic ") else ""
    except ValueError:
        given = ""
    return given.partition(":")[::2]


def refresh_grant(sim: Any, request: Any, held: Callable[[Any], set[str]], client: tuple[str, str], checks: Iterable[str], *,
                  basic: bool = False) -> tuple[str | None, Any, str | None]:
    """Check a refresh-token grant sent to ``sim``: ``client`` is the expected client id and secret
    (sent with HTTP Basic when ``basic``, else in the form), ``held`` an account's refresh tokens.
    The checks: ``client`` (id and secret together), ``client_id``, ``client_secret``, ``grant_type``
    (must be ``refresh_token``) and ``refresh_token`` (held by an account).
    Returns the first of ``checks`` that fails (``None`` when all pass), the account holding the
    refresh token and that token."""
    form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
    client_id, secret = _basic(request.header("Authorization") or "") if basic else (form.get("client_id"), form.get("client_secret"))
    refresh = form.get("refresh_token")
    account = next((a for a in sim.accounts.values() if refresh in held(a)), None)
    failed = {"client": (client_id, secret) != client, "client_id": client_id != client[0], "client_secret": secret != client[1],
              "grant_type": form.get("grant_type") != "refresh_token", "refresh_token": account is None}
    return next((check for check in checks if failed[check]), None), account, refresh
