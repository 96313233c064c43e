"""Bulk upserts, links, rejects and sync state, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, update

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.storage.schema import contacts, deals, external_links, metadata
from crm_pipelines.storage.store import SyncState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def contact(ext_id, email, first="Ana", updated=T0, **extra):
    return RemoteRecord(ext_id, updated, {"email": email, "first_name": first, **extra})


def test_migrations_match_the_table_definitions(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_create_update_unchanged_and_stale(store):
    out = store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com") for i in range(250)])
    assert (out.created, out.updated, out.unchanged) == (250, 0, 0)
    assert store.count("contacts") == 250

    # same content again: nothing written
    out = store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com") for i in range(250)])
    assert (out.created, out.updated, out.unchanged) == (0, 0, 250)

    # a newer version updates; an older one is ignored
    later, earlier = T0 + timedelta(minutes=5), T0 - timedelta(minutes=5)
    out = store.apply_remote("hubspot", "contacts", [contact("1", "c1@x.com", "João", later), contact("2", "c2@x.com", "Old", earlier)])
    assert (out.updated, out.unchanged) == (1, 1)
    rows = store.linked_records("hubspot", "contacts")
    assert rows["1"]["first_name"] == "João"
    assert rows["2"]["first_name"] == "Ana"
    assert len(rows) == 250


def test_duplicates_inside_a_batch_keep_the_newest(store):
    out = store.apply_remote(
        "hubspot", "contacts",
        [contact("7", "a@x.com", "First", T0), contact("7", "a@x.com", "Second", T0 + timedelta(seconds=1))],
    )
    assert out.created == 1
    assert store.linked_records("hubspot", "contacts")["7"]["first_name"] == "Second"


def test_unlinked_record_with_same_email_is_linked_not_duplicated(store):
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts).values(email="maria@x.com", first_name="Maria", created_at=now, updated_at=now))
    out = store.apply_remote("hubspot", "contacts", [contact("99", "maria@x.com", "Maria Conceição")])
    assert (out.linked, out.created) == (1, 0)
    assert store.count("contacts") == 1
    # the same local record can be linked once per provider, not twice
    out = store.apply_remote("hubspot", "contacts", [contact("100", "maria@x.com", "Other")])
    assert out.created == 1


def test_archived_records_soft_delete_and_restore(store):
    store.apply_remote("hubspot", "contacts", [contact("1", "a@x.com"), contact("2", "b@x.com")])
    out = store.apply_remote("hubspot", "contacts", [RemoteRecord("1", T0 + timedelta(hours=1), {}, archived=True)])
    assert out.deleted == 1
    assert store.count("contacts") == 1
    assert set(store.linked_records("hubspot", "contacts")) == {"2"}
    out = store.apply_remote("hubspot", "contacts", [contact("1", "a@x.com", updated=T0 + timedelta(hours=2))])
    assert out.updated == 1
    assert store.count("contacts") == 2


def test_decimal_amounts_are_exact(store):
    store.apply_remote("hubspot", "deals", [RemoteRecord("5", T0, {"name": "Big", "amount": Decimal("12345678901234.57")})])
    with store.engine.connect() as conn:
        amount = conn.execute(select(deals.c.amount)).scalar_one()
    assert amount == Decimal("12345678901234.57")


def test_rejects_are_counted_and_resolved(store):
    errors = [RecordError("9", "INVALID_FIELD", "email: invalid email 'x'")]
    store.record_rejects("hubspot", "contacts", "import", errors)
    store.record_rejects("hubspot", "contacts", "import", errors)
    open_ = store.open_rejects("hubspot", "contacts", "import")
    assert len(open_) == 1 and open_[0]["attempts"] == 2 and "invalid email" in open_[0]["message"]
    assert store.resolve_rejects("hubspot", "contacts", "import", ["9"]) == 1
    assert store.open_rejects("hubspot", "contacts", "import") == []


def test_sync_state_round_trip(store):
    assert store.sync_state("hubspot", "deals").synced_through is None
    store.save_sync_state(SyncState("hubspot", "deals", synced_through=T0, last_status="success", last_metrics={"fetched": 3}))
    store.save_sync_state(SyncState("hubspot", "deals", synced_through=T0 + timedelta(minutes=30), last_status="success"))
    state = store.sync_state("hubspot", "deals")
    assert state.synced_through == T0 + timedelta(minutes=30)


def test_links_are_unique_per_provider_record(store):
    store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com") for i in range(30)])
    with store.engine.connect() as conn:
        ids = [r.external_id for r in conn.execute(select(external_links.c.external_id))]
    assert len(ids) == len(set(ids)) == 30


def test_fields_a_provider_does_not_hold_survive_its_imports_and_are_not_exported(store):
    from crm_pipelines.providers.registry import held_fields
    from crm_pipelines.storage.schema import contacts as contacts_table

    held = held_fields("bling", "contacts")
    assert "company_name" not in held and "email" in held
    at = datetime(2026, 11, 2, tzinfo=timezone.utc)
    first = RemoteRecord("77", at, {"email": "ana@exemplo.com.br", "first_name": "Ana", "last_name": "Conceição", "document": None})
    store.apply_remote("bling", "contacts", [first])
    local_id = store.linked_records("bling", "contacts")["77"]["id"]
    with store.engine.begin() as conn:
        conn.execute(update(contacts_table).where(contacts_table.c.id == local_id).values(company_name="Padaria São João", job_title="Gerente"))
    # A field Bling has no place for changed locally: nothing to send to Bling.
    assert list(store.export_candidates("bling", "contacts")) == []
    # Bling sends a new version: its fields change, the local-only ones stay.
    store.apply_remote("bling", "contacts", [RemoteRecord("77", None, {**first.fields, "first_name": "Ana Maria"})])
    with store.engine.connect() as conn:
        row = conn.execute(select(contacts_table).where(contacts_table.c.id == local_id)).one()
    assert (row.first_name, row.company_name, row.job_title) == ("Ana Maria", "Padaria São João", "Gerente")
