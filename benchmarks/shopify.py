"""Shopify import and export speed against the simulator's real cost limits.

1. Import of ``--customers`` (10,000) customers from the simulator into an empty local database,
   on the ``--import-plan`` (default standard: 2,000-point bucket restored at 100 points/s).
2. Export of as many new local contacts to an empty simulator, on the ``--export-plan`` (default
   Plus: 20,000 points at 1,000/s: on a standard plan 10,000 customerCreate mutations cost
   100,000 points, more than 16 minutes of restore), then a second export with nothing changed.

For each run it prints the requests made, the cost points charged (actual) and asked for
(requested), the wall time, the floor the cost limit sets (``(actual points - bucket size) /
restore rate``: the bucket starts full, after that every point must be restored) and the ratio
time/floor (goal at most 1.1).

Usage: ``python benchmarks/shopify.py [--customers 10000] [--import-plan standard] [--export-plan plus] [--database URL]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.shopify.api import ShopifyClient
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.providers.shopify.simulator import ShopifySimConfig, ShopifySimulator
from crm_pipelines.providers.shopify.writer import ShopifyWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import

TOKEN = "shpat_bench_token"
PLANS = {"standard": (2000.0, 100.0), "plus": (20000.0, 1000.0)}


def fresh_store(database: str | None, label: str) -> tuple[LocalStore, str]:
    url = database or f"sqlite:///{Path(tempfile.mkdtemp()) / f'{label}.db'}"
    return LocalStore.open(url), url


def measure(label: str, plan: str, work) -> dict:
    size, rate = PLANS[plan]
    started = time.monotonic()
    client, outcome = work(size, rate)
    seconds = time.monotonic() - started
    cost = client.cost.snapshot()
    calls = client.stats.snapshot()
    floor = max(cost["actual"] - size, 0) / rate
    return {"label": label, "plan": plan, "records": outcome, "requests": calls["calls"], "requested": cost["requested"], "actual": cost["actual"],
            "throttled": cost["throttled"], "seconds": seconds, "floor": floor}


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--import-plan", choices=sorted(PLANS), default="standard")
    parser.add_argument("--export-plan", choices=sorted(PLANS), default="plus")
    parser.add_argument("--database", help="SQLAlchemy URL of an empty database (default: new SQLite files)")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args(argv)
    rows = []

    imported_ok = exported = linked = url = None
    # ---- import
    if not args.skip_import:
        store, url = fresh_store(args.database, "import")
        config = ShopifySimConfig(seed=9, customers=args.customers, orders=0, companies=0, tokens=(TOKEN,), plan=args.import_plan)
        with ShopifySimulator(config) as sim:
            def do_import(size, rate):
                client = ShopifyClient(access_token=TOKEN, base_url=sim.base_url, bucket_size=size, restore_rate=rate)
                now = datetime.now(timezone.utc)
                window = ImportWindow(now - timedelta(days=365), now, None, now + timedelta(seconds=5), "benchmark: full")
                result = run_import(ShopifyChangeReader(client), store, "shopify", "contacts", window, stats=client.stats)
                client.close()
                return client, result.outcome.created

            rows.append(measure("import of customers", args.import_plan, do_import))
            imported_ok = set(store.linked_records("shopify", "contacts")) == set(sim.records("contacts"))
        store.dispose()

    # ---- export
    if not args.skip_export:
        store, url = fresh_store(args.database, "export")
        now = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), [{"email": f"c{i}@bench.example.com", "first_name": "Zoë", "last_name": f"Gonçalves {i}", "created_at": now, "updated_at": now} for i in range(args.customers)])
        config = ShopifySimConfig(seed=9, customers=0, orders=0, companies=0, tokens=(TOKEN,), plan=args.export_plan)
        with ShopifySimulator(config) as sim:
            for label in ("export of new contacts", "second export, no changes"):
                def do_export(size, rate):
                    client = ShopifyClient(access_token=TOKEN, base_url=sim.base_url, bucket_size=size, restore_rate=rate)
                    result = export_entity(ShopifyWriter(client), store, "shopify", "contacts", stats=client.stats)
                    client.close()
                    return client, result.created

                rows.append(measure(label, args.export_plan, do_export))
            exported = sim.count("contacts")
            linked = len(store.linked_records("shopify", "contacts"))
        store.dispose()

    print(f"Shopify simulator (GraphQL cost limits); {args.customers} records; database {(url or 'sqlite').split(':')[0]}")
    if args.export_plan == "plus":
        print("export runs on the Plus limits (20,000 points, 1,000/s): on a standard plan 10,000 creates = 100,000 points = over 16 minutes of restore")
    header = f"{'run':<28}{'plan':>9}{'records':>9}{'requests':>10}{'requested':>11}{'actual':>9}{'throttled':>10}{'seconds':>9}{'floor s':>9}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r['seconds'] / r['floor']:.3f}" if r["floor"] else "-"
        print(f"{r['label']:<28}{r['plan']:>9}{r['records']:>9}{r['requests']:>10}{r['requested']:>11}{r['actual']:>9}{r['throttled']:>10}{r['seconds']:>9.2f}{r['floor']:>9.2f}{ratio:>7}")
    print(f"import reconciled: {imported_ok}; export: {exported} customers at the provider, {linked} local contacts linked (of {args.customers})")
    return rows

if __name__ == "__main__":
    main()
