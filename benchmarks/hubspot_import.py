"""HubSpot import speed against the simulator at its published rate limits.

Prints, for a full import (list endpoint) and an incremental one (search endpoint), the time
taken, the requests made and two ratios:

* ``time / (requests / allowed rate)``: the figure the project promises to keep near or below 1.1
  (the rate limit, not our code, sets the pace);
* ``time / window floor``: against the strict least time a sliding window allows, where the first
  window's worth of requests may go at once and each further one waits for a slot.

Usage: ``python benchmarks/hubspot_import.py [--contacts 10000] [--changed 10000] [--database URL]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.importer import ImportWindow, run_import

TOKEN = "bench-token"


def window_floor(requests: int, per_window: int, window_s: float) -> float:
    return max(math.ceil(requests / per_window) - 1, 0) * window_s


def run(reader, store, window, stats):
    started = time.monotonic()
    result = run_import(reader, store, "hubspot", "contacts", window, stats=stats)
    return result, time.monotonic() - started


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=10_000, help="contacts changed before the incremental run")
    parser.add_argument("--burst-limit", type=int, default=100, help="requests per window (HubSpot Free/Starter: 100 per 10 s)")
    parser.add_argument("--burst-window", type=float, default=10.0, help="window of the burst limit in seconds (HubSpot: 10)")
    parser.add_argument("--search-per-second", type=int, default=5)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    args = parser.parse_args(argv)

    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    store = LocalStore.open(url)
    config = HubSpotSimConfig(seed=7, contacts=args.contacts, companies=0, deals=0, tokens=(TOKEN,),
                              burst_limit=args.burst_limit, burst_window_s=args.burst_window, search_rate_per_s=args.search_per_second)
    rows = []
    with HubSpotSimulator(config) as sim:
        # Full import: list endpoint, 100 per page, ten-second window.
        client = HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=args.burst_limit, burst_window_s=args.burst_window, search_per_second=args.search_per_second)
        now = datetime.now(timezone.utc)
        full = ImportWindow(now - timedelta(days=365), now, None, now + timedelta(seconds=1), "benchmark: full")
        result, seconds = run(HubSpotChangeReader(client, strategy="list"), store, full, client.stats)
        requests = result.api["calls"]
        rate = args.burst_limit / args.burst_window
        rows.append(("full import (list)", result.fetched, requests, seconds, requests / rate, window_floor(requests, args.burst_limit, args.burst_window), result.api["rate_limited"]))
        assert store.count("contacts") == sim.count("contacts"), "full import did not reconcile"
        client.close()

        # Incremental import: search endpoint, 200 per page, 5 per second.
        if args.changed:
            time.sleep(0.01)
            since = datetime.now(timezone.utc)
            sim.modify("contacts", n=min(args.changed, args.contacts))
            client = HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=args.burst_limit, burst_window_s=args.burst_window, search_per_second=args.search_per_second)
            # The simulator stamps bulk changes 1 ms apart, so read up to the window end.
            window = ImportWindow(since, since + timedelta(minutes=30), since - timedelta(seconds=1), since + timedelta(minutes=30), "benchmark: incremental")
            result, seconds = run(HubSpotChangeReader(client, strategy="search"), store, window, client.stats)
            assert result.fetched == min(args.changed, args.contacts), f"incremental read {result.fetched} of {args.changed} changes"
            requests = result.api["calls"]
            rows.append(("incremental (search)", result.fetched, requests, seconds, requests / args.search_per_second, window_floor(requests, args.search_per_second, 1.0), result.api["rate_limited"]))
            client.close()
        served_429 = sim.stats["rate_limited_total"]

    print(f"HubSpot simulator: {args.contacts} contacts, {args.burst_limit} requests/{args.burst_window:g} s, search {args.search_per_second}/s; database {url.split(':')[0]}")
    header = f"{'run':<22}{'records':>9}{'requests':>10}{'seconds':>10}{'req/rate s':>12}{'ratio':>8}{'window floor s':>16}{'ratio':>8}{'429s':>6}"
    print(header)
    print("-" * len(header))
    for name, records, requests, seconds, rate_floor, floor, limited in rows:
        ratio_rate = seconds / rate_floor if rate_floor else float("nan")
        ratio_floor = seconds / floor if floor else float("nan")
        print(f"{name:<22}{records:>9}{requests:>10}{seconds:>10.2f}{rate_floor:>12.2f}{ratio_rate:>8.3f}{floor:>16.2f}{ratio_floor:>8.3f}{limited:>6}")
    print(f"429 responses served by the simulator: {served_429}")
    store.dispose()
    return rows

if __name__ == "__main__":
    main()
