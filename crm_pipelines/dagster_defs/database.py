"""The Dagster resource for the local database."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from crm_pipelines.storage.conflicts import ConflictPolicy
from crm_pipelines.storage.engine import database_url, safe_url
from crm_pipelines.storage.quota import QuotaBudgets
from crm_pipelines.storage.store import LocalStore


class LocalDatabaseResource(dg.ConfigurableResource):
    """The local database: ``url`` if set, else $CRM_DATABASE_URL, else ./crm_pipelines.db (SQLite).

    Migrations run when a step first opens it, so a new SQLite file needs no set-up.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL; leave empty to use $CRM_DATABASE_URL or the SQLite default.", json_schema_extra={"dagster__is_secret": True})
    conflict_strategies: str | None = Field(default=None, description="Who wins when a record changed locally and at the provider: e.g. 'hubspot.contacts=manual,*=last_modified' (provider_wins, local_wins, last_modified, manual). Default: $CRM_CONFLICT_STRATEGIES, else provider_wins.")
    shared_api_budgets: bool = Field(default=True, description="Keep API rate budgets in this database so every run process shares one budget per provider account.")
    _store: LocalStore | None = PrivateAttr(default=None)
    _budgets: QuotaBudgets | None = PrivateAttr(default=None)

    def store(self) -> LocalStore:
        if self._store is None:
            self._store = LocalStore.open(self.url, conflict_policy=ConflictPolicy.from_env(self.conflict_strategies))
        return self._store

    def budgets(self) -> QuotaBudgets:
        if self._budgets is None:
            self._budgets = QuotaBudgets(self.store().engine)
        return self._budgets

    def display_url(self) -> str:
        return safe_url(database_url(self.url))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None
            self._budgets = None
