"""GestaoClick import and export speed against the simulator, through the real code paths.

* **Import**: 10,000 clientes PF read by the full scan every GestaoClick import does, at the real
  limit (3 requests per second) and the simulator's default page size (20 per page, ``limite``
  not honoured: the conservative reading of the sources), i.e. 500 pages plus one for
  ``tipo_pessoa=ES``.
* **Export**: 10,000 new local contacts, one ``POST /clientes`` each (no bulk endpoint). At the
  real 3 requests per second that is about 55 minutes, so the limit is SCALED (default 100 per
  second, on both the simulator and the client) and the output says so; a second run with nothing
  changed must send nothing.

For each run it prints the requests made, the wall time, the floor the limit sets
(``requests / allowed rate``), the stricter sliding-window floor (the first window's requests go
at once) and the ratio time / floor (goal at most 1.1).

Usage: ``python benchmarks/gestaoclick.py [--contacts 10000] [--export-per-second 100] [--database URL]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.gestaoclick.api import REQUESTS_PER_SECOND, GestaoClickClient
from crm_pipelines.providers.gestaoclick.reader import GestaoClickChangeReader
from crm_pipelines.providers.gestaoclick.simulator import GestaoClickSimConfig, GestaoClickSimulator
from crm_pipelines.providers.gestaoclick.writer import GestaoClickWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import

ACCESS, SECRET = "bench-access-token", "bench-secret-token"


def window_floor(requests: int, per_second: int) -> float:
    return max(math.ceil(requests / per_second) - 1, 0) * 1.0


def client(sim: GestaoClickSimulator, per_second: int) -> GestaoClickClient:
    return GestaoClickClient(access_token=ACCESS, secret_access_token=SECRET, base_url=sim.base_url, per_second=per_second)


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--import-per-second", type=int, default=REQUESTS_PER_SECOND, help="limit for the import (real: 3)")
    parser.add_argument("--export-per-second", type=int, default=100, help="scaled limit for the export (real: 3)")
    parser.add_argument("--database", help="SQLAlchemy URL (default: new SQLite files)")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    notes = []

    if not args.skip_import:
        url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'import.db'}"
        store = LocalStore.open(url)
        config = GestaoClickSimConfig(seed=7, contacts=args.contacts, companies=0, deals=0, credentials=((ACCESS, SECRET),),
                                      per_second=args.import_per_second)
        with GestaoClickSimulator(config) as sim:
            now = datetime.now(timezone.utc)
            window = ImportWindow(now - timedelta(days=365), now, None, now + timedelta(seconds=1), "benchmark: full scan")
            with client(sim, args.import_per_second) as gc:
                started = time.monotonic()
                result = run_import(GestaoClickChangeReader(gc), store, "gestaoclick", "contacts", window, stats=gc.stats)
                seconds = time.monotonic() - started
            assert store.count("contacts") == sim.count("contacts") == args.contacts, "import did not reconcile"
            requests = result.api["calls"]
            rows.append(("import, full scan", result.fetched, requests, seconds, args.import_per_second, sim.stats["rate_limited_total"]))
            notes.append(f"import: {'real' if args.import_per_second == REQUESTS_PER_SECOND else 'SCALED'} limit {args.import_per_second}/s, page size {config.page_size} (limite not honoured: simulator default), database {url.split(':')[0]}")
        store.dispose()

    if not args.skip_export:
        url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'export.db'}"
        store = LocalStore.open(url)
        now = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), [{"email": f"c{i}@bench.exemplo.com.br", "first_name": "Conceição", "last_name": f"Gonçalves {i}",
                                             "document": None, "created_at": now, "updated_at": now} for i in range(args.contacts)])
        rate = args.export_per_second
        config = GestaoClickSimConfig(seed=9, contacts=0, companies=0, deals=0, credentials=((ACCESS, SECRET),), per_second=rate)
        with GestaoClickSimulator(config) as sim:
            for label in ("export of new contacts", "second run, no changes"):
                with client(sim, rate) as gc:
                    started = time.monotonic()
                    result = export_entity(GestaoClickWriter(gc), store, "gestaoclick", "contacts", stats=gc.stats)
                    seconds = time.monotonic() - started
                rows.append((label, result.created, result.api.get("calls", 0), seconds, rate, sim.stats["rate_limited_total"]))
            assert sim.count("contacts") == args.contacts, f"GestaoClick holds {sim.count('contacts')} records for {args.contacts} local ones"
        real_minutes = (args.contacts + 4) / REQUESTS_PER_SECOND / 60
        notes.append(f"export: SCALED limit {rate}/s on simulator and client (at the real {REQUESTS_PER_SECOND}/s the same "
                     f"{args.contacts + 4} requests would take {real_minutes:.0f} min); database {url.split(':')[0]}")
        store.dispose()

    header = f"{'run':<26}{'records':>9}{'requests':>10}{'limit/s':>9}{'seconds':>10}{'floor s':>10}{'ratio':>8}{'window floor':>14}{'ratio':>8}{'429s':>6}"
    print("GestaoClick simulator benchmark")
    for note in notes:
        print(f"  {note}")
    print(header)
    print("-" * len(header))
    for name, records, requests, seconds, per_second, limited in rows:
        floor = requests / per_second
        strict = window_floor(requests, per_second)
        ratio = seconds / floor if floor else float("nan")
        ratio_strict = seconds / strict if strict else float("nan")
        print(f"{name:<26}{records:>9}{requests:>10}{per_second:>9}{seconds:>10.2f}{floor:>10.2f}{ratio:>8.3f}{strict:>14.2f}{ratio_strict:>8.3f}{limited:>6}")
    return rows

if __name__ == "__main__":
    main()
