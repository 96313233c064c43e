"""Would HubSpot's CRM exports API read a big object faster than the list API at the rate limit?

The decision in docs/bulk.md rests on these figures:

1. **Measured**: a full import of ``--contacts`` contacts through the list API (100 a page) on the
   simulator at 100 and at 190 requests per 10 s (Free/Starter; Professional/Enterprise), median
   of ``--repeat`` runs, beside the window floor (the least time the sliding window allows) and the
   1-minute load average (lowest-highest over the runs).
2. **Computed** from the published limits (PROVIDERS.md §1.7; the exports guide): the list API's
   requests, floor, expected time (the floor times the overhead measured in 1.) and share of the
   daily allocation for 100,000 and 1,000,000 contacts, and the
   time the exports API would have to beat: HubSpot builds the file on its side (no published
   figure), one export at a time per account and 30 per rolling 24 hours.

Usage: ``python benchmarks/hubspot_exports.py [--contacts 20000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubspot_import import TOKEN, run, window_floor  # noqa: E402

from crm_pipelines.providers.hubspot.api import HubSpotClient  # noqa: E402
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader  # noqa: E402
from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator  # noqa: E402
from crm_pipelines.storage.store import LocalStore  # noqa: E402
from crm_pipelines.sync.importer import ImportWindow  # noqa: E402

PAGE = 100  #: records per list page
TIERS = {"Free/Starter": (100, 250_000), "Professional/Enterprise": (190, 625_000)}  #: requests per 10 s, per day
EXPORTS_PER_DAY = 30
WINDOW_S = 10.0


def measure(contacts: int, burst: int) -> tuple[float, int, float, float]:
    """One full import through the list API: seconds, requests, load at start and end."""
    load_start = os.getloadavg()[0]
    store = LocalStore.open(f"sqlite:///{Path(tempfile.mkdtemp()) / 'hubspot.db'}")
    config = HubSpotSimConfig(seed=7, contacts=contacts, companies=0, deals=0, tokens=(TOKEN,), burst_limit=burst, burst_window_s=WINDOW_S)
    with HubSpotSimulator(config) as sim:
        client = HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=burst, burst_window_s=WINDOW_S)
        now = datetime.now(timezone.utc)
        full = ImportWindow(now - timedelta(days=365), now, None, now + timedelta(seconds=1), "benchmark: full")
        result, seconds = run(HubSpotChangeReader(client, strategy="list"), store, full, client.stats)
        client.close()
        assert store.count("contacts") == sim.count("contacts") == contacts, "the list read did not reconcile"
    store.dispose()
    return seconds, int(result.api["calls"]), load_start, os.getloadavg()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"Measured: full import of {args.contacts:,} contacts through the list API on the simulator, median of {args.repeat} runs")
    header = f"{'tier':<26}{'requests':>9}{'seconds':>9}{'floor s':>9}{'ratio':>7}{'load':>12}"
    print(header)
    print("-" * len(header))
    overhead: dict[str, float] = {}  # measured time over the window floor, per tier
    for tier, (burst, _) in TIERS.items():
        runs = [measure(args.contacts, burst) for _ in range(args.repeat)]
        seconds, requests = statistics.median(r[0] for r in runs), runs[-1][1]
        floor = window_floor(requests, burst, WINDOW_S)
        overhead[tier] = seconds / floor if floor else 1.0
        loads = [value for r in runs for value in r[2:]]
        print(f"{tier:<26}{requests:>9}{seconds:>9.2f}{floor:>9.2f}{(f'{seconds / floor:.2f}' if floor else '-'):>7}{f'{min(loads):.2f}-{max(loads):.2f}':>12}")

    print()
    print(f"Computed from the published limits: list API {PAGE} a page; exports API one at a time, {EXPORTS_PER_DAY} per rolling 24 hours")
    header = f"{'contacts':>10}  {'tier':<26}{'list requests':>14}{'list floor s':>13}{'expected s':>11}{'daily share':>12}{'exports API must finish within':>32}"
    print(header)
    print("-" * len(header))
    for contacts in (100_000, 1_000_000):
        for tier, (burst, daily) in TIERS.items():
            requests = math.ceil(contacts / PAGE) + 1
            floor = window_floor(requests, burst, WINDOW_S)
            expected = floor * overhead[tier]  # the floor, with the overhead measured above
            print(f"{contacts:>10,}  {tier:<26}{requests:>14,}{floor:>13.0f}{expected:>11.0f}{requests / daily:>12.2%}{f'{expected:.0f} s ({expected / 60:.1f} min)':>32}")


if __name__ == "__main__":
    main()
