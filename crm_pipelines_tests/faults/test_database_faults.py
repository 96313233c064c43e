"""The local database fails mid-run (SQLite locked by another writer, PostgreSQL backend killed).

Each page of records is applied in one transaction with its links, so a run that fails on the
database leaves whole batches only; the next run reconciles exactly.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from crm_pipelines.storage.schema import ENTITY_TABLES, external_links
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync import importer
from crm_pipelines.sync.runner import import_now
from crm_pipelines_tests.faults.harness import provider_env, reconcile_import, start

PROVIDER = "hubspot"
RECORDS = 250  # three pages of 100


def _short_busy_timeout(store: LocalStore, ms: int) -> None:
    @event.listens_for(store.engine, "connect")
    def _busy(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={ms}")
        cursor.close()

    store.engine.dispose()


def _whole_batches(store: LocalStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(ENTITY_TABLES["contacts"])).scalar_one()
        links = conn.execute(select(func.count()).select_from(external_links).where(external_links.c.entity == "contacts")).scalar_one()
    return rows, links


@pytest.fixture
def sim():
    simulator = start(PROVIDER, (RECORDS, 2, 2))
    with provider_env(PROVIDER, simulator):
        yield simulator
    simulator.stop()


def _interrupt_on_second_page(monkeypatch, action):
    monkeypatch.setattr(importer, "APPLY_RECORDS", 100)  # one page per transaction, however fast pages arrive
    original = LocalStore.apply_remote
    calls = []

    def apply_remote(self, provider, entity, records):
        calls.append(len(records))
        if entity == "contacts" and len(calls) == 2:
            action()
        return original(self, provider, entity, records)

    monkeypatch.setattr(LocalStore, "apply_remote", apply_remote)
    return calls


def test_sqlite_locked_by_another_writer_fails_cleanly_and_the_next_run_reconciles(sim, sqlite_url, monkeypatch):
    store = LocalStore.open(sqlite_url)
    _short_busy_timeout(store, 300)
    locker = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None, check_same_thread=False)
    calls = _interrupt_on_second_page(monkeypatch, lambda: locker.execute("BEGIN IMMEDIATE"))
    with pytest.raises(Exception, match="database is locked"):
        import_now(PROVIDER, "contacts", store, shared=False)
    rows, links = _whole_batches(store)
    assert 0 < rows == links == calls[0] < RECORDS, (rows, links, calls)  # the first page whole, none of the second
    assert store.sync_state(PROVIDER, "contacts").synced_through is None  # the window is not marked done
    locker.execute("ROLLBACK")
    locker.close()
    monkeypatch.undo()
    import_now(PROVIDER, "contacts", store, shared=False)
    checked, lost, duplicated, detail = reconcile_import(sim, store, PROVIDER, "contacts")
    assert (checked, lost, duplicated) == (RECORDS, 0, 0), detail
    store.dispose()


def test_sqlite_lock_released_in_time_is_waited_for(sim, sqlite_url, monkeypatch):
    store = LocalStore.open(sqlite_url)
    _short_busy_timeout(store, 20_000)
    locker = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None, check_same_thread=False)
    released = threading.Event()

    def lock_briefly():
        locker.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: (locker.execute("ROLLBACK"), released.set())).start()

    _interrupt_on_second_page(monkeypatch, lock_briefly)
    import_now(PROVIDER, "contacts", store, shared=False)
    assert released.is_set()
    checked, lost, duplicated, detail = reconcile_import(sim, store, PROVIDER, "contacts")
    assert (checked, lost, duplicated) == (RECORDS, 0, 0), detail
    locker.close()
    store.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_backend_killed_mid_run_never_half_applies(sim, postgres_url, monkeypatch):
    store = LocalStore.open(postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = make_url(postgres_url).database

    def kill_backends():
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})

    calls = _interrupt_on_second_page(monkeypatch, kill_backends)
    try:
        import_now(PROVIDER, "contacts", store, shared=False)
        completed = True
    except Exception as exc:  # noqa: BLE001 - a clean failure is acceptable
        completed = False
        assert "terminat" in str(exc).lower() or "connection" in str(exc).lower(), exc
    assert len(calls) >= 2
    rows, links = _whole_batches(store)
    assert rows == links and (completed or rows % 100 == 0), (rows, links)
    monkeypatch.undo()
    import_now(PROVIDER, "contacts", store, shared=False)
    checked, lost, duplicated, detail = reconcile_import(sim, store, PROVIDER, "contacts")
    assert (checked, lost, duplicated) == (RECORDS, 0, 0), detail
    store.dispose()
    admin.dispose()
