"""Stores (tenants, lojas) and integrations (one store's account at one provider), as values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import ENTITIES
from crm_pipelines.quality.thresholds import QualityThresholds

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
DEFAULT_STORE_KEY = "default"
DEFAULT_INTEGRATION_KEY = "default"
STRATEGIES = ("provider_wins", "local_wins", "last_modified", "manual")


def check_key(kind: str, key: str) -> str:
    """Store and integration keys: lower-case letters, digits and underscores (they name Dagster partitions)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ConfigurationError(f"{kind} key {key!r} must be 1-63 lower-case letters, digits or underscores, starting with a letter or digit")
    return key


class IntegrationSettings(BaseModel):
    """What an integration's owner may tune without touching code (stored as JSON, validated here)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int | None = Field(default=None, ge=1, le=100, description="Records per bulk write (default: the provider's maximum).")
    cadence_minutes: int = Field(default=30, ge=1, le=1440, description="How often the incremental schedule syncs this integration.")
    conflict_strategies: dict[str, str] = Field(default_factory=dict, description="Strategy per entity ('*' for all): provider_wins, local_wins, last_modified, manual.")
    export_enabled: bool = Field(default=True, description="Whether local changes are sent to this integration.")
    bulk_threshold: int | None = Field(default=10_000, ge=1, description="Records above which a full sync, a backfill or an export goes through the provider's bulk API (None: never).")
    quality: QualityThresholds = Field(default_factory=QualityThresholds, description="Thresholds of the data-quality checks (crm_pipelines.quality).")
    mapping_file: str | None = Field(default=None, description="A field mapping file whose fields replace or extend the provider's built-in mapping (docs/mapping.md).")
    match_by_phone: bool = Field(default=False, description="Also link a provider record to an unlinked local one with the same phone (E.164), after e-mail/domain and CPF/CNPJ.")

    @field_validator("conflict_strategies")
    @classmethod
    def _known_strategies(cls, value: dict[str, str]) -> dict[str, str]:
        for scope, strategy in value.items():
            if scope != "*" and scope not in ENTITIES:
                raise ValueError(f"unknown entity {scope!r} (expected one of {', '.join(ENTITIES)} or *)")
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")
        return value

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> IntegrationSettings:
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"invalid integration settings: {problems}") from None


@dataclass(frozen=True)
class Store:
    id: int
    key: str
    name: str
    phone_region: str = "BR"


@dataclass(frozen=True)
class Integration:
    """One store's account at one provider: what every sync fact is keyed by."""

    id: int
    store_id: int
    store_key: str
    provider: str
    key: str
    account_id: str | None = None
    active: bool = True
    connection: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    settings: IntegrationSettings = field(default_factory=IntegrationSettings, hash=False, compare=False)

    @property
    def label(self) -> str:
        """``hubspot/loja_b`` (``hubspot`` for the default integration): how logs, errors and the CLI name it."""
        return self.provider if self.key == DEFAULT_INTEGRATION_KEY else f"{self.provider}/{self.key}"

    def __str__(self) -> str:
        return self.label

    @property
    def from_env(self) -> bool:
        """The environment-configured integration of the default store (the single-account set-up)."""
        return bool(self.connection.get("from_env"))

    def conflict_strategy(self, entity: str) -> str | None:
        rules = self.settings.conflict_strategies
        return rules.get(entity) or rules.get("*")


__all__ = ["DEFAULT_INTEGRATION_KEY", "DEFAULT_STORE_KEY", "Integration", "IntegrationSettings", "Store", "check_key"]
