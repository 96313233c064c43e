"""Ledger of local duplicates merged into a survivor.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "merges",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("survivor_id", sa.BigInteger(), nullable=False),
        sa.Column("merged_id", sa.BigInteger(), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255)),
        sa.Column("merged_fields", sa.JSON(), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("merges")
