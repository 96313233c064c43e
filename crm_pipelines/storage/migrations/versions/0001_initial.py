"""Canonical tables, external links, sync state and the reject ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import Money, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _bookkeeping():
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320)),
        sa.Column("first_name", sa.String(255)),
        sa.Column("last_name", sa.String(255)),
        sa.Column("phone", sa.String(64)),
        sa.Column("company_name", sa.String(255)),
        sa.Column("job_title", sa.String(255)),
        sa.Column("lifecycle_stage", sa.String(64)),
        sa.Column("document", sa.String(14)),
        *_bookkeeping(),
    )
    op.create_index("ix_contacts_email", "contacts", ["email"])
    op.create_index("ix_contacts_document", "contacts", ["document"])
    op.create_table(
        "companies",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255)),
        sa.Column("domain", sa.String(255)),
        sa.Column("document", sa.String(14)),
        sa.Column("phone", sa.String(64)),
        sa.Column("industry", sa.String(128)),
        sa.Column("city", sa.String(128)),
        sa.Column("country", sa.String(128)),
        *_bookkeeping(),
    )
    op.create_index("ix_companies_domain", "companies", ["domain"])
    op.create_index("ix_companies_document", "companies", ["document"])
    op.create_table(
        "deals",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255)),
        sa.Column("amount", Money()),
        sa.Column("currency", sa.String(8)),
        sa.Column("stage", sa.String(64)),
        sa.Column("pipeline", sa.String(64)),
        sa.Column("close_date", UTCDateTime()),
        *_bookkeeping(),
    )
    op.create_table(
        "external_links",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("remote_updated_at", UTCDateTime()),
        sa.Column("remote_hash", sa.String(32)),
        sa.Column("exported_hash", sa.String(32)),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("archived_at", UTCDateTime()),
        sa.UniqueConstraint("provider", "entity", "external_id", name="uq_external_links_external"),
        sa.UniqueConstraint("provider", "entity", "local_id", name="uq_external_links_local"),
    )
    op.create_table(
        "sync_state",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("synced_through", UTCDateTime()),
        sa.Column("last_remote_update", UTCDateTime()),
        sa.Column("last_run_at", UTCDateTime()),
        sa.Column("last_run_id", sa.String(64)),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_metrics", sa.JSON()),
    )
    op.create_table(
        "rejects",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("record_ref", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.UniqueConstraint("provider", "entity", "direction", "record_ref", name="uq_rejects_record"),
    )
    op.create_index("ix_rejects_open", "rejects", ["provider", "entity", "resolved_at"])


def downgrade() -> None:
    for table in ("rejects", "sync_state", "external_links", "deals", "companies", "contacts"):
        op.drop_table(table)
