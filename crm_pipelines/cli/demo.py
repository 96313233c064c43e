"""``crm-pipelines demo | sandbox | dev``: the demo, the simulators and the development server."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Instance settings used when the command runs outside the project folder (see dagster.yaml).
DEFAULT_INSTANCE_YAML = "concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n"


def _start_hubspot_simulator(args: argparse.Namespace):
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimulator
    from crm_pipelines.simulator.__main__ import fault_config_from_args

    args.faults = fault_config_from_args(args)
    simulator = HubSpotSimulator.from_cli_args(args)
    simulator.start()
    return simulator


def _dagster_home() -> str:
    """$DAGSTER_HOME, or ./.dagster_home seeded with the project's dagster.yaml (history survives restarts)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    project_config = Path.cwd() / "dagster.yaml"
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(project_config.read_text() if project_config.exists() else DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def _simulator_env(simulator) -> dict[str, str]:
    return {"HUBSPOT_BASE_URL": simulator.base_url, "HUBSPOT_ACCESS_TOKEN": simulator.config.tokens[0]}


def _print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def _run_import_job(instance, partition_key: str):
    from crm_pipelines.definitions import defs

    job = defs.resolve_job_def("hubspot_import")
    return job.execute_in_process(instance=instance, partition_key=partition_key, tags={"crm/trigger": "demo"}, raise_on_error=False)


def _materializations(result) -> list[dict[str, object]]:
    rows = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        rows.append(
            {
                "asset": materialization.asset_key.to_user_string(),
                "processed": meta.get("fetched"),
                "created": meta.get("created"),
                "updated": meta.get("updated"),
                "unchanged": meta.get("unchanged"),
                "errors": meta.get("failed"),
                "duration_s": meta.get("duration_s"),
                "api_calls": meta.get("api_calls"),
                "429s": meta.get("rate_limited_429"),
                "strategy": meta.get("strategy"),
            }
        )
    return rows


def _run_and_report(instance, partition_key: str) -> bool:
    """Run the import job for one partition and print its per-asset summary."""
    started = time.monotonic()
    result = _run_import_job(instance, partition_key)
    _print_table(_materializations(result), ["asset", "processed", "created", "updated", "unchanged", "errors", "duration_s", "api_calls", "429s", "strategy"])
    print(f"run {result.run_id}: {'success' if result.success else 'FAILED'} in {time.monotonic() - started:.1f}s")
    return result.success


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the HubSpot simulator, run the full import as a real Dagster run, then an incremental one."""
    import dagster as dg

    from crm_pipelines.dagster_defs.partitions import SYNC_PARTITIONS, partition_key_for
    from crm_pipelines.storage.engine import safe_url

    if args.database:
        os.environ["CRM_DATABASE_URL"] = args.database
    dagster_home = _dagster_home()

    print(f"Starting the HubSpot simulator: {args.contacts} contacts, {args.companies} companies, {args.deals} deals, "
          f"{args.rate_limit} requests per 10 s ...")
    simulator = _start_hubspot_simulator(args)
    os.environ.update(_simulator_env(simulator))
    try:
        from crm_pipelines.storage.engine import database_url

        print(f"Simulator at {simulator.base_url}; local database {safe_url(database_url())}; Dagster home {dagster_home}")
        instance = dg.DagsterInstance.get()
        first = SYNC_PARTITIONS.get_first_partition_key()
        print(f"\n1) Initial sync: partition {first} (the first partition reads every record)")
        if not _run_and_report(instance, first):
            return 1

        if args.changes:
            for entity in ("contacts", "companies", "deals"):
                simulator.modify(entity, n=args.changes)
            key = partition_key_for(simulator.clock.now())
            print(f"\n2) {args.changes} records per entity changed in HubSpot; incremental run for partition {key}")
            if not _run_and_report(instance, key):
                return 1

        print("\nReconciliation (simulator vs local database):")
        from crm_pipelines.storage.store import LocalStore

        store = LocalStore.open()
        recon = []
        for entity in ("contacts", "companies", "deals"):
            remote = set(simulator.records(entity))
            local = set(store.linked_records("hubspot", entity))
            recon.append({"entity": entity, "simulator": len(remote), "local": len(local), "missing": len(remote - local), "extra": len(local - remote)})
        _print_table(recon, ["entity", "simulator", "local", "missing", "extra"])
        stats = simulator.stats
        print(f"Simulator served {stats['total_requests']} API requests, {stats['rate_limited_total']} of them 429 (rate limited).")
        store.dispose()
        return 0 if all(r["missing"] == 0 and r["extra"] == 0 for r in recon) else 1
    finally:
        simulator.stop()


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the simulators in the foreground and print the environment to point Dagster at them."""
    simulator = _start_hubspot_simulator(args)
    print("HubSpot simulator running. Point crm_pipelines at it with:")
    for name, value in _simulator_env(simulator).items():
        print(f"  export {name}={value}")
    sys.stdout.flush()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    simulator.stop()
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the simulators and ``dagster dev`` wired to them (UI on http://127.0.0.1:3000)."""
    simulator = _start_hubspot_simulator(args)
    _dagster_home()
    env = dict(os.environ, **_simulator_env(simulator))
    print(f"HubSpot simulator at {simulator.base_url}; starting dagster dev ...")
    try:
        return subprocess.call([sys.executable, "-m", "dagster", "dev", "-m", "crm_pipelines.definitions", "-p", str(args.ui_port)], env=env)
    finally:
        simulator.stop()


def _add_sim_options(parser: argparse.ArgumentParser, *, port: int = 0) -> None:
    """The simulator's own options (``python -m crm_pipelines.simulator hubspot --help``)."""
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimulator
    from crm_pipelines.simulator.__main__ import add_common_arguments

    add_common_arguments(parser)
    HubSpotSimulator.add_cli_arguments(parser)
    parser.set_defaults(contacts=10_000, companies=1_000, deals=2_000, port=port)


def add_parsers(sub) -> None:
    demo = sub.add_parser("demo", help="full HubSpot import against the simulator, as a Dagster run, with a summary")
    _add_sim_options(demo)
    demo.add_argument("--changes", type=int, default=100, help="records per entity to change before the incremental run (0: skip it)")
    demo.add_argument("--database", help="SQLAlchemy URL of the local database (default: $CRM_DATABASE_URL or ./crm_pipelines.db)")
    demo.set_defaults(func=cmd_demo)

    sandbox = sub.add_parser("sandbox", help="run the provider simulators in the foreground")
    _add_sim_options(sandbox, port=8765)
    sandbox.set_defaults(func=cmd_sandbox)

    dev = sub.add_parser("dev", help="simulators + dagster dev")
    _add_sim_options(dev)
    dev.add_argument("--ui-port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)
