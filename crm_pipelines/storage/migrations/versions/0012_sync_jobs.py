"""Jobs: a record per sync, export, backfill and by-id sync, with its progress, figures and error.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sync_jobs",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("store_id", sa.BigInteger()),
        sa.Column("integration_id", sa.BigInteger()),
        sa.Column("integration_key", sa.String(64)),
        sa.Column("entity", sa.String(16)),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON()),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger()),
        sa.Column("total_is_estimate", sa.Boolean(), nullable=False),
        sa.Column("percent", sa.Float()),
        sa.Column("eta_s", sa.Float()),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("entities", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("run_id", sa.String(64)),
        sa.Column("callback_url", sa.Text()),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("notified_at", UTCDateTime()),
        sa.UniqueConstraint("run_id", name="uq_sync_jobs_run_id"),
    )
    op.create_index("ix_sync_jobs_state", "sync_jobs", ["state", "id"])
    op.create_index("ix_sync_jobs_integration_id", "sync_jobs", ["integration_id", "id"])


def downgrade() -> None:
    op.drop_table("sync_jobs")
