"""Where an import's CPU goes as it grows: the Python side, the database library, the kernel.

Section 5 of ``run.py`` prints the CPU per record of a full HubSpot import at several sizes. This
script runs the same import (a fresh process per run, the simulator in another) under Linux
``perf record``, sampling only while ``run_import`` runs, and splits the CPU per 1,000 records by
where the samples fell:

* ``python``: the interpreter and every extension module but the database's (our code, httpx,
  orjson, phonenumbers, SQLAlchemy);
* ``database``: the database's client library, in this process (SQLite: the whole engine;
  PostgreSQL: psycopg and libpq only, the server's CPU is not counted);
* ``kernel``: system calls and page faults (SQLite's page reads and WAL writes, the sockets);
* ``libc``: ``malloc``, ``memcpy`` and the like, called by both sides;
* ``other``: anything else.

Then each part's ratio between the largest and the smallest size: the part whose CPU per record
grows is the part to work on.

Needs ``perf`` and the right to sample one's own processes (``kernel.perf_event_paranoid`` at 2
or below).

Usage: ``python benchmarks/cpu_split.py [--sizes 10000,1000000] [--rounds 3] [--postgres URL] [--frequency 499]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import child_env, postgres_database, simulator_process  # noqa: E402

PARTS = ("python", "database", "kernel", "libc", "other")

CHILD = """
import contextlib, os, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from speed import our_import

@contextlib.contextmanager
def sampled():
    ctl, ack = os.open({ctl!r}, os.O_WRONLY), os.open({ack!r}, os.O_RDONLY)
    def say(command):
        os.write(ctl, command)
        os.read(ack, 16)
    say(b"enable\\n")
    try:
        yield
    finally:
        say(b"disable\\n")

run = our_import({base_url!r}, {db_url!r}, measured=sampled())
print(run.records, run.cpu_s, run.load)
"""


@dataclass(frozen=True)
class Split:
    """One import's CPU seconds per 1,000 records, as measured by the process and per part as sampled."""

    cpu_per_1000: float
    parts: dict[str, float]
    load: float


def part_of(dso: str) -> str:
    name = dso.lower()
    if "sqlite" in name or "libpq" in name or "psycopg" in name:
        return "database"
    if "kernel" in name:
        return "kernel"
    if name.startswith("libc.") or name.startswith("libc-") or name.startswith("libm."):
        return "libc"
    if "python" in name or ".cpython-" in name or name.endswith(".so") or ".so." in name:
        return "python"
    return "other"


def samples_by_part(data: Path) -> dict[str, int]:
    cmd = ["perf", "report", "-i", str(data), "--sort", "dso", "-n", "--stdio", "-q"]
    report = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = defaultdict(int)
    for line in report.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].endswith("%") and fields[1].isdigit():
            counts[part_of(" ".join(fields[2:]))] += int(fields[1])
    return counts


def sampled_import(base_url: str, db_url: str, frequency: int) -> Split:
    with tempfile.TemporaryDirectory() as work:
        ctl, ack, data = Path(work, "ctl"), Path(work, "ack"), Path(work, "perf.data")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        code = CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), ctl=str(ctl), ack=str(ack), base_url=base_url, db_url=db_url)
        cmd = ["perf", "record", "-q", "-F", str(frequency), "-D", "-1", "--control", f"fifo:{ctl},{ack}", "-o", str(data), "--",
               sys.executable, "-c", code]
        done = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            raise SystemExit(f"perf record failed (rc={done.returncode}): {done.stderr.strip()[-500:]}")
        records, cpu_s, load = done.stdout.split()[-3:]
        counts = samples_by_part(data)
    n = int(records)
    return Split(float(cpu_s) / n * 1000, {part: counts.get(part, 0) / frequency / n * 1000 for part in PARTS}, float(load))


def median_split(runs: list[Split]) -> Split:
    return Split(statistics.median(r.cpu_per_1000 for r in runs),
                 {part: statistics.median(r.parts[part] for r in runs) for part in PARTS}, max(r.load for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="record counts, e.g. 10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="", help="also import into a new database on this PostgreSQL server (admin URL)")
    parser.add_argument("--frequency", type=int, default=499, help="samples per CPU second")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("this benchmark needs Linux perf (apt install linux-perf)")
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    databases = ["SQLite"] + (["PostgreSQL"] if args.postgres else [])
    results: dict[tuple[str, int], Split] = {}
    print(f"CPU seconds per 1,000 records of a full HubSpot import, median of {args.rounds}, sampled at {args.frequency}/s", flush=True)
    print(f"{'database':<11} {'records':>9} {'measured':>9} {'sampled':>8} " + " ".join(f"{p:>8}" for p in PARTS) + "  load", flush=True)
    for n in sizes:
        with simulator_process("--contacts", str(n), "--no-rate-limits", "--daily-limit", "0") as base_url:
            for database in databases:
                runs = []
                for _ in range(args.rounds):
                    if database == "SQLite":
                        with tempfile.TemporaryDirectory() as folder:
                            runs.append(sampled_import(base_url, f"sqlite:///{Path(folder) / 'split.db'}", args.frequency))
                    else:
                        with postgres_database(args.postgres) as url:
                            if url is None:
                                raise SystemExit(f"PostgreSQL not reachable at {args.postgres}")
                            runs.append(sampled_import(base_url, url, args.frequency))
                split = results[(database, n)] = median_split(runs)
                print(f"{database:<11} {n:>9,} {split.cpu_per_1000:>9.4f} {sum(split.parts.values()):>8.4f} "
                      + " ".join(f"{split.parts[p]:>8.4f}" for p in PARTS) + f"  {split.load:.1f}", flush=True)
    small, big = sizes[0], sizes[-1]
    for database in databases:
        a, b = results[(database, small)], results[(database, big)]
        ratios = " ".join(f"{p} {b.parts[p] / a.parts[p]:.2f}" if a.parts[p] else f"{p} -" for p in PARTS)
        print(f"{database} {big:,} / {small:,}: measured {b.cpu_per_1000 / a.cpu_per_1000:.2f}; {ratios}")


if __name__ == "__main__":
    main()
