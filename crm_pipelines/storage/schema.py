"""Tables of the local database.

``stores`` are the tenants (lojas) one company database serves; ``integrations`` tie a store to
one provider account, with its connection (credentials as references or encrypted) and settings.
``contacts``, ``companies`` and ``deals`` hold each store's canonical records (one row per
real-world record of the store, whatever the number of providers it lives in).
``external_links`` ties each local row to its id at each integration, with what was last seen
there. ``sync_state`` keeps one watermark per integration and entity, ``rejects`` every record
that could not be imported or exported, with the reason, until it goes through;
``export_intents`` the creates in flight. Everything an integration syncs is keyed by its id, so
nothing of one store ever touches another's.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

from crm_pipelines.storage.types import CustomValues, Money, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys render as INTEGER on SQLite so they stay rowid aliases.
PK = BigInteger().with_variant(Integer(), "sqlite")


#: The store every record belongs to when nothing says otherwise (the single-store set-up).
DEFAULT_STORE_ID = 1

stores = Table(
    "stores",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("phone_region", String(2), nullable=False, default="BR"),
    Column("created_at", UTCDateTime, nullable=False),
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("store_id", BigInteger, nullable=False, index=True),
    Column("provider", String(32), nullable=False),
    # Unique per provider: the Dagster partition key of the provider's assets.
    Column("key", String(64), nullable=False),
    # The provider's account (HubSpot portal id, Shopify shop domain, ...): webhooks are routed by it
    # and integrations on the same account share one API budget.
    Column("account_id", String(255)),
    Column("active", Boolean, nullable=False, default=True),
    # Resource field values; credentials only as {"env": NAME} or {"enc": token}.
    Column("connection", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "key", name="uq_integrations_provider_key"),
)
Index("ix_integrations_account", integrations.c.provider, integrations.c.account_id)


def _owner() -> Column:
    # Records written by the company's own applications without a store land in the default one.
    return Column("store_id", BigInteger, nullable=False, default=DEFAULT_STORE_ID, server_default=str(DEFAULT_STORE_ID))


def _bookkeeping() -> list[Column]:
    return [
        # Values of mapped custom fields (``custom.KEY`` in a mapping), one JSON object per row.
        Column("custom", CustomValues, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("deleted_at", UTCDateTime, nullable=True),
    ]


contacts = Table(
    "contacts",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    _owner(),
    Column("email", String(320)),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("phone", String(64)),
    Column("company_name", String(255)),
    Column("job_title", String(255)),
    Column("lifecycle_stage", String(64)),
    Column("document", String(14)),
    *_bookkeeping(),
)
Index("ix_contacts_store_email", contacts.c.store_id, contacts.c.email)
Index("ix_contacts_store_document", contacts.c.store_id, contacts.c.document)

companies = Table(
    "companies",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    _owner(),
    Column("name", String(255)),
    Column("domain", String(255)),
    Column("document", String(14)),
    Column("phone", String(64)),
    Column("industry", String(128)),
    Column("city", String(128)),
    Column("country", String(128)),
    *_bookkeeping(),
)
Index("ix_companies_store_domain", companies.c.store_id, companies.c.domain)
Index("ix_companies_store_document", companies.c.store_id, companies.c.document)

deals = Table(
    "deals",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    _owner(),
    Column("name", String(255)),
    Column("amount", Money),
    Column("currency", String(8)),
    Column("stage", String(64)),
    Column("pipeline", String(64)),
    Column("close_date", UTCDateTime),
    *_bookkeeping(),
)
Index("ix_deals_store_id", deals.c.store_id)

ENTITY_TABLES = {"contacts": contacts, "companies": companies, "deals": deals}

external_links = Table(
    "external_links",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("integration_id", BigInteger, nullable=False),
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
    UniqueConstraint("integration_id", "entity", "external_id", name="uq_external_links_external"),
    UniqueConstraint("integration_id", "entity", "local_id", name="uq_external_links_local"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("integration_id", BigInteger, primary_key=True),
    Column("entity", String(16), primary_key=True),
    Column("provider", String(32), nullable=False),
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
    Column("integration_id", BigInteger, nullable=False),
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
    # Export rejects: the content hash the provider refused; the record waits for another content.
    Column("content_hash", String(32)),
    UniqueConstraint("integration_id", "entity", "direction", "record_ref", name="uq_rejects_record"),
)
Index("ix_rejects_open", rejects.c.integration_id, rejects.c.entity, rejects.c.resolved_at)

# A create about to be sent: written (and committed) before the request, removed in the same
# transaction that saves the provider's id. A row still here after a crash means "this record
# may exist at the provider under its idempotency key": the next run looks it up before sending.
export_intents = Table(
    "export_intents",
    metadata,
    Column("integration_id", BigInteger, primary_key=True),
    Column("entity", String(16), primary_key=True),
    Column("local_id", BigInteger, primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The export (lease owner) that wrote the intent, and when the create was sent.
    Column("owner", String(128)),
    Column("sent_at", UTCDateTime),
)

# One writer per integration and entity: the export holding this row (``owner``) renews
# ``expires_at`` while it runs; a row past its expiry belongs to a process that is gone.
export_leases = Table(
    "export_leases",
    metadata,
    Column("integration_id", BigInteger, primary_key=True),
    Column("entity", String(16), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Webhook inbox: one row per event delivered by a provider, stored (and committed) before the
# delivery is acknowledged. A provider may deliver the same event more than once; the unique
# (provider, account, event_id) keeps a single copy. ``integration_id`` is the integration the
# event's account belongs to; an event for an account no integration knows keeps it empty and is
# never applied (``crm-pipelines webhooks unrouted`` lists them). ``processed_at`` is set once the
# event has been acted on.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account_id", String(255), nullable=False, default="", server_default=""),
    Column("integration_id", BigInteger),
    Column("event_id", String(128), nullable=False),
    Column("subscription_type", String(128)),
    Column("object_type", String(64)),
    Column("object_id", String(64)),
    Column("occurred_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    # The delivery's body, once per delivery (rows stored before revision 0011 hold it here instead).
    Column("delivery_id", BigInteger),
    Column("raw_body", Text),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("provider", "account_id", "event_id", name="uq_webhooks_event"),
)

# One row per delivery that brought at least one new event: its raw body, stored once however
# many events it holds.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", Text, nullable=False),
)
Index("ix_webhooks_provider_id", webhooks.c.provider, webhooks.c.id)
Index("ix_webhooks_integration_id", webhooks.c.integration_id, webhooks.c.id)

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
    Column("integration_id", BigInteger, nullable=False),
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
Index("ix_conflicts_open", conflicts.c.integration_id, conflicts.c.entity, conflicts.c.resolved_at)

# Local duplicates merged into one survivor: who was merged into whom, why, and the merged row's
# values (the row itself stays, marked deleted).
merges = Table(
    "merges",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("store_id", BigInteger, nullable=False),
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
# ``refresh_token`` holds the token encrypted (``{"enc": ...}`` as JSON), never in plain text.
oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("account_key", String(64), primary_key=True),
    Column("refresh_token", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Jobs: one row per sync, export, backfill or by-id sync, whoever started it (the API, the CLI, the
# schedule, a sensor, the Dagster UI), with its progress as the run writes it every few seconds,
# its figures and the provider's error. ``run_id`` is the Dagster run that does the work.
sync_jobs = Table(
    "sync_jobs",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("store_id", BigInteger),
    Column("integration_id", BigInteger),
    Column("integration_key", String(64)),
    Column("entity", String(16)),
    Column("trigger", String(16), nullable=False, default="manual"),
    Column("params", JSON),
    Column("processed", BigInteger, nullable=False, default=0),
    Column("total", BigInteger),
    Column("total_is_estimate", Boolean, nullable=False, default=False),
    Column("percent", Float),
    Column("eta_s", Float),
    Column("created", BigInteger, nullable=False, default=0),
    Column("updated", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("entities", JSON),
    Column("error", Text),
    Column("run_id", String(64), unique=True),
    Column("callback_url", Text),
    Column("notify", Boolean, nullable=False, default=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("notified_at", UTCDateTime),
)
Index("ix_sync_jobs_state", sync_jobs.c.state, sync_jobs.c.id)
Index("ix_sync_jobs_integration_id", sync_jobs.c.integration_id, sync_jobs.c.id)
