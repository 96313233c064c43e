"""Credentials of integrations: never stored in plain text.

A secret value in the ``integrations`` table (or a rotated OAuth token in ``oauth_tokens``) is
one of two shapes:

* ``{"env": "HUBSPOT_TOKEN_LOJA_B"}``: a reference to an environment variable (or a secret
  manager that exports one), read when the integration is used;
* ``{"enc": "gAAAA..."}``: the value encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from
  the ``cryptography`` package) under the deployment's key.

The key comes from ``$CRM_SECRET_KEY`` (``crm-pipelines secret-key`` prints a new one). A
deployment without it that uses the default SQLite file gets a key file beside the database
(``.crm_pipelines.key``, readable by its owner only), so the zero-set-up demo can keep rotated
tokens; anything else asks for ``CRM_SECRET_KEY`` with a clear message.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from crm_pipelines.core.errors import ConfigurationError

SECRET_KEY_ENV = "CRM_SECRET_KEY"
KEY_FILE_NAME = ".crm_pipelines.key"
_LOCK = threading.Lock()


def new_key() -> str:
    return Fernet.generate_key().decode()


def _key_file_for(database_url: str | None) -> Path | None:
    """The key file kept beside a SQLite database file (None for server databases)."""
    if not database_url or not database_url.startswith("sqlite:///"):
        return None
    path = database_url[len("sqlite:///"):]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve().parent / KEY_FILE_NAME


@dataclass
class SecretBox:
    """Encrypts and decrypts integration secrets with the deployment's key."""

    fernet: Fernet | None
    source: str

    @classmethod
    def for_database(cls, database_url: str | None) -> SecretBox:
        key = os.environ.get(SECRET_KEY_ENV, "").strip()
        if key:
            try:
                return cls(Fernet(key.encode()), f"${SECRET_KEY_ENV}")
            except (ValueError, TypeError):
                raise ConfigurationError(f"${SECRET_KEY_ENV} is not a valid key; create one with: crm-pipelines secret-key") from None
        key_file = _key_file_for(database_url)
        if key_file is None:
            return cls(None, "none")
        with _LOCK:
            if not key_file.exists():
                key_file.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(new_key())
            return cls(Fernet(key_file.read_text().strip().encode()), str(key_file))

    def _require(self) -> Fernet:
        if self.fernet is None:
            raise ConfigurationError(
                f"storing a secret in the database needs an encryption key: set ${SECRET_KEY_ENV} "
                "(create one with: crm-pipelines secret-key), or pass the secret as a reference with --secret NAME=env:VARIABLE"
            )
        return self.fernet

    def seal(self, value: str) -> dict[str, str]:
        return {"enc": self._require().encrypt(value.encode()).decode()}

    def open(self, sealed: str) -> str:
        try:
            return self._require().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with the key from {self.source}; was ${SECRET_KEY_ENV} changed?"
            ) from None


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and ("env" in value or "enc" in value)


def resolve(value: Any, box: SecretBox, *, name: str = "value") -> Any:
    """The plain value of a stored setting: references are read, encrypted values decrypted."""
    if not isinstance(value, dict):
        return value
    if "enc" in value:
        return box.open(value["enc"])
    if "env" in value:
        found = os.environ.get(value["env"])
        if found is None or found == "":
            if "default" in value:
                return value["default"]
            raise ConfigurationError(f"{name} comes from ${value['env']}, which is not set")
        return found
    return value


def describe(value: Any) -> str:
    """How a stored value is shown to people: references by name, secrets never."""
    if isinstance(value, dict):
        if "enc" in value:
            return "(encrypted)"
        if "env" in value:
            return f"${value['env']}" + (f" (default {value['default']})" if "default" in value else "")
    return str(value)


__all__ = ["SECRET_KEY_ENV", "SecretBox", "describe", "is_reference", "new_key", "resolve"]
