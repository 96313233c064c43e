"""What a report calls too much: per integration (its ``quality`` settings), with defaults that suit most stores."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QualityThresholds(BaseModel):
    """Thresholds of an integration's quality checks and the report's options.

    Set them per integration, e.g. ``crm-pipelines integrations set hubspot loja_b
    --quality stale_after_hours=48 --quality max_orphans=10``.
    """

    model_config = ConfigDict(extra="forbid")

    stale_after_hours: float = Field(default=24.0, gt=0, description="A local change not synced to the integration for longer than this is stale.")
    examples: int = Field(default=10, ge=0, le=1000, description="Example records listed per finding.")
    max_invalid_share: float = Field(default=0.01, ge=0, le=1, description="Share of records with an invalid e-mail, phone or CPF/CNPJ above which the check fails.")
    max_duplicate_share: float = Field(default=0.01, ge=0, le=1, description="Share of records that duplicate another (same e-mail, CPF/CNPJ or domain) above which the check fails.")
    max_orphans: int = Field(default=0, ge=0, description="Local records still live whose provider record was deleted there, above which the check fails.")
    max_stale: int = Field(default=0, ge=0, description="Stale records above which the check fails.")
    max_provider_differences: int | None = Field(default=None, ge=0, description="Records the store's providers disagree on above which the check fails (None: reported only).")
    min_completeness: dict[str, float] = Field(default_factory=dict, description="Least share of records with each named field filled, e.g. {'email': 0.95}.")


__all__ = ["QualityThresholds"]
