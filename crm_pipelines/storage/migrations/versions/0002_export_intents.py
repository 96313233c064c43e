"""Export intents: the outbox that makes creating records at a provider idempotent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_intents",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("local_id", sa.BigInteger(), primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_intents")
