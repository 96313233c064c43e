"""Exactly once at the provider: export leases, owned create intents, rejects that wait for a change.

* ``export_leases``: one writer per integration and entity; a row names its owner and expires
  unless the owner renews it (a dead process loses it).
* ``export_intents.owner`` / ``sent_at``: the run a create belongs to and when it was sent; only
  intents whose owner no longer holds the lease are settled by others.
* ``rejects.content_hash``: the content an export reject was given for; the record is not sent
  again until its content changes or ``rejects retry`` asks for it.
* ``webhook_deliveries``: a webhook delivery's raw body, once per delivery (``webhooks.delivery_id``),
  instead of a copy on each of its events (``webhooks.raw_body`` stays for older rows).

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

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


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
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("delivery_id", sa.BigInteger(), nullable=True))
        batch.alter_column("raw_body", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("delivery_id")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("rejects") as batch:
        batch.drop_column("content_hash")
    with op.batch_alter_table("export_intents") as batch:
        batch.drop_column("sent_at")
        batch.drop_column("owner")
    op.drop_table("export_leases")
