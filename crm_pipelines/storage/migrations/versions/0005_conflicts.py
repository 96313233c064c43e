"""Conflict ledger: records changed on both sides since their last sync, and the decisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "conflicts",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("local_fields", sa.JSON(), nullable=False),
        sa.Column("remote_fields", sa.JSON(), nullable=False),
        sa.Column("local_updated_at", UTCDateTime()),
        sa.Column("remote_updated_at", UTCDateTime()),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("merge_choices", sa.JSON()),
    )
    op.create_index("ix_conflicts_open", "conflicts", ["provider", "entity", "resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_conflicts_open", table_name="conflicts")
    op.drop_table("conflicts")
