"""Rotated OAuth refresh tokens kept in the local database, so every process starts from the newest.

Bling answers each refresh with a new refresh token and invalidates the old one. A process that
only knew the configured ``BLING_REFRESH_TOKEN`` would fail with ``invalid_grant`` as soon as any
other process (an earlier Dagster run, the CLI) had refreshed. The newest token is saved here
right after each refresh and read before the next one, encrypted with the deployment's key
(:mod:`crm_pipelines.integrations.secrets`), in the database of the store the integration belongs
to (:meth:`TokenStore.for_engine`); a client built without one uses ``$CRM_DATABASE_URL``, or the
default SQLite file.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crm_pipelines.core.jsonutil import dumps, loads
from crm_pipelines.storage.engine import database_url

log = logging.getLogger(__name__)
_ENGINES: dict[str, object] = {}
_LOCK = threading.Lock()


class TokenStore:
    """load/save of one account's refresh token; database problems are logged, never raised."""

    def __init__(self, url: str, engine: object | None = None) -> None:
        self.url = url
        self._given = engine
        self._box = None

    @classmethod
    def from_env(cls) -> TokenStore:
        return cls(database_url())

    @classmethod
    def for_engine(cls, engine) -> TokenStore:
        """The tokens of the database ``engine`` opens (a store's, already migrated)."""
        return cls(engine.url.render_as_string(hide_password=False), engine)

    def _secrets(self):
        from crm_pipelines.integrations.secrets import SecretBox

        if self._box is None:
            self._box = SecretBox.for_database(self.url)
        return self._box

    def _engine(self):
        from crm_pipelines.storage.store import LocalStore

        if self._given is not None:
            return self._given
        with _LOCK:
            engine = _ENGINES.get(self.url)
            if engine is None:
                engine = _ENGINES[self.url] = LocalStore.open(self.url).engine
            return engine

    def require_key(self) -> None:
        """Raise before a refresh whose rotated token could not be kept (a server database without ``CRM_SECRET_KEY``)."""
        from crm_pipelines.core.errors import ConfigurationError
        from crm_pipelines.integrations.secrets import SECRET_KEY_ENV

        if self._secrets().fernet is None:
            raise ConfigurationError(
                f"the refresh token rotates at each refresh and the new one is kept, encrypted, in the local database: set ${SECRET_KEY_ENV} "
                "(create one with: crm-pipelines secret-key) on every process that syncs"
            )

    def load(self, account_key: str) -> str | None:
        from crm_pipelines.storage.schema import oauth_tokens

        try:
            with self._engine().connect() as conn:
                stored = conn.execute(select(oauth_tokens.c.refresh_token).where(oauth_tokens.c.account_key == account_key)).scalar()
            if stored is None:
                return None
            sealed = loads(stored)
            return self._secrets().open(sealed["enc"]) if isinstance(sealed, dict) and "enc" in sealed else None
        except Exception as exc:  # noqa: BLE001 - the configured token still works for a first refresh
            log.warning("could not read the stored refresh token (%s)", type(exc).__name__)
            return None

    def save(self, account_key: str, refresh_token: str) -> None:
        from crm_pipelines.storage.schema import oauth_tokens

        try:
            sealed = dumps(self._secrets().seal(refresh_token)).decode()
            with self._engine().begin() as conn:
                values = {"refresh_token": sealed, "updated_at": time.time()}
                if not conn.execute(update(oauth_tokens).where(oauth_tokens.c.account_key == account_key).values(**values)).rowcount:
                    try:
                        with conn.begin_nested():
                            conn.execute(oauth_tokens.insert().values(account_key=account_key, **values))
                    except IntegrityError:
                        conn.execute(update(oauth_tokens).where(oauth_tokens.c.account_key == account_key).values(**values))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not store the new refresh token (%s); other processes will not see it", type(exc).__name__)
