"""Four processes, one HubSpot account: do they share its budget?

Starts the HubSpot simulator allowing 10 requests per second (100 per 10-second window, as a
Free/Starter portal), then four ``crm-pipelines`` processes at once against it: three full imports
(companies at low priority as a backfill would, deals, contacts at high priority as the schedule
would) and an export of new local contacts. Each process takes its sends from the budget kept in
the local database. Prints the 429s the simulator served (goal 0), the combined request rate over
the run against the allowance (goal within 10%), and the most requests seen in any 10-second
window (must not exceed 100).

Usage: ``python benchmarks/shared_budget.py [--records 15000] [--database URL]``
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert

from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore

TOKEN = "bench-shared-budget"
PER_WINDOW, WINDOW_S = 100, 10.0


def busiest_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_right(times, t + window_s - 1e-9) - i for i, t in enumerate(times)), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=15_000, help="records per entity at the provider, and local contacts to export")
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="crm-budget-"))
    url = args.database or f"sqlite:///{workdir / 'crm.db'}"
    sim = HubSpotSimulator(HubSpotSimConfig(seed=3, contacts=args.records, companies=args.records, deals=args.records, tokens=(TOKEN,),
                                            burst_limit=PER_WINDOW, burst_window_s=WINDOW_S))
    sim.start()
    store = LocalStore.open(url)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"bench{i}@exemplo.com.br", "first_name": "João", "created_at": now, "updated_at": now} for i in range(args.records)])
    env = dict(os.environ, HUBSPOT_BASE_URL=sim.base_url, HUBSPOT_ACCESS_TOKEN=TOKEN, CRM_DATABASE_URL=url)
    commands = [
        ["sync", "hubspot", "companies", "--full", "--priority", "low"],
        ["sync", "hubspot", "deals", "--full"],
        ["sync", "hubspot", "contacts", "--full", "--priority", "high"],
        ["export", "hubspot", "contacts", "--only-new"],
    ]
    print(f"simulator {sim.base_url}: {args.records} companies, deals and contacts; {PER_WINDOW} requests per {WINDOW_S:.0f} s allowed")
    print(f"local database {store.engine.url.render_as_string(hide_password=True)}; starting {len(commands)} processes ...")
    sim.reset_stats()
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "crm_pipelines.cli", *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    finished = {}
    for command, proc in zip(commands, procs):
        output = proc.communicate()[0]
        finished[" ".join(command)] = (proc.returncode, time.monotonic() - started, output.strip().splitlines()[-1] if output.strip() else "")
    stats = sim.stats
    times = sim.stats_recorder.arrival_times()
    sim.stop()
    store.dispose()

    for command, (code, seconds, last) in finished.items():
        print(f"  {command:<45} exit {code}  {seconds:6.1f}s  {last}")
    span = max(times) - min(times) if len(times) > 1 else 0.0
    allowed = PER_WINDOW / WINDOW_S
    rate = len(times) / span if span else 0.0
    # The first window may be spent at once; the sustained rate is measured after it.
    later = [t for t in times if t >= min(times) + WINDOW_S]
    sustained = len(later) / (span - WINDOW_S) if span > WINDOW_S else 0.0
    print()
    print(f"requests served          {stats['total_requests']}")
    print(f"429s served              {stats['rate_limited_total']}   (goal 0)")
    print(f"busiest 10-s window      {busiest_window(times, WINDOW_S)} requests   (limit {PER_WINDOW})")
    print(f"combined rate            {rate:.2f} req/s over {span:.1f} s = {rate / allowed:.3f} x the allowance of {allowed:.0f} req/s")
    print(f"sustained after 1st window {sustained:.2f} req/s = {sustained / allowed:.3f} x the allowance   (goal within 10%: 0.90-1.10)")
    return 0 if all(code == 0 for code, _, _ in finished.values()) and stats["rate_limited_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
