"""The data-quality reports of one integration over a large store, on PostgreSQL.

Writes the planted store of the tests (``crm_pipelines_tests/helpers/planted.py``: by default
1,000,000 contacts linked to one HubSpot integration, with 200 invalid phones, 50 pairs of
duplicates by e-mail and by CPF, 30 orphans, 20 stale records and 10 records shared with a
Pipedrive account) into a new database, then builds every report of ``hubspot/loja_a``
contacts ``--repeat`` times. Prints each run's time, the median and the load average, and checks
that every planted defect was counted exactly.

Usage: ``python benchmarks/quality_reports.py [--contacts 1000000] [--repeat 3] [--admin-url URL] [--keep]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def expected(planted) -> dict[str, int]:
    return {"records": planted.linked, "invalid/phone": 200, "duplicate_groups/email": 50, "duplicate_groups/document": 50,
            "orphans": 30, "stale": 20, "provider_differences": 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL URL of a database from which to create the benchmark's own")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (its URL is printed)")
    args = parser.parse_args()

    from crm_pipelines.quality.reports import QualityReporter
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines_tests.helpers.planted import MIN_CONTACTS, plant

    if args.contacts < MIN_CONTACTS:
        parser.error(f"--contacts must be at least {MIN_CONTACTS:,}: the planted defects go up to that id")

    name = f"crm_quality_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    store = LocalStore.open(url)
    try:
        started = time.monotonic()
        planted = plant(store, args.contacts)
        print(f"planted {args.contacts:,} contacts in {time.monotonic() - started:.1f} s (load {_load()})")
        integration = store.integrations.get("hubspot", "loja_a")
        reporter = QualityReporter(store)
        times = []
        for run in range(args.repeat):
            started = time.monotonic()
            report = reporter.report(integration, "contacts")
            times.append(time.monotonic() - started)
            print(f"run {run + 1}: {times[-1]:.2f} s (load {_load()})")
        figures = report.figures()
        wrong = {k: (figures.get(k), v) for k, v in expected(planted).items() if figures.get(k) != v}
        print(f"all reports of hubspot/loja_a contacts, {args.contacts:,} contacts on PostgreSQL: median of {args.repeat} {statistics.median(times):.2f} s "
              f"(load average {_load()})")
        print("every planted defect counted exactly" if not wrong else f"MISCOUNTED (found, planted): {wrong}")
        if args.keep:
            print(f"database kept: {make_url(url).render_as_string(hide_password=True)}")
        return 0 if not wrong else 1
    finally:
        store.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
