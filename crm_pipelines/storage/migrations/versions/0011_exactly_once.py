"""Exactly once at the provider: export leases, owned create intents, rejects that wait for a change.

* ``export_leases``: one writer per integration and entity; a row names its owner and expires
  unless the owner renews it (a dead process loses it).
* ``export_intents.owner`` / ``sent_at``: the run a create belongs to and when it was sent; only
  intents whose owner no longer holds the lease are settled by others.
* ``rejects.content_hash``: the content an export reject was given for; the record is not sent
  again until its content changes or ``rejects retry`` asks for it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_leases",
        sa.Column("integration_id", sa.BigInteger(), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("export_intents") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("sent_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("rejects") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rejects") as batch:
        batch.drop_column("content_hash")
    with op.batch_alter_table("export_intents") as batch:
        batch.drop_column("sent_at")
        batch.drop_column("owner")
    op.drop_table("export_leases")
