"""Fixtures: a migrated database (SQLite file and PostgreSQL) and the receiver app on it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.migrate import upgrade
from crm_pipelines.storage.schema import webhooks
from crm_pipelines.webhooks.app import WebhookSecrets

SECRETS = WebhookSecrets(
    hubspot_client_secret="hs-client-secret-0f3c",
    shopify_webhook_secret="shpss_app-secret-91aa",
    pipedrive_user="pd-hook-user",
    pipedrive_password="pd-hook-password-77",
    bling_client_secret="bling-client-secret-5e2",
)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def count_rows(db_url):
    """Count inbox rows through an engine of its own (so only committed rows are seen)."""
    reader = make_engine(db_url)

    def _count(provider: str | None = None) -> int:
        stmt = select(func.count()).select_from(webhooks)
        if provider:
            stmt = stmt.where(webhooks.c.provider == provider)
        with reader.connect() as conn:
            return conn.execute(stmt).scalar_one()

    yield _count
    reader.dispose()
