"""Shared fixtures: local databases (SQLite file and a throwaway PostgreSQL database)."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.conflicts import ConflictPolicy
from crm_pipelines.storage.store import LocalStore

POSTGRES_ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def own_default_database(tmp_path, monkeypatch):
    """What falls back on the default database (``$CRM_DATABASE_URL``, else a file in the working
    directory) gets a file of the test's own: tests never share one, nor write into the checkout."""
    if not os.environ.get("CRM_DATABASE_URL"):
        monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'default.db'}")


def pytest_addoption(parser):
    parser.addoption("--with-slow", action="store_true", help="also run the slow kill, scale and end-to-end cases (CI runs them with -m slow)")


def pytest_collection_modifyitems(config, items):
    """Leave the slow kill, scale and end-to-end cases out unless asked for: by ``-m`` (CI runs
    ``-m slow``), by ``--with-slow``, or by naming a test (``path::name``)."""
    if config.getoption("markexpr") or config.getoption("with_slow") or any("::" in arg for arg in config.args):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture
def make_postgres_database():
    """Create new, empty PostgreSQL databases on the local server; all are dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    created = []

    def _make() -> str:
        name = f"crm_test_{uuid.uuid4().hex[:12]}"
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # the suite must not silently skip PostgreSQL
            pytest.fail(f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).render_as_string()} is not usable: {exc}")
        created.append(name)
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield _make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(make_postgres_database):
    """A new, empty PostgreSQL database on the local server, dropped afterwards."""
    return make_postgres_database()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request):
    """Run the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def store(db_url):
    store = LocalStore.open(db_url)
    yield store
    store.dispose()


@pytest.fixture
def open_store(db_url):
    """Open stores on ``db_url`` with a conflict policy (``"hubspot=local_wins,*=manual"``)."""
    stores = []

    def _open(strategies: str) -> LocalStore:
        store = LocalStore.open(db_url, conflict_policy=ConflictPolicy.parse(strategies))
        stores.append(store)
        return store

    yield _open
    for store in stores:
        store.dispose()


@pytest.fixture
def start_hubspot_sim():
    """Start HubSpot simulators with the given config fields; all are stopped after the test."""
    started = []

    def _start(**config):
        sim = HubSpotSimulator(HubSpotSimConfig(**config))
        sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in started:
        sim.stop()

