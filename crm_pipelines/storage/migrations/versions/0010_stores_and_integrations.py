"""Stores and integrations: every record owned by a store, every sync fact keyed by integration.

An existing single-account database becomes the ``default`` store with one integration per
provider found in its data, each reading its connection from the environment variables it used
before (``{"from_env": true}``), so nothing changes for a set-up configured that way.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-30
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from crm_pipelines.storage.types import UTCDateTime

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEFAULT_STORE_ID = 1
KEYED_TABLES = ("external_links", "sync_state", "rejects", "export_intents", "conflicts")


def _providers_in_data(conn) -> list[str]:
    found: set[str] = set()
    for table in (*KEYED_TABLES, "webhooks"):
        found.update(row[0] for row in conn.execute(sa.text(f"SELECT DISTINCT provider FROM {table}")))
    return sorted(found)


def upgrade() -> None:
    op.create_table(
        "stores",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("phone_region", sa.String(2), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("key", name="uq_stores_key"),
    )
    op.create_table(
        "integrations",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(255)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("connection", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("provider", "key", name="uq_integrations_provider_key"),
    )
    op.create_index("ix_integrations_store_id", "integrations", ["store_id"])
    op.create_index("ix_integrations_account", "integrations", ["provider", "account_id"])

    conn = op.get_bind()
    now = datetime.now(timezone.utc)
    stores = sa.table("stores", sa.column("id"), sa.column("key"), sa.column("name"), sa.column("phone_region"), sa.column("created_at", UTCDateTime()))
    conn.execute(stores.insert().values(id=DEFAULT_STORE_ID, key="default", name="Default store", phone_region="BR", created_at=now))
    integrations = sa.table(
        "integrations", sa.column("id"), sa.column("store_id"), sa.column("provider"), sa.column("key"), sa.column("active"),
        sa.column("connection", sa.JSON()), sa.column("settings", sa.JSON()), sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()),
    )
    for provider in _providers_in_data(conn):
        conn.execute(integrations.insert().values(store_id=DEFAULT_STORE_ID, provider=provider, key="default", active=True,
                                                  connection={"from_env": True}, settings={}, created_at=now, updated_at=now))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('stores', 'id'), (SELECT max(id) FROM stores))"))

    for table in ("contacts", "companies", "deals"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("store_id", sa.BigInteger(), nullable=False, server_default=str(DEFAULT_STORE_ID)))
    for table, column in (("contacts", "email"), ("contacts", "document"), ("companies", "domain"), ("companies", "document")):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
        op.create_index(f"ix_{table}_store_{column}", table, ["store_id", column])
    op.create_index("ix_deals_store_id", "deals", ["store_id"])

    owner = "(SELECT i.id FROM integrations i WHERE i.provider = {t}.provider AND i.store_id = %d)" % DEFAULT_STORE_ID
    for table in (*KEYED_TABLES, "webhooks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("integration_id", sa.BigInteger(), nullable=True))
        conn.execute(sa.text(f"UPDATE {table} SET integration_id = {owner.format(t=table)}"))

    with op.batch_alter_table("external_links") as batch:
        batch.alter_column("integration_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint("uq_external_links_external", type_="unique")
        batch.drop_constraint("uq_external_links_local", type_="unique")
        batch.create_unique_constraint("uq_external_links_external", ["integration_id", "entity", "external_id"])
        batch.create_unique_constraint("uq_external_links_local", ["integration_id", "entity", "local_id"])

    with op.batch_alter_table("sync_state", recreate="always") as batch:
        batch.alter_column("integration_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint("pk_sync_state", type_="primary")
        batch.create_primary_key("pk_sync_state", ["integration_id", "entity"])

    op.drop_index("ix_rejects_open", table_name="rejects")
    with op.batch_alter_table("rejects") as batch:
        batch.alter_column("integration_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint("uq_rejects_record", type_="unique")
        batch.create_unique_constraint("uq_rejects_record", ["integration_id", "entity", "direction", "record_ref"])
    op.create_index("ix_rejects_open", "rejects", ["integration_id", "entity", "resolved_at"])

    with op.batch_alter_table("export_intents", recreate="always") as batch:
        batch.alter_column("integration_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint("pk_export_intents", type_="primary")
        batch.create_primary_key("pk_export_intents", ["integration_id", "entity", "local_id"])

    op.drop_index("ix_conflicts_open", table_name="conflicts")
    with op.batch_alter_table("conflicts") as batch:
        batch.alter_column("integration_id", existing_type=sa.BigInteger(), nullable=False)
    op.create_index("ix_conflicts_open", "conflicts", ["integration_id", "entity", "resolved_at"])

    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("account_id", sa.String(255), nullable=False, server_default=""))
        batch.drop_constraint("uq_webhooks_event", type_="unique")
        batch.create_unique_constraint("uq_webhooks_event", ["provider", "account_id", "event_id"])
    op.create_index("ix_webhooks_integration_id", "webhooks", ["integration_id", "id"])

    with op.batch_alter_table("merges") as batch:
        batch.add_column(sa.Column("store_id", sa.BigInteger(), nullable=False, server_default=str(DEFAULT_STORE_ID)))
    with op.batch_alter_table("merges") as batch:
        batch.alter_column("store_id", existing_type=sa.BigInteger(), server_default=None)


def downgrade() -> None:
    raise NotImplementedError("stores and integrations cannot be folded back into one account per provider")
