"""The set-based write path: chunks of every kind of change, ids and links, failures and retries.

Each test runs on SQLite and PostgreSQL (the ``store`` fixture).
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import sqlite

from crm_pipelines.core.model import RemoteRecord
from crm_pipelines.storage.bulk import _sqlite_timestamp
from crm_pipelines.storage.schema import contacts, deals, external_links

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def contact(ext_id, email, first="Ana", updated=T0, **extra):
    return RemoteRecord(ext_id, updated, {"email": email, "first_name": first, **extra}, created_at=T0 - timedelta(days=1))


def _counts(store):
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        links = conn.execute(select(func.count()).select_from(external_links)).scalar_one()
    return rows, links


def test_a_mixed_batch_larger_than_a_chunk_lands_on_the_right_rows(store):
    """New, changed, unchanged, matched (by e-mail and by CPF) and deleted records in one call."""
    store.CHUNK_SIZE = 300  # several chunks in one call
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [
            {"email": "ana@exemplo.com.br", "document": None, "first_name": "Ana (local)", "created_at": now, "updated_at": now},
            {"email": None, "document": "52998224725", "first_name": "Cliente CPF", "created_at": now, "updated_at": now},
        ])
    first = [contact(str(i), f"c{i}@x.com") for i in range(500)]
    assert store.apply_remote("hubspot", "contacts", first).created == 500

    later = T0 + timedelta(minutes=5)
    second = (
        [contact(str(i), f"c{i}@x.com", "Changed", later) for i in range(0, 100)]  # changed
        + [contact(str(i), f"c{i}@x.com") for i in range(100, 400)]  # unchanged
        + [RemoteRecord(str(i), later, {}, archived=True) for i in range(400, 450)]  # deleted at the provider
        + [contact(str(i), f"n{i}@x.com", "New") for i in range(1000, 1700)]  # new
        + [contact("2000", "ana@exemplo.com.br", "Ana Remota"), contact("2001", None, "Por CPF", document="52998224725")]  # matched
    )
    out = store.apply_remote("hubspot", "contacts", second)
    assert (out.updated, out.unchanged, out.deleted, out.created, out.linked) == (100, 300, 50, 700, 2)

    linked = store.linked_records("hubspot", "contacts", include_deleted=True)
    assert len(linked) == 1202 and _counts(store) == (1202, 1202)
    for external_id, row in linked.items():
        n = int(external_id)
        if n < 100:
            assert (row["email"], row["first_name"]) == (f"c{n}@x.com", "Changed")
        elif n < 400:
            assert (row["email"], row["first_name"], row["deleted_at"]) == (f"c{n}@x.com", "Ana", None)
        elif n < 450:
            assert row["deleted_at"] is not None and row["archived_at"] is not None
        elif n < 500:
            assert (row["first_name"], row["deleted_at"]) == ("Ana", None)
        elif n < 2000:
            assert (row["email"], row["first_name"], row["created_at"]) == (f"n{n}@x.com", "New", T0 - timedelta(days=1))
    assert (linked["2000"]["first_name"], linked["2001"]["first_name"]) == ("Ana Remota", "Por CPF")


def test_new_rows_get_fresh_ids_after_rows_written_elsewhere(store):
    now = datetime.now(timezone.utc)
    store.apply_remote("hubspot", "contacts", [contact(str(i), f"a{i}@x.com") for i in range(5)])
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"local{i}@x.com", "created_at": now, "updated_at": now} for i in range(3)])
    store.apply_remote("pipedrive", "contacts", [contact(str(i), f"b{i}@x.com") for i in range(5)])
    with store.engine.connect() as conn:
        ids = conn.execute(select(contacts.c.id)).scalars().all()
    assert len(ids) == len(set(ids)) == 13
    assert {r["email"] for r in store.linked_records("pipedrive", "contacts").values()} == {f"b{i}@x.com" for i in range(5)}


def test_values_read_back_as_they_were_given(store):
    at = datetime(2026, 5, 17, 8, 30, 0, tzinfo=timezone(timedelta(hours=-3)))
    record = RemoteRecord("d1", at, {"name": "Pedido", "amount": Decimal("1234.50"), "currency": "BRL", "close_date": at}, created_at=at)
    store.apply_remote("hubspot", "deals", [record])
    row = store.linked_records("hubspot", "deals")["d1"]
    assert (row["amount"], row["close_date"], row["created_at"]) == (Decimal("1234.50"), at, at)
    assert row["close_date"].tzinfo is not None
    # The same record again is unchanged: what was stored hashes like what was sent.
    assert store.apply_remote("hubspot", "deals", [record]).unchanged == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(deals.c.amount)).scalar_one() == Decimal("1234.50")


@pytest.mark.parametrize("value", [
    datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=timezone.utc),
    datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc),
    datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3))),
    datetime(2026, 3, 1, 12, 0),
    datetime(999, 1, 2, tzinfo=timezone.utc),
])
def test_sqlite_timestamps_are_stored_as_sqlalchemy_stores_them(value):
    from crm_pipelines.storage.types import UTCDateTime

    dialect = sqlite.dialect()
    assert _sqlite_timestamp(value) == UTCDateTime().dialect_impl(dialect).bind_processor(dialect)(value)


def test_a_chunk_that_fails_halfway_leaves_nothing(store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store.bulk, "insert_links", broken)
    with pytest.raises(RuntimeError):
        store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com") for i in range(50)])
    assert _counts(store) == (0, 0)


def test_records_linked_by_another_run_meanwhile_are_read_again_not_duplicated(store, monkeypatch):
    """The link insert hits the unique index (COPY on PostgreSQL); the chunk is rolled back and applied again."""
    store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com") for i in range(20)])
    real_links, calls = store.bulk.links, []

    def links_missed_once(conn, scope, external_ids):
        calls.append(len(external_ids))
        return {} if len(calls) == 1 else real_links(conn, scope, external_ids)

    monkeypatch.setattr(store.bulk, "links", links_missed_once)
    out = store.apply_remote("hubspot", "contacts", [contact(str(i), f"c{i}@x.com", "Changed", T0 + timedelta(minutes=1)) for i in range(20)])
    assert len(calls) == 2
    assert (out.created, out.updated) == (0, 20)
    assert _counts(store) == (20, 20)
    assert {r["first_name"] for r in store.linked_records("hubspot", "contacts").values()} == {"Changed"}
