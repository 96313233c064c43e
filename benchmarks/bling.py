"""Bling import and export of 10,000 contacts against the simulator, through the real code paths.

* Import at Bling's real limit (3 requests per second) with list items carrying every mapped field
  (simulator switch ``list_shape="full"``): 100 pages, about 34 s. With the documented summary
  list items, each contact costs one more read by id (10,100 requests, 56 min at 3/s): that run
  uses a scaled limit.
* Export at a scaled limit: 10,000 single-record creates at the real 3/s would take 55 min.

For each run: requests, wall time, the floor the limit sets (requests / allowed rate) and the
ratio time / floor (goal at most 1.1).

Usage: ``python benchmarks/bling.py [--contacts 10000] [--export-rate 100] [--skip-summary]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.bling.api import BlingAuth, BlingClient
from crm_pipelines.providers.bling.reader import BlingChangeReader
from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, BlingSimConfig, BlingSimulator
from crm_pipelines.providers.bling.writer import BlingWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import


def simulator(rate: int, **config) -> BlingSimulator:
    now = datetime.now(timezone.utc)
    BlingAuth._REGISTRY.clear()
    return BlingSimulator(BlingSimConfig(seed=9, per_second=rate, reference_time=now - timedelta(hours=1), clock_start=now, **config)).start()


def client(sim: BlingSimulator, rate: int) -> BlingClient:
    return BlingClient(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN,
                       base_url=sim.base_url + "/Api/v3", per_second=rate)


def report(label: str, requests: int, seconds: float, rate: int, note: str = "") -> tuple:
    floor = requests / rate
    print(f"{label:<44} requests {requests:>6}  wall {seconds:7.1f} s  floor {floor:7.1f} s  ratio {seconds / floor:5.3f}  {note}")
    return (label, requests, seconds, floor)


def bench_import(n: int, rate: int, shape: str, db: Path) -> tuple:
    sim = simulator(rate, contacts=n, companies=0, deals=0, list_shape=shape)
    store = LocalStore.open(f"sqlite:///{db}")
    try:
        with client(sim, rate) as c:
            sim.reset_stats()
            now = datetime.now(timezone.utc)
            started = time.monotonic()
            result = run_import(BlingChangeReader(c), store, "bling", "contacts", ImportWindow(now, now, None, now), stats=c.stats)
            seconds = time.monotonic() - started
        assert result.outcome.created == n, result.summary()
        requests = int(result.api["calls"])
        note = "real limit" if rate == 3 else f"SCALED limit {rate}/s (real 3/s: {requests / 3 / 60:.0f} min)"
        return report(f"import {n} contacts, list items '{shape}'", requests, seconds, rate, note + f"; 429s {result.api['rate_limited']}")
    finally:
        store.dispose()
        sim.stop()


def bench_export(n: int, rate: int, db: Path) -> tuple:
    sim = simulator(rate, contacts=0, companies=0, deals=0)
    store = LocalStore.open(f"sqlite:///{db}")
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"first_name": "João", "last_name": f"Conceição {i}", "phone": f"(11) 3000-{i % 10000:04d}", "created_at": now, "updated_at": now} for i in range(n)])
    try:
        with client(sim, rate) as c:
            started = time.monotonic()
            result = export_entity(BlingWriter(c), store, "bling", "contacts", stats=c.stats)
            seconds = time.monotonic() - started
        assert result.created == n and sim.count("contacts") == n, result.summary()
        requests = int(result.api["calls"])
        return report(f"export {n} contacts (single POSTs)", requests, seconds, rate, f"SCALED limit {rate}/s (real 3/s: {requests / 3 / 60:.0f} min); 429s {result.api['rate_limited']}")
    finally:
        store.dispose()
        sim.stop()


def main(argv: list[str] | None = None) -> list[tuple]:
    """Run the benchmark, print one line per run and return the rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--import-rate", type=int, default=3, help="requests/second for the full-items import (real: 3)")
    parser.add_argument("--export-rate", type=int, default=100, help="scaled requests/second for the export and the summary-shape import")
    parser.add_argument("--skip-import", action="store_true", help="skip the import with full list items")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-summary", action="store_true", help="skip the import with summary list items (10,100 requests)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_import:
            rows.append(bench_import(args.contacts, args.import_rate, "full", Path(tmp) / "import_full.db"))
        if not args.skip_summary:
            rows.append(bench_import(args.contacts, args.export_rate, "summary", Path(tmp) / "import_summary.db"))
        if not args.skip_export:
            rows.append(bench_export(args.contacts, args.export_rate, Path(tmp) / "export.db"))
    return rows


if __name__ == "__main__":
    main()
