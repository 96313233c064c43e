"""The Dagster resource for the local database."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from crm_pipelines.storage.engine import database_url, safe_url
from crm_pipelines.storage.store import LocalStore


class LocalDatabaseResource(dg.ConfigurableResource):
    """The local database: ``url`` if set, else $CRM_DATABASE_URL, else ./crm_pipelines.db (SQLite).

    Migrations run when a step first opens it, so a new SQLite file needs no set-up.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL; leave empty to use $CRM_DATABASE_URL or the SQLite default.", json_schema_extra={"dagster__is_secret": True})
    _store: LocalStore | None = PrivateAttr(default=None)

    def store(self) -> LocalStore:
        if self._store is None:
            self._store = LocalStore.open(self.url)
        return self._store

    def display_url(self) -> str:
        return safe_url(database_url(self.url))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None
