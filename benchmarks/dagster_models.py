"""Three ways to show many integrations in Dagster, measured at the same scale.

For N integrations of one provider (3 entities each), prints the time to build and load the
definitions, the number of assets and the number of partitions of one asset for:

* **assets per integration**: ``<integration>/contacts``... (each with 30-minute time partitions);
* **time x integration partitions**: one asset per entity, ``MultiPartitionsDefinition`` of the
  30-minute windows since the start date and a dynamic integration dimension;
* **integration partitions** (what the project uses): one asset per entity partitioned by a dynamic
  integration dimension; the windows are the integration's synced-through point, not partitions.

Usage: ``python benchmarks/dagster_models.py [--integrations 500] [--days 334]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

#: Each model builds import assets as the project does (a decorated function with two checks, a
#: pool and tags) and export assets beside them.
ASSET = """
def asset(key, group, parts):
    @dg.asset(key=key, group_name=group, partitions_def=parts, pool="hubspot_api", tags={"crm/provider": "hubspot"},
              check_specs=[dg.AssetCheckSpec("error_rate", asset=dg.AssetKey(key)), dg.AssetCheckSpec("sync_succeeded", asset=dg.AssetKey(key))])
    def _body(context):
        return None
    return _body
"""

MODELS = {
    "assets per integration": """
        parts = dg.TimeWindowPartitionsDefinition(cron_schedule="*/30 * * * *", start=START, fmt="%Y-%m-%d-%H:%M", timezone="UTC", end_offset=1)
        assets = [asset([f"store{i}", e + kind], f"store{i}", parts) for i in range(N) for e in ("contacts", "companies", "deals") for kind in ("", "_export")]
        partitions = len(parts.get_partition_keys())
    """,
    "time x integration partitions": """
        windows = dg.TimeWindowPartitionsDefinition(cron_schedule="*/30 * * * *", start=START, fmt="%Y-%m-%d-%H:%M", timezone="UTC", end_offset=1)
        parts = dg.MultiPartitionsDefinition({"window": windows, "integration": dg.DynamicPartitionsDefinition(name="hubspot_integrations")})
        assets = [asset(["hubspot", e + kind], "hubspot", parts) for e in ("contacts", "companies", "deals") for kind in ("", "_export")]
        partitions = len(windows.get_partition_keys()) * N
    """,
    "integration partitions": """
        parts = dg.DynamicPartitionsDefinition(name="hubspot_integrations")
        assets = [asset(["hubspot", e + kind], "hubspot", parts) for e in ("contacts", "companies", "deals") for kind in ("", "_export")]
        partitions = N
    """,
}

PROGRAM = """
import time, warnings
warnings.simplefilter("ignore")
started = time.perf_counter()
import dagster as dg
imported = time.perf_counter()
N, START = {n}, {start!r}
{asset}
{body}
defs = dg.Definitions(assets=assets)
defs.get_repository_def().get_all_jobs()
done = time.perf_counter()
print(f"{{done - imported:.2f}} {{len(assets)}} {{partitions}}")
"""


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--integrations", type=int, default=500)
    parser.add_argument("--days", type=int, default=334, help="age of the time partitions' start (2026-01-01 is 334 days before 2026-11-30)")
    args = parser.parse_args(argv)
    from datetime import datetime, timedelta, timezone

    start = (datetime.now(timezone.utc) - timedelta(days=args.days)).strftime("%Y-%m-%d-00:00")
    rows = []
    for name, body in MODELS.items():
        program = PROGRAM.format(n=args.integrations, start=start, asset=ASSET, body=textwrap.dedent(body))
        began = time.monotonic()
        out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout.split()
        seconds, assets, partitions = float(out[0]), int(out[1]), int(out[2])
        rows.append({"model": name, "assets": assets, "partitions of one asset": partitions, "definitions load s": seconds,
                     "process s": round(time.monotonic() - began, 2)})
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.integrations} integrations, time partitions since {start} (load average {load})")
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return rows


if __name__ == "__main__":
    main()
