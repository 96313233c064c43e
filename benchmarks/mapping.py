"""A custom field mapping's round trip: 1,000 contacts exported to each simulator and imported back.

For each provider that reads and writes through a mapping file, the test mapping of
``crm_pipelines_tests/mapping`` (two custom fields, a default, a constant, a value map) sends
``--records`` local contacts to a fresh simulator (its limits raised) and imports them into
another SQLite database; prints the export and import times (median of ``--repeat``), the field
differences found (0 expected) and the load average.

Usage: ``python benchmarks/mapping.py [--records 1000] [--repeat 3] [--providers hubspot,salesforce,pipedrive,bling,gestaoclick,shopify]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_run(provider: str, records: int) -> tuple[float, float, int]:
    from crm_pipelines.providers.registry import plugin
    from crm_pipelines_tests.mapping.round_trip import round_trip, simulator

    sim, limits = simulator(provider)
    sim.start()
    saved = dict(os.environ)
    try:
        os.environ.update({**plugin(provider).simulator_env(sim), **limits})
        with tempfile.TemporaryDirectory() as folder:
            trip = round_trip(provider, records, Path(folder), f"sqlite:///{folder}/target.db")
            trip.dispose()
        return trip.export_s, trip.import_s, len(trip.differences)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--providers", default="hubspot,salesforce,pipedrive,bling,gestaoclick,shopify")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.records:,} contacts, median of {args.repeat}")
    print(f"{'provider':<12} {'export s':>9} {'import s':>9} {'differences':>12}")
    for provider in args.providers.split(","):
        runs = [one_run(provider, args.records) for _ in range(args.repeat)]
        print(f"{provider:<12} {statistics.median(r[0] for r in runs):>9.2f} {statistics.median(r[1] for r in runs):>9.2f} {max(r[2] for r in runs):>12}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
