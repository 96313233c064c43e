"""Webhook inbox: every event a provider delivers, stored once, before it is acknowledged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("subscription_type", sa.String(128)),
        sa.Column("object_type", sa.String(64)),
        sa.Column("object_id", sa.String(64)),
        sa.Column("occurred_at", UTCDateTime()),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column("processed_at", UTCDateTime()),
        sa.UniqueConstraint("provider", "event_id", name="uq_webhooks_event"),
    )
    op.create_index("ix_webhooks_provider_id", "webhooks", ["provider", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhooks_provider_id", table_name="webhooks")
    op.drop_table("webhooks")
