"""HubSpot export speed: 10,000 new local contacts to an empty simulator, then a run with no changes.

Prints the requests made (writes and matching look-ups), the time, and the time over the floor
the ten-second limit sets (``requests / allowed requests per second``); then the write calls of
a second run with nothing changed locally (should be 0).

Usage: ``python benchmarks/hubspot_export.py [--contacts 10000] [--database URL]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.providers.hubspot.writer import HubSpotWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity

TOKEN = "bench-token"


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--burst-limit", type=int, default=100, help="requests per window (HubSpot Free/Starter: 100 per 10 s)")
    parser.add_argument("--burst-window", type=float, default=10.0, help="window of the burst limit in seconds (HubSpot: 10)")
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    args = parser.parse_args(argv)

    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    store = LocalStore.open(url)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"c{i}@bench.example.com", "first_name": "Zoë", "last_name": f"Gonçalves {i}", "created_at": now, "updated_at": now} for i in range(args.contacts)])

    config = HubSpotSimConfig(seed=9, contacts=0, companies=0, deals=0, tokens=(TOKEN,), burst_limit=args.burst_limit, burst_window_s=args.burst_window)
    with HubSpotSimulator(config) as sim:
        rows = []
        for label in ("export of new contacts", "second run, no changes"):
            with HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=args.burst_limit, burst_window_s=args.burst_window) as client:
                started = time.monotonic()
                result = export_entity(HubSpotWriter(client), store, "hubspot", "contacts", stats=client.stats)
                seconds = time.monotonic() - started
            kinds = result.api.get("by_kind", {})
            rows.append((label, result.created, kinds.get("write", 0), kinds.get("match", 0), result.api.get("calls", 0), seconds, result.api.get("rate_limited", 0)))
        remote = sim.count("contacts")
        linked = len(store.linked_records("hubspot", "contacts"))

    rate = args.burst_limit / args.burst_window
    print(f"HubSpot simulator, {args.burst_limit} requests/{args.burst_window:g} s; {args.contacts} local contacts; database {url.split(':')[0]}")
    header = f"{'run':<26}{'created':>9}{'writes':>8}{'lookups':>9}{'requests':>10}{'seconds':>9}{'floor s':>9}{'ratio':>7}{'429s':>6}"
    print(header)
    print("-" * len(header))
    for label, created, writes, lookups, calls, seconds, limited in rows:
        floor = calls / rate
        ratio = f"{seconds / floor:.3f}" if floor else "-"
        print(f"{label:<26}{created:>9}{writes:>8}{lookups:>9}{calls:>10}{seconds:>9.2f}{floor:>9.2f}{ratio:>7}{limited:>6}")
    print(f"reconciled: {remote} records at the provider, {linked} local records linked (of {args.contacts})")
    store.dispose()
    return rows

if __name__ == "__main__":
    main()
