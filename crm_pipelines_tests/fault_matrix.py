"""The full fault and crash matrix, as a table: ``python -m crm_pipelines_tests.fault_matrix [--providers a,b] [--kills 20]``.

Every fault of :data:`crm_pipelines_tests.faults.harness.SCENARIOS` against every provider's
simulator, for imports and exports, each on a throwaway SQLite database; prints fault, provider,
direction, runs, records checked, lost and duplicated (the goal is 0 and 0) and exits non-zero
otherwise. Then the crash matrix: each provider's import, export and sync by id SIGKILLed at
``--kills`` random points and run again. Scenarios run in separate processes (one simulator each, on free ports).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from crm_pipelines.providers.registry import PROVIDERS
from crm_pipelines_tests.faults.harness import SCENARIOS, Outcome, print_table, run_export_scenario, run_import_scenario


def _one(case: tuple[str, str, str]) -> Outcome:
    provider, fault, direction = case
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'crm.db'}"
        run = run_import_scenario if direction == "import" else run_export_scenario
        try:
            return run(provider, SCENARIOS[fault], url)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            return Outcome(fault, provider, direction, detail=f"CRASHED: {type(exc).__name__}: {exc}"[-1500:])


def _crash(case: tuple[str, str, int]) -> Outcome:
    from crm_pipelines_tests.faults.crash import run_crash_matrix

    provider, op, kills = case
    with tempfile.TemporaryDirectory() as folder:
        try:
            return run_crash_matrix(provider, op, f"sqlite:///{Path(folder) / 'crm.db'}", kills=kills)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            return Outcome("SIGKILL", provider, op, detail=f"CRASHED: {type(exc).__name__}: {exc}"[-1500:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--faults", default="all", help="comma-separated fault names, or all")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL points per provider and operation in the crash matrix (0: skip it)")
    args = parser.parse_args(argv)
    faults = list(SCENARIOS) if args.faults == "all" else [f.strip() for f in args.faults.split(",")]
    cases = [(p, f, d) for f in faults for p in args.providers.split(",") if SCENARIOS[f].applies(p) for d in ("import", "export")]
    crash_cases = [(p, op, args.kills) for p in args.providers.split(",") for op in ("import", "export", "ids")] if args.kills else []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outcomes = list(pool.map(_one, cases)) + list(pool.map(_crash, crash_cases))
    rows = [o.row() | {"completed": "yes" if o.completed else "NO"} for o in outcomes]
    for row in rows:
        if row["fault"] == "SIGKILL":
            row["fault"] = f"SIGKILL x{row['failed_runs']}"
    print(print_table(rows, ["fault", "provider", "direction", "runs", "failed_runs", "completed", "records_checked", "lost", "duplicated"]))
    bad = [o for o in outcomes if not o.completed or o.lost or o.duplicated or "CRASHED" in o.detail or "message" in o.detail]
    print(f"\n{len(outcomes)} scenarios, {sum(o.checked for o in outcomes)} records checked, "
          f"{sum(o.lost for o in outcomes)} lost, {sum(o.duplicated for o in outcomes)} duplicated, {len(bad)} not clean")
    for o in bad:
        print(f"  {o.fault} / {o.provider} / {o.direction}: {o.detail[-700:]} {o.failure_messages[:2]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
