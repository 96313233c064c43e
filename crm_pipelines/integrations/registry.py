"""Stores and integrations kept in the local database: add, list, disable, remove, and open one.

Adding a store or an integration is a row, not code: the Dagster layer lists integrations as
dynamic partitions and the schedule syncs every active one. An integration's connection holds the
values of its provider resource's fields; credentials only as a reference to an environment
variable or encrypted (:mod:`crm_pipelines.integrations.secrets`).

The single-account set-up keeps working: the ``default`` store has, per provider, an integration
whose connection is read from the provider's environment variables (``{"from_env": true}``),
created the first time that provider is used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from dagster import EnvVar
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.redact import register
from crm_pipelines.integrations.model import (
    DEFAULT_INTEGRATION_KEY,
    DEFAULT_STORE_KEY,
    Integration,
    IntegrationSettings,
    Store,
    check_key,
)
from crm_pipelines.integrations.secrets import SecretBox, is_reference, resolve
from crm_pipelines.providers.registry import PROVIDERS, ProviderPlugin, plugin
from crm_pipelines.storage.schema import (
    DEFAULT_STORE_ID,
    conflicts,
    export_intents,
    external_links,
    integrations,
    rejects,
    stores,
    sync_state,
    webhooks,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _plugin(provider: str) -> ProviderPlugin:
    try:
        return plugin(provider)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


class IntegrationRegistry:
    """The ``stores`` and ``integrations`` tables of one database."""

    def __init__(self, engine: Engine, box: SecretBox | None = None) -> None:
        self.engine = engine
        self._box = box
        self._defaults: dict[str, Integration] = {}
        self._lock = threading.Lock()

    @property
    def box(self) -> SecretBox:
        """The deployment's key, loaded (or, beside a SQLite file, created) when a secret is first sealed or opened."""
        if self._box is None:
            self._box = SecretBox.for_database(self.engine.url.render_as_string(hide_password=False))
        return self._box

    # ------------------------------------------------------------------ stores

    def stores(self) -> list[Store]:
        with self.engine.connect() as conn:
            return [Store(r.id, r.key, r.name, r.phone_region) for r in conn.execute(select(stores).order_by(stores.c.id))]

    def store(self, key: str) -> Store:
        with self.engine.connect() as conn:
            row = conn.execute(select(stores).where(stores.c.key == key)).first()
        if row is None:
            known = ", ".join(s.key for s in self.stores()) or "none"
            raise ConfigurationError(f"unknown store {key!r} (known: {known}); add it with: crm-pipelines stores add {key}")
        return Store(row.id, row.key, row.name, row.phone_region)

    def add_store(self, key: str, name: str | None = None, *, phone_region: str = "BR") -> Store:
        check_key("store", key)
        region = (phone_region or "BR").upper()
        if len(region) != 2 or not region.isalpha():
            raise ConfigurationError(f"phone region {phone_region!r} must be a two-letter country code such as BR or US")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(stores).values(key=key, name=name or key, phone_region=region, created_at=utcnow()))
        except IntegrityError:
            raise ConfigurationError(f"store {key!r} already exists") from None
        return self.store(key)

    def ensure_store(self, key: str, name: str | None = None) -> Store:
        try:
            return self.store(key)
        except ConfigurationError:
            try:
                return self.add_store(key, name)
            except ConfigurationError:
                return self.store(key)  # created at the same moment by another process

    # ------------------------------------------------------------------ integrations

    def _row_to_integration(self, row, store_key: str) -> Integration:
        return Integration(
            id=row.id, store_id=row.store_id, store_key=store_key, provider=row.provider, key=row.key,
            account_id=row.account_id, active=bool(row.active), connection=dict(row.connection or {}),
            settings=IntegrationSettings.parse(row.settings),
        )

    def _query(self, *conditions) -> list[Integration]:
        query = (
            select(integrations, stores.c.key.label("store_key"))
            .join(stores, stores.c.id == integrations.c.store_id)
            .where(*conditions)
            .order_by(integrations.c.provider, integrations.c.id)
        )
        with self.engine.connect() as conn:
            return [self._row_to_integration(row, row.store_key) for row in conn.execute(query)]

    def list(self, *, store: str | None = None, provider: str | None = None, active_only: bool = False) -> list[Integration]:
        conditions = []
        if store is not None:
            conditions.append(integrations.c.store_id == self.store(store).id)
        if provider is not None:
            conditions.append(integrations.c.provider == _plugin(provider).name)
        if active_only:
            conditions.append(integrations.c.active.is_(True))
        return self._query(*conditions)

    def get(self, provider: str, key: str) -> Integration:
        found = self._query(integrations.c.provider == provider, integrations.c.key == key)
        if not found:
            if key == DEFAULT_INTEGRATION_KEY:
                return self.default_for(provider)
            known = ", ".join(i.key for i in self.list(provider=provider)) or "none"
            raise ConfigurationError(f"{provider} has no integration {key!r} (known: {known}); list them with: crm-pipelines integrations list")
        return found[0]

    def by_id(self, integration_id: int) -> Integration:
        found = self._query(integrations.c.id == integration_id)
        if not found:
            raise ConfigurationError(f"no integration with id {integration_id}")
        return found[0]

    def for_store(self, provider: str, store: str) -> Integration:
        """The store's integration at ``provider`` (an error when it has none, or several)."""
        if store == DEFAULT_STORE_KEY:
            found = self.list(store=store, provider=provider)
            return found[0] if len(found) == 1 else self.default_for(provider)
        found = self.list(store=store, provider=provider)
        if not found:
            raise ConfigurationError(f"store {store!r} has no {provider} integration; add one with: crm-pipelines integrations add {provider} --store {store} ...")
        if len(found) > 1:
            raise ConfigurationError(f"store {store!r} has {len(found)} {provider} integrations ({', '.join(i.key for i in found)}); name one with --integration")
        return found[0]

    def by_account(self, provider: str, account_id: str) -> list[Integration]:
        """Active integrations on one provider account (webhook routing)."""
        return self._query(integrations.c.provider == provider, integrations.c.account_id == str(account_id), integrations.c.active.is_(True))

    def default_for(self, provider: str) -> Integration:
        """The default store's environment-configured integration of ``provider`` (created on first use)."""
        name = _plugin(provider).name
        with self._lock:
            cached = self._defaults.get(name)
        if cached is not None:
            return cached
        found = self._query(integrations.c.provider == name, integrations.c.store_id == DEFAULT_STORE_ID, integrations.c.key == DEFAULT_INTEGRATION_KEY)
        if not found:
            self.ensure_store(DEFAULT_STORE_KEY, "Default store")
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(integrations).values(
                        store_id=DEFAULT_STORE_ID, provider=name, key=DEFAULT_INTEGRATION_KEY, active=True,
                        connection={"from_env": True}, settings={}, created_at=now, updated_at=now,
                    ))
            except IntegrityError:
                pass  # another process created it first
            found = self._query(integrations.c.provider == name, integrations.c.key == DEFAULT_INTEGRATION_KEY)
        with self._lock:
            self._defaults[name] = found[0]
        return found[0]

    def resolve_target(self, provider: str, *, store: str | None = None, key: str | None = None) -> Integration:
        """The integration a command names: ``--integration`` wins, then ``--store``, then the default."""
        if key:
            return self.get(_plugin(provider).name, key)
        if store:
            return self.for_store(_plugin(provider).name, store)
        return self.default_for(provider)

    def add(
        self,
        provider: str,
        *,
        store: str = DEFAULT_STORE_KEY,
        key: str | None = None,
        account_id: str | None = None,
        connection: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        active: bool = True,
    ) -> Integration:
        """Register a store's account at ``provider``; secrets in ``connection`` are encrypted unless given as references."""
        found = _plugin(provider)
        owner = self.store(store) if store != DEFAULT_STORE_KEY else self.ensure_store(DEFAULT_STORE_KEY, "Default store")
        key = check_key("integration", key or owner.key)
        stored_connection = self._check_connection(found, connection or {})
        stored_settings = IntegrationSettings.parse(settings).model_dump(exclude_defaults=True)
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(integrations).values(
                    store_id=owner.id, provider=found.name, key=key, account_id=str(account_id) if account_id else None, active=active,
                    connection=stored_connection, settings=stored_settings, created_at=now, updated_at=now,
                ))
        except IntegrityError:
            raise ConfigurationError(f"{found.name} already has an integration {key!r}; choose another --key") from None
        return self.get(found.name, key)

    def _check_connection(self, found: ProviderPlugin, connection: dict[str, Any]) -> dict[str, Any]:
        """Known fields only, rate settings within the provider's published limits, secrets sealed."""
        model = found.resource_type()
        secrets = set(found.secret_fields())
        stored: dict[str, Any] = {}
        for name, value in connection.items():
            if name not in model.model_fields:
                raise ConfigurationError(f"{found.title} has no setting {name!r}; known: {', '.join(sorted(model.model_fields))}")
            if name in found.rate_limits and not is_reference(value):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise ConfigurationError(f"{found.title} {name} must be a number, not {value!r}") from None
                if number > found.rate_limits[name]:
                    raise ConfigurationError(f"{found.title} {name}={value} is above the provider's published limit ({found.rate_limits[name]:g})")
            if name in secrets and not is_reference(value):
                value = self.box.seal(str(value))
            stored[name] = value
        missing = [n for n, info in model.model_fields.items() if info.is_required() and n not in stored]
        if missing:
            raise ConfigurationError(f"{found.title} needs {', '.join(missing)} (give each as --secret NAME=env:VARIABLE or --secret NAME=VALUE)")
        return stored

    def update(self, integration: Integration, *, active: bool | None = None, settings: dict[str, Any] | None = None,
               connection: dict[str, Any] | None = None, account_id: str | None = None) -> Integration:
        values: dict[str, Any] = {"updated_at": utcnow()}
        if active is not None:
            values["active"] = active
        if settings is not None:
            merged = integration.settings.model_dump(exclude_defaults=True) | settings
            values["settings"] = IntegrationSettings.parse(merged).model_dump(exclude_defaults=True)
        if connection is not None:
            if integration.from_env:
                raise ConfigurationError(f"{integration.label} reads its connection from environment variables; change those instead")
            merged_connection = dict(integration.connection) | connection
            values["connection"] = self._check_connection(_plugin(integration.provider), merged_connection)
        if account_id is not None:
            values["account_id"] = account_id or None
        with self.engine.begin() as conn:
            conn.execute(update(integrations).where(integrations.c.id == integration.id).values(**values))
        with self._lock:
            self._defaults.pop(integration.provider, None)
        return self.by_id(integration.id)

    def remove(self, integration: Integration) -> dict[str, int]:
        """Delete the integration and everything synced for it (links, state, rejects, intents, conflicts, inbox rows).

        The store's local records stay: they belong to the store, not to the provider account.
        """
        removed: dict[str, int] = {}
        with self.engine.begin() as conn:
            for table in (external_links, sync_state, rejects, export_intents, conflicts, webhooks):
                removed[table.name] = conn.execute(delete(table).where(table.c.integration_id == integration.id)).rowcount
            conn.execute(delete(integrations).where(integrations.c.id == integration.id))
        with self._lock:
            self._defaults.pop(integration.provider, None)
        return removed

    # ------------------------------------------------------------------ opening one

    def connection_values(self, integration: Integration) -> dict[str, Any]:
        """The connection's plain values (references read, secrets decrypted): for building the client only."""
        return {name: resolve(value, self.box, name=f"{integration.label} {name}") for name, value in integration.connection.items()}

    def resource(self, integration: Integration) -> Any:
        """The provider's resource for this integration, configured and ready to open readers and writers.

        Built directly (its values resolved here), not through Dagster's resource initialization,
        which creates a throwaway instance each time: the schedule opens hundreds of these a tick.
        """
        found = _plugin(integration.provider)
        model = found.resource_type()
        if integration.from_env:
            values = _env_template(found)
            missing = _missing_env(found, values)
            if missing:
                raise ConfigurationError(f"{integration.label} is not configured; set {', '.join(missing)}")
            values = {name: value.get_value() if isinstance(value, EnvVar) else value for name, value in values.items()}
            values = {name: value for name, value in values.items() if value is not None}
        else:
            values = self.connection_values(integration)
            if "account" in model.model_fields and not values.get("account"):
                # Budgets (and Bling's rotated tokens) belong to the provider account the integration names.
                values["account"] = integration.account_id or ("" if integration.provider != "bling" else f"integration-{integration.id}")
        # Its secrets are masked in every error text and log line, whatever a provider echoes back.
        register(*(str(values[name]) for name in found.secret_fields() if values.get(name)))
        try:
            resource = model(**values)
        except Exception as exc:  # pydantic names the field, never its value
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in getattr(exc, "errors", lambda: [])()) or type(exc).__name__
            raise ConfigurationError(f"{integration.label}: invalid connection ({problems})") from None
        bind_database(resource, self.engine)
        return resource


