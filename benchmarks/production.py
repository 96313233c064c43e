"""Runs on the production instance: what a run costs, and whether priorities hold under a backfill.

The instance is ``deploy/production/dagster.yaml`` on PostgreSQL (queued runs through
``CrmRunCoordinator``, limits per provider, run monitoring), with ``dagster-webserver`` and
``dagster-daemon`` as separate processes, as in production; the local database is PostgreSQL too
and HubSpot is the simulator at its published limit (100 requests per 10 s per token).

Two sections, printed as one table with the load average:

1. **A no-change incremental run**: the ``hubspot_incremental`` run of an integration already
   synced, nothing changed at the provider. Wall time from the run's start to its end, and from
   its creation (launched through the webserver) to its end, median of ``--repeat`` runs.
2. **A webhook run during a backfill**: two integrations of other accounts are backfilled from
   scratch (``--backfill-contacts`` each, at 20 requests per 10 s: the backfill runs for a minute or more) and,
   while both backfill runs are working, ``hubspot_sync_ids`` runs tagged as the webhook sensor
   tags them are launched one after the other. Time from each run's creation to its start (the
   queue's decision) and to its end; the backfill runs must still be running when each starts.

Usage: ``python benchmarks/production.py [--repeat 3] [--backfill-contacts 8000]``
(needs PostgreSQL at ``$CRM_BENCH_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crm_pipelines_tests.helpers.deployment import REPO, launch_backfill, launch_run, running_dagster  # noqa: E402
from crm_pipelines_tests.helpers.processes import stop_group  # noqa: E402

#: The backfilled accounts' limit per 10 s: a starter tier's 100 would read the whole account in one window.
BACKFILL_BURST = 20
TOKENS = {"default": "bench-default", "loja_b": "bench-loja-b", "loja_c": "bench-loja-c"}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Deployment:
    """Two new PostgreSQL databases, a Dagster home with the production instance, webserver and daemon."""

    def __init__(self, admin_url: str, env: dict[str, str]) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.databases = [f"crm_bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
        with self.admin.connect() as conn:
            for name in self.databases:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        base = make_url(admin_url)
        self.dagster_url = base.set(drivername="postgresql+psycopg2", database=self.databases[0]).render_as_string(hide_password=False)
        self.crm_url = base.set(drivername="postgresql+psycopg", database=self.databases[1]).render_as_string(hide_password=False)
        self.home = Path(tempfile.mkdtemp(prefix="crm-bench-home-", dir=os.environ.get("CRM_BENCH_TMP")))
        shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", self.home / "dagster.yaml")
        self.env = dict(os.environ, DAGSTER_HOME=str(self.home), DAGSTER_PG_URL=self.dagster_url, CRM_DATABASE_URL=self.crm_url, **env)
        self.url = ""
        self.processes: list[subprocess.Popen] = []
        self._running = None

    def start(self) -> None:
        logs = self.home / "process-logs"
        logs.mkdir()
        # Instance storage created once before both processes start (they would race for it).
        subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], cwd=REPO, env=self.env, check=True, capture_output=True)
        self._running = running_dagster(self.env, logs, stop=self._stop_group)
        self.url, self.processes = self._running.__enter__()

    @staticmethod
    def _stop_group(proc: subprocess.Popen) -> None:
        stop_group(proc, timeout_s=30)  # the whole group: the webserver's code server too

    def launch(self, job: str, run_config: dict, tags: dict[str, str]) -> str:
        return launch_run(self.url, job, run_config, tags)

    def backfill(self, partitions: list[str], assets: list[list[str]]) -> str:
        return launch_backfill(self.url, partitions, assets)

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
        with self.admin.connect() as conn:
            for name in self.databases:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()
        shutil.rmtree(self.home, ignore_errors=True)


def _wait_run(instance, run_id: str, timeout_s: float = 600):
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = instance.get_run_record_by_id(run_id)
        if record.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"run {run_id} ended {record.dagster_run.status}")
            return record
        time.sleep(0.2)
    raise RuntimeError(f"run {run_id} did not finish in {timeout_s:.0f} s")


def _times(record) -> tuple[float, float]:
    """(creation to start, creation to end) of a finished run, in seconds."""
    created = record.create_timestamp.timestamp()
    return record.start_time - created, record.end_time - created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backfill-contacts", type=int, default=8000, help="contacts each backfilled account holds")
    args = parser.parse_args(argv)

    import dagster as dg

    from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
    from crm_pipelines.storage.store import LocalStore

    small = HubSpotSimulator(HubSpotSimConfig(seed=3, contacts=300, companies=30, deals=40, tokens=(TOKENS["default"],)))
    big = HubSpotSimulator(HubSpotSimConfig(seed=4, contacts=args.backfill_contacts, companies=50, deals=50, tokens=(TOKENS["loja_b"], TOKENS["loja_c"]),
                                           burst_limit=BACKFILL_BURST))
    small.start()
    big.start()
    deployment = Deployment(os.environ.get("CRM_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
                            {"HUBSPOT_BASE_URL": small.base_url, "HUBSPOT_ACCESS_TOKEN": TOKENS["default"], "CRM_INCREMENTAL_CRON": "0 0 1 1 *",
                             **{f"BENCH_TOKEN_{k.upper()}": v for k, v in TOKENS.items()}})
    # This process reads the same instance (run records) and resolves the same secret references.
    os.environ.update({k: v for k, v in deployment.env.items() if k.startswith("BENCH_TOKEN_") or k in ("DAGSTER_PG_URL", "DAGSTER_HOME")})
    rows = []
    try:
        store = LocalStore.open(deployment.crm_url)
        registry = store.integrations
        registry.default_for("hubspot")
        for key in ("loja_b", "loja_c"):
            registry.ensure_store(key)
            registry.add("hubspot", store=key, key=key, account_id=key,
                         connection={"access_token": {"env": f"BENCH_TOKEN_{key.upper()}"}, "base_url": big.base_url, "account": key,
                                     "burst_limit": BACKFILL_BURST})
        store.dispose()
        deployment.start()
        instance = dg.DagsterInstance.from_config(str(deployment.home))
        instance.add_dynamic_partitions("hubspot_integrations", ["default", "loja_b", "loja_c"])
        print(f"production instance up at {deployment.url} (load {_load()})", flush=True)

        # 1. The first sync of the default integration, then runs with nothing to change.
        incremental = {"ops": {"hubspot__sync_due_integrations": {"config": {"integrations": ["default"]}}}}
        _wait_run(instance, deployment.launch("hubspot_incremental", incremental, {"crm/trigger": "schedule"}))
        starts, ends, run_walls = [], [], []
        for _ in range(args.repeat):
            record = _wait_run(instance, deployment.launch("hubspot_incremental", incremental, {"crm/trigger": "schedule"}))
            start, end = _times(record)
            starts.append(start)
            ends.append(end)
            run_walls.append(record.end_time - record.start_time)
        rows.append({"case": "no-change incremental run", "queued to start s": statistics.median(starts),
                     "run start to end s": statistics.median(run_walls), "created to end s": statistics.median(ends), "load": _load()})
        print(f"no-change incremental: {rows[-1]}", flush=True)

        # 2. Webhook runs while two accounts are backfilled from scratch.
        deployment.backfill(["loja_b", "loja_c"], [["hubspot", "contacts"], ["hubspot", "companies"], ["hubspot", "deals"]])
        deadline = time.monotonic() + 120
        while True:
            backfilling = [r for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) if r.tags.get("dagster/backfill")]
            if len(backfilling) == 2 and big.stats["total_requests"] >= 5:
                break
            finished = [r for r in instance.get_runs() if r.tags.get("dagster/backfill") and r.status == dg.DagsterRunStatus.SUCCESS]
            if len(finished) == 2:
                raise SystemExit(f"the two backfills ended before the webhook runs could overlap them: --backfill-contacts {args.backfill_contacts} "
                                 f"is too few at {BACKFILL_BURST} requests per 10 s (the default 8000 keeps them running for minutes)")
            if time.monotonic() > deadline:
                seen = [(r.run_id[:8], r.status.value, r.tags.get("dagster/partition")) for r in instance.get_runs() if r.tags.get("dagster/backfill")]
                alive = [p.poll() is None for p in deployment.processes]
                raise RuntimeError(f"the backfill runs did not start: {seen}; webserver/daemon alive {alive}; {big.stats['total_requests']} requests at the provider; "
                                   + str(sorted(p.name for p in deployment.home.iterdir())))
            time.sleep(0.5)
        ids = sorted(small.records("contacts"))[:3]
        waits, totals, overlapped = [], [], 0
        for _ in range(args.repeat):
            run_id = deployment.launch("hubspot_sync_ids", {"ops": {"hubspot__sync_ids": {"config": {"integration": "default", "ids": {"contacts": ids}}}}},
                                       {"crm/trigger": "webhook"})
            record = _wait_run(instance, run_id)
            start, end = _times(record)
            waits.append(start)
            totals.append(end)
            still = [r for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) if r.tags.get("dagster/backfill")]
            overlapped += bool(still)
        rows.append({"case": "webhook run during a 2-account backfill", "queued to start s": statistics.median(waits),
                     "run start to end s": statistics.median(t - w for t, w in zip(totals, waits)), "created to end s": statistics.median(totals),
                     "load": _load()})
        print(f"webhook during backfill ({overlapped} of {args.repeat} finished while the backfill still ran): {rows[-1]}", flush=True)
        instance.dispose()
    finally:
        deployment.stop()
        small.stop()
        big.stop()

    print(f"\nProduction instance (PostgreSQL, queued runs, webserver + daemon), median of {args.repeat}:")
    columns = ["case", "queued to start s", "run start to end s", "created to end s", "load"]
    widths = {c: max(len(c), *(len(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join((f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])).ljust(widths[c]) for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
