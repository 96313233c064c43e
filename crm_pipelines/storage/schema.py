"""Tables of the local database.

``contacts``, ``companies`` and ``deals`` hold the canonical records (one row per real-world
record, whatever the number of providers it lives in). ``external_links`` ties each local row to
its id at each provider, with what was last seen there. ``sync_state`` keeps one watermark per
provider and entity, ``rejects`` every record that could not be imported or exported, with the
reason, until it goes through; ``export_intents`` the creates in flight.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from crm_pipelines.storage.types import Money, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys render as INTEGER on SQLite so they stay rowid aliases.
PK = BigInteger().with_variant(Integer(), "sqlite")


def _bookkeeping() -> list[Column]:
    return [
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("deleted_at", UTCDateTime, nullable=True),
    ]


contacts = Table(
    "contacts",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("email", String(320), index=True),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("phone", String(64)),
    Column("company_name", String(255)),
    Column("job_title", String(255)),
    Column("lifecycle_stage", String(64)),
    Column("document", String(14), index=True),
    *_bookkeeping(),
)

companies = Table(
    "companies",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("name", String(255)),
    Column("domain", String(255), index=True),
    Column("document", String(14), index=True),
    Column("phone", String(64)),
    Column("industry", String(128)),
    Column("city", String(128)),
    Column("country", String(128)),
    *_bookkeeping(),
)

deals = Table(
    "deals",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("name", String(255)),
    Column("amount", Money),
    Column("currency", String(8)),
    Column("stage", String(64)),
    Column("pipeline", String(64)),
    Column("close_date", UTCDateTime),
    *_bookkeeping(),
)

ENTITY_TABLES = {"contacts": contacts, "companies": companies, "deals": deals}

external_links = Table(
    "external_links",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("entity", String(16), nullable=False),
    Column("local_id", BigInteger, nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("remote_updated_at", UTCDateTime),
    Column("remote_hash", String(32)),
    Column("exported_hash", String(32)),
    Column("linked_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("archived_at", UTCDateTime),
    UniqueConstraint("provider", "entity", "external_id", name="uq_external_links_external"),
    UniqueConstraint("provider", "entity", "local_id", name="uq_external_links_local"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("entity", String(16), primary_key=True),
    Column("synced_through", UTCDateTime),
    Column("last_remote_update", UTCDateTime),
    Column("last_run_at", UTCDateTime),
    Column("last_run_id", String(64)),
    Column("last_status", String(16)),
    Column("last_metrics", JSON),
)

rejects = Table(
    "rejects",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("entity", String(16), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("record_ref", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    UniqueConstraint("provider", "entity", "direction", "record_ref", name="uq_rejects_record"),
)
Index("ix_rejects_open", rejects.c.provider, rejects.c.entity, rejects.c.resolved_at)

# A create about to be sent: written (and committed) before the request, removed in the same
# transaction that saves the provider's id. A row still here after a crash means "this record
# may exist at the provider under its idempotency key": the next run looks it up before sending.
export_intents = Table(
    "export_intents",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("entity", String(16), primary_key=True),
    Column("local_id", BigInteger, primary_key=True),
    Column("idempotency_key", String(64), nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Webhook inbox: one row per event delivered by a provider, stored (and committed) before the
# delivery is acknowledged. A provider may deliver the same event more than once; the unique
# (provider, event_id) keeps a single copy. ``processed_at`` is set once the event has been acted on.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("subscription_type", String(128)),
    Column("object_type", String(64)),
    Column("object_id", String(64)),
    Column("occurred_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("raw_body", Text, nullable=False),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("provider", "event_id", name="uq_webhooks_event"),
)
Index("ix_webhooks_provider_id", webhooks.c.provider, webhooks.c.id)

# Shared API budgets: one row per provider account and limit (``hubspot|<account>|ten-secondly``).
# Every process that calls the provider takes its sends from here inside a short transaction, so
# the schedule, webhook-triggered runs, a backfill and an export together stay within the limit.
quota_budgets = Table(
    "quota_budgets",
    metadata,
    Column("budget_key", String(255), primary_key=True),
    Column("max_calls", Integer, nullable=False),
    Column("period_s", Float, nullable=False),
    Column("state", Text, nullable=False),
    Column("version", BigInteger, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

# Records changed locally and at a provider since their last sync, and what was decided: by a
# strategy at once (``resolved_by`` "auto:<strategy>") or by a person later (strategy ``manual``).
conflicts = Table(
    "conflicts",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("entity", String(16), nullable=False),
    Column("local_id", BigInteger, nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("local_fields", JSON, nullable=False),
    Column("remote_fields", JSON, nullable=False),
    Column("local_updated_at", UTCDateTime),
    Column("remote_updated_at", UTCDateTime),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("decision", String(16)),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(64)),
    Column("merge_choices", JSON),
)
Index("ix_conflicts_open", conflicts.c.provider, conflicts.c.entity, conflicts.c.resolved_at)

# Local duplicates merged into one survivor: who was merged into whom, why, and the merged row's
# values (the row itself stays, marked deleted).
merges = Table(
    "merges",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("entity", String(16), nullable=False),
    Column("survivor_id", BigInteger, nullable=False),
    Column("merged_id", BigInteger, nullable=False),
    Column("policy", String(16), nullable=False),
    Column("reason", String(255)),
    Column("merged_fields", JSON, nullable=False),
    Column("merged_at", UTCDateTime, nullable=False),
)

# The newest OAuth refresh token of a provider account whose tokens rotate (Bling): each refresh
# replaces it, so every process (Dagster runs, the CLI) must start from the last one issued.
oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("account_key", String(64), primary_key=True),
    Column("refresh_token", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