def bind_database(resource: Any, engine: Any) -> None:
    """What a resource keeps in the local database (Bling's rotated refresh tokens) goes to ``engine``'s."""
    bind = getattr(resource, "bind_database", None)
    if bind is not None:
        bind(engine)


def _env_template(found: ProviderPlugin) -> dict[str, Any]:
    template = found.default_resource()
    return {name: getattr(template, name) for name in found.resource_type().model_fields}


def _missing_env(found: ProviderPlugin, values: dict[str, Any]) -> list[str]:
    """The unset environment variables the provider's resource cannot do without."""
    model = found.resource_type()
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    return [values[f].env_var_name for f in required if isinstance(values.get(f), EnvVar) and not os.environ.get(values[f].env_var_name)]


def missing_env_vars(provider: str) -> list[str]:
    """The unset environment variables the provider's default resource needs (Dagster resolves them at launch)."""
    found = _plugin(provider)
    return sorted(_missing_env(found, _env_template(found)))


def env_configured(provider: str) -> bool:
    """Whether the environment holds everything the provider's default integration needs."""
    return not missing_env_vars(provider)


def providers_with_integrations(registry: IntegrationRegistry) -> Iterable[str]:
    names = {i.provider for i in registry.list()}
    return [p for p in PROVIDERS if p in names]


__all__ = ["IntegrationRegistry", "bind_database", "env_configured", "providers_with_integrations"]
