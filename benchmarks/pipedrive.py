"""Pipedrive import and export speed: 10,000 persons each way through the real code paths.

Import: an initial sync of 10,000 persons from the simulator (list pages of 500, the id sweep
for deletions). Export: 10,000 new local contacts to an empty simulator (one request per record,
sent concurrently), then a second run with nothing changed (should send nothing).

The floor is what the plan's rate allows: ``tokens needed / tokens per second`` when the burst
window counts tokens (``--burst-unit tokens``), ``requests / requests per second`` when it counts
requests (the official page). The real Ultimate plan (120 per 2 s) would make the 10,000-record
export take 834 s counted in tokens (167 s in requests), so the export runs with a scaled burst
limit (``--export-burst``, default 1,000 tokens per 2 s) and says so.

Usage: ``python benchmarks/pipedrive.py [--records 10000] [--burst-unit tokens] [--database URL]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.pipedrive.api import BURST_WINDOW_S, PLANS, PipedriveClient
from crm_pipelines.providers.pipedrive.reader import PipedriveChangeReader
from crm_pipelines.providers.pipedrive.simulator import PipedriveSimConfig, PipedriveSimulator
from crm_pipelines.providers.pipedrive.writer import PipedriveWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import

TOKEN = "bench-token"


def figures(label: str, stats: dict, tokens: int, seconds: float, burst: int, unit: str) -> tuple:
    requests = int(stats.get("calls", 0))
    needed = tokens if unit == "tokens" else requests
    floor = needed / (burst / BURST_WINDOW_S)
    return (label, requests, tokens, seconds, floor, seconds / floor if floor else float("nan"), int(stats.get("rate_limited", 0)))


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--burst-unit", choices=("tokens", "requests"), default="tokens")
    parser.add_argument("--import-burst", type=int, default=PLANS["ultimate"][0], help="burst limit per 2 s for the import (real Ultimate plan: 120)")
    parser.add_argument("--export-burst", type=int, default=1000, help="burst limit per 2 s for the export (scaled: see above)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database", help="SQLAlchemy URL (default: new SQLite files)")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args(argv)
    unit = args.burst_unit
    rows = []
    budget = 30_000 * PLANS["ultimate"][1] * 10  # an Ultimate company with 10 seats

    imported = exported = None
    # ---- import ----------------------------------------------------------------------------
    if not args.skip_import:
        url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'import.db'}"
        store = LocalStore.open(url)
        config = PipedriveSimConfig(seed=9, persons=args.records, organizations=0, deals=0, tokens=(TOKEN,), plan="ultimate", seats=10,
                                    burst_limit=args.import_burst, burst_unit=unit)
        with PipedriveSimulator(config) as sim:
            now = datetime.now(timezone.utc)
            window = ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "benchmark: initial sync")
            with PipedriveClient(api_token=TOKEN, base_url=sim.base_url, burst_limit=args.import_burst, burst_unit=unit) as client:
                before = sim.tokens_used()
                started = time.monotonic()
                result = run_import(PipedriveChangeReader(client), store, "pipedrive", "contacts", window, stats=client.stats)
                seconds = time.monotonic() - started
                tokens = sim.tokens_used() - before
            rows.append(figures(f"import (burst {args.import_burst}/2s)", result.api, tokens, seconds, args.import_burst, unit))
            imported = (result.outcome.created, sim.count("persons"))
        store.dispose()

    # ---- export ----------------------------------------------------------------------------
    if not args.skip_export:
        url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'export.db'}"
        store = LocalStore.open(url)
        now = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), [{"email": f"c{i}@bench.example.com.br", "first_name": "Zoë", "last_name": f"Gonçalves {i}", "created_at": now, "updated_at": now} for i in range(args.records)])
        config = PipedriveSimConfig(seed=9, persons=0, organizations=0, deals=0, tokens=(TOKEN,), plan="ultimate", seats=10, burst_limit=args.export_burst, burst_unit=unit)
        with PipedriveSimulator(config) as sim:
            for label in (f"export (burst {args.export_burst}/2s)", "export again, no changes"):
                with PipedriveClient(api_token=TOKEN, base_url=sim.base_url, burst_limit=args.export_burst, burst_unit=unit) as client:
                    before = sim.tokens_used()
                    started = time.monotonic()
                    result = export_entity(PipedriveWriter(client, concurrency=args.concurrency), store, "pipedrive", "contacts", stats=client.stats)
                    seconds = time.monotonic() - started
                    tokens = sim.tokens_used() - before
                rows.append(figures(label, result.api, tokens, seconds, args.export_burst, unit))
            exported = (sim.count("persons"), len(store.linked_records("pipedrive", "contacts")))
        store.dispose()

    print(f"Pipedrive simulator, burst counted in {unit}; {args.records} persons each way; Ultimate plan, 10 seats (daily budget {budget:,} tokens)")
    if args.export_burst != PLANS["ultimate"][0]:
        real = args.records * 5 / (PLANS["ultimate"][0] / BURST_WINDOW_S) if unit == "tokens" else args.records / (PLANS["ultimate"][0] / BURST_WINDOW_S)
        print(f"note: the export uses a scaled burst limit of {args.export_burst}/2 s; at the real Ultimate 120/2 s its floor would be {real:.0f} s")
    header = f"{'run':<30}{'requests':>9}{'tokens':>8}{'seconds':>9}{'floor s':>9}{'ratio':>7}{'429s':>6}"
    print(header)
    print("-" * len(header))
    for label, requests, tokens, seconds, floor, ratio, limited in rows:
        print(f"{label:<30}{requests:>9}{tokens:>8}{seconds:>9.2f}{floor:>9.2f}{ratio:>7.3f}{limited:>6}")
    if imported:
        print(f"import reconciled: {imported[0]} created locally of {imported[1]} at the provider")
    if exported:
        print(f"export reconciled: {exported[0]} persons at the provider, {exported[1]} local contacts linked (of {args.records})")
    return rows

if __name__ == "__main__":
    main()
