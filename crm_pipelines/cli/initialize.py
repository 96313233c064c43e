"""``crm-pipelines init``: create or migrate the local database and Dagster's storage, once.

Run it before starting the webserver and the daemon (and after each upgrade): processes that
start together on a fresh PostgreSQL database would otherwise race to create Dagster's tables.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class InitResult:
    database: str  #: the local database's URL, password masked
    revision: str | None  #: its schema revision after migrating
    dagster_home: str


def initialize(database: str | None = None) -> InitResult:
    """Migrate the local database to the newest schema, then create or upgrade the Dagster instance's storage."""
    import dagster as dg

    from crm_pipelines.cli.demo import _dagster_home
    from crm_pipelines.storage.engine import database_url, safe_url
    from crm_pipelines.storage.migrate import current_revision
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open(database)
    try:
        revision = current_revision(store.engine)
    finally:
        store.dispose()
    home = os.environ.get("DAGSTER_HOME") or _dagster_home()
    with dg.DagsterInstance.get() as instance, contextlib.redirect_stdout(io.StringIO()):  # Dagster prints its progress
        instance.upgrade()
    return InitResult(safe_url(database_url(database)), revision, home)


def cmd_init(args: argparse.Namespace) -> int:
    result = initialize(args.database)
    print(f"local database {result.database}: schema {result.revision}")
    print(f"Dagster instance {result.dagster_home}: storage created and up to date")
    print("Start the webserver and the daemon now (in any order).")
    return 0


def add_parsers(sub) -> None:
    parser = sub.add_parser("init", help="create or migrate the local database and Dagster's storage (run once before starting Dagster)")
    parser.add_argument("--database", help="SQLAlchemy URL of the local database (default: $CRM_DATABASE_URL or ./crm_pipelines.db)")
    parser.set_defaults(func=cmd_init)
