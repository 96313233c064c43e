"""All benchmarks in one run, one table: every figure is a ratio measured in this run.

1. Rate-limit efficiency per provider: wall time / floor (requests needed / allowed rate), from
   the per-provider scripts (``hubspot_import.py``, ``pipedrive.py``...); Salesforce, which has no
   per-second limit, as calls / the minimum calls. Goal <= 1.05.
2. Overhead without limits: records/s of a full HubSpot import (reader + ``run_import``) into
   SQLite and PostgreSQL over records/s of a bare loop downloading the same pages (httpx + orjson
   decode), with the CPU each needs per 1,000 records. Goal >= 0.8 on SQLite, >= 0.6 on PostgreSQL.
3. Against dlt: records/s of our import over dlt's ``rest_api`` source reading the same list pages
   into the same database: SQLite (dlt's ``sqlalchemy`` destination) and PostgreSQL (the faster of
   dlt's ``postgres`` and ``sqlalchemy`` destinations). Goal >= 2 on both.
4. Incremental cost: one 30-minute incremental run (``plan_window`` + ``run_import``, search) on a
   simulator holding 1,000,000 contacts (quick: 100,000) with k = 0, 100, 10,000 changed: API calls
   against ceil(k / 200) + 1 (search pages hold 200) and the time against the same run on a
   10,000-contact simulator. Goal: calls within the bound, time ratio <= 1.5 (or under 0.25 s apart).
5. Memory and CPU per record: peak RSS and CPU seconds per 1,000 records of imports of 10,000,
   100,000 and 1,000,000 records (quick: 10,000 and 100,000), each in a fresh process (the
   simulator in another), into SQLite and PostgreSQL. Goals: RSS growth < 64 MB (SQLite), CPU per
   record at the largest size within 1.1x of that at 10,000.
6. Dagster: one schedule tick of ``hubspot_incremental`` with nothing changed after an initial
   sync: run requests per tick (goal 1, all entities in it) and the wall time of that run
   executed in process (goal < 30 s).
7. Export overhead: records/s of an export of new contacts (``export_entity``: match by e-mail,
   intents, upsert, links) from SQLite and PostgreSQL over records/s of a bare loop sending the same
   requests from memory. Goal >= 0.6 on both.

Sections 2, 3, 5 and 7 give the median of 3 runs, taken in turns (bare, ours, the peer) so that
a change of load hits each alike, and the 1-minute load average seen during them: the machine
may be shared, and a figure taken while it was busy says so.

The simulators run in their own processes where the client's CPU time is measured (2, 4, 5), so
the simulator's work does not share the client's interpreter.

Usage: ``python benchmarks/run.py [--quick] [--only 1,2,...] [--rounds 3] [--postgres URL] [--memory-sizes 10000,100000,1000000]``
(dlt is a benchmark-only dependency: ``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
import speed  # noqa: E402
from speed import TOKEN, Median, Run, median  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    goal: str
    met: bool | None
    detail: str = ""
    fmt: str = "{:.3f}"

    def cells(self) -> tuple[str, str, str, str]:
        value = "-" if self.value is None else self.fmt.format(self.value)
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return value, self.goal, met, self.detail


FIGURES: list[Figure] = []


def add(section: str, name: str, value: float | None, goal: str, met: bool | None, detail: str = "", fmt: str = "{:.3f}") -> None:
    figure = Figure(section, name, value, goal, met, detail, fmt)
    FIGURES.append(figure)
    value_text, _, met_text, _ = figure.cells()
    print(f"  [{section}] {name}: {value_text} (goal {goal}: {met_text}) {detail}", flush=True)


def quietly(fn, *args, **kwargs):
    """Call a benchmark script's ``main`` without its own table on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


@contextlib.contextmanager
def simulator_process(*args: str):
    """``python -m crm_pipelines.simulator hubspot ...`` in its own process; yields its base URL."""
    cmd = [sys.executable, "-m", "crm_pipelines.simulator", "hubspot", "--token", TOKEN, "--companies", "0", "--deals", "0", "--seed", "7", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(), text=True, cwd=ROOT)
    try:
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"simulator did not start: {base_url!r}")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def postgres_database(admin_url: str):
    """A new, empty PostgreSQL database (dropped afterwards); yields its URL or None if unusable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"crm_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"  PostgreSQL at {make_url(admin_url).render_as_string()} is not usable: {exc}")
        admin.dispose()
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ------------------------------------------------------------------------------ 1. rate limits


def section_rate_limits(quick: bool) -> None:
    print("1. rate-limit efficiency (time / floor)", flush=True)
    import bling
    import gestaoclick
    import hubspot_export
    import hubspot_import
    import pipedrive
    import salesforce
    import shopify

    goal = "<= 1.05"

    def ratio(name: str, seconds: float, floor: float, detail: str) -> None:
        value = seconds / floor if floor else None
        add("1", name, value, goal, None if value is None else value <= 1.05, detail)

    # HubSpot: the real 100 requests / 10 s (quick: the same rate as 10 per second, so that a short
    # run spans several windows; a run within one window would only show the burst allowance).
    if quick:
        sizes, limit, window = [(5_000, 2_500)], ["--burst-limit", "10", "--burst-window", "1"], "10/1 s"
    else:
        sizes, limit, window = [(10_000, 10_000), (100_000, 100_000)], [], "100/10 s"
    for n_import, n_export in sizes:
        rows = quietly(hubspot_import.main, ["--contacts", str(n_import), "--changed", "0", *limit])
        name, records, requests, seconds, rate_floor, _floor, limited = rows[0]
        ratio(f"HubSpot import {n_import:,}", seconds, rate_floor, f"{requests} requests at {window}, {seconds:.1f} s, 429s {limited}")
        rows = quietly(hubspot_export.main, ["--contacts", str(n_export), *limit])
        label, created, writes, lookups, calls, seconds, limited = rows[0]
        ratio(f"HubSpot export {n_export:,}", seconds, calls / 10.0, f"{calls} requests at {window}, {seconds:.1f} s, 429s {limited}")

    # Pipedrive: import at the real Ultimate burst; export at a scaled burst.
    n_import, n_export = (10_000, 500) if quick else (10_000, 2_000)
    rows_import = quietly(pipedrive.main, ["--records", str(n_import), "--skip-export"])
    rows_export = quietly(pipedrive.main, ["--records", str(n_export), "--skip-import"])
    label, requests, tokens, seconds, floor, _r, limited = rows_import[0]
    ratio(f"Pipedrive import {n_import:,}", seconds, floor, f"{requests} requests, {tokens} tokens, 120/2 s, {seconds:.1f} s")
    label, requests, tokens, seconds, floor, _r, limited = rows_export[0]
    ratio(f"Pipedrive export {n_export:,}", seconds, floor, f"{requests} requests, scaled 1,000 tokens/2 s, {seconds:.1f} s")

    # Shopify: cost points; the import on the standard bucket, the export on Plus.
    n_import, n_export = (1_500, 2_500) if quick else (3_000, 3_000)
    for n, which in ((n_import, "import"), (n_export, "export")):
        rows = quietly(shopify.main, ["--customers", str(n), f"--skip-{'export' if which == 'import' else 'import'}"])
        r = rows[0]
        ratio(f"Shopify {which} {n:,}", r["seconds"], r["floor"], f"{r['requests']} requests, {r['actual']} points, {r['plan']} plan, {r['seconds']:.1f} s")

    # Bling: 3/s for the import of full items (quick: scaled to 30/s), exports scaled to 100/s.
    n_import, n_export, rate = (10_000, 500, 30) if quick else (10_000, 2_000, 10)
    rows = quietly(bling.main, ["--contacts", str(n_import), "--import-rate", str(rate), "--skip-summary", "--skip-export"])
    label, requests, seconds, floor = rows[0]
    ratio(f"Bling import {n_import:,}", seconds, floor, f"{requests} requests at {rate}/s{' (scaled)' if rate != 3 else ''}, {seconds:.1f} s")
    rows = quietly(bling.main, ["--contacts", str(n_export), "--skip-summary", "--skip-import"])
    label, requests, seconds, floor = rows[0]
    ratio(f"Bling export {n_export:,}", seconds, floor, f"{requests} requests, scaled 100/s, {seconds:.1f} s")

    # GestaoClick: 20 per page at 3/s (scaled to 30/s), exports scaled to 100/s.
    n_import, n_export = (2_000, 500) if quick else (10_000, 2_000)
    rows = quietly(gestaoclick.main, ["--contacts", str(n_import), "--import-per-second", "30", "--skip-export"])
    name, records, requests, seconds, per_second, limited = rows[0]
    ratio(f"GestaoClick import {n_import:,}", seconds, requests / per_second, f"{requests} requests, scaled 30/s, {seconds:.1f} s")
    rows = quietly(gestaoclick.main, ["--contacts", str(n_export), "--skip-import"])
    name, records, requests, seconds, per_second, limited = rows[0]
    ratio(f"GestaoClick export {n_export:,}", seconds, requests / per_second, f"{requests} requests, scaled 100/s, {seconds:.1f} s")

    # Salesforce: no per-second limit; calls against the minimum the API needs.
    n = 5_000 if quick else 10_000
    rows = quietly(salesforce.main, ["--records", str(n)])
    for name, records, calls, minimum, used, limit, seconds, bare in rows:
        value = calls / minimum
        add("1", f"Salesforce {name.split(' ')[0]} {n:,} (calls/minimum)", value, goal, value <= 1.05, f"{calls} calls, minimum {minimum}, {seconds:.1f} s")


# ------------------------------------------------------------------------------ 2, 3. import speed

ROUNDS = 3
_IMPORTS: dict[str, Median] = {}


def dlt_installed() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def import_medians(quick: bool, postgres_admin: str) -> dict[str, Median]:
    """Bare download, ours and dlt on SQLite and PostgreSQL, ``ROUNDS`` times in turns (once per run of run.py)."""
    if _IMPORTS:
        return _IMPORTS
    n = 20_000 if quick else 50_000
    print(f"  {n:,} contacts, {ROUNDS} rounds of: bare download, ours and dlt into SQLite and PostgreSQL", flush=True)
    runs: dict[str, list[Run]] = {}

    def record(kind: str, run: Run) -> None:
        runs.setdefault(kind, []).append(run)
        print(f"    {kind}: {run.rate:,.0f} records/s, {run.cpu_per_1000:.3f} CPU s/1,000 (load {run.load:.1f})", flush=True)

    with simulator_process("--contacts", str(n), "--no-rate-limits") as base_url:
        speed.bare_download(base_url)  # warm-up: the simulator renders its pages once
        for _ in range(ROUNDS):
            tmp = Path(tempfile.mkdtemp())
            record("bare", speed.bare_download(base_url))
            record("ours sqlite", speed.our_import(base_url, f"sqlite:///{tmp / 'ours.db'}"))
            with postgres_database(postgres_admin) as pg_url:
                if pg_url is not None:
                    record("ours postgresql", speed.our_import(base_url, pg_url))
            if dlt_installed():
                record("dlt sqlite", speed.dlt_import(base_url, "sqlalchemy", f"sqlite:///{tmp / 'dlt.db'}", tmp))
                for destination in ("postgres", "sqlalchemy"):
                    with postgres_database(postgres_admin) as pg_url:
                        if pg_url is not None:
                            record(f"dlt postgresql ({destination})", speed.dlt_import(base_url, destination, pg_url, tmp))
    _IMPORTS.update({kind: median(found) for kind, found in runs.items()})
    return _IMPORTS


def section_overhead(quick: bool, postgres_admin: str) -> None:
    print("2. overhead without limits (import / bare download)", flush=True)
    found = import_medians(quick, postgres_admin)
    bare = found["bare"]
    for database, goal in (("SQLite", 0.8), ("PostgreSQL", 0.6)):
        ours = found.get(f"ours {database.lower()}")
        if ours is None:
            add("2", f"import/bare download, {database}", None, f">= {goal}", None, "PostgreSQL not reachable")
            continue
        value = ours.rate / bare.rate
        add("2", f"import/bare download, {database}", value, f">= {goal}", value >= goal,
            f"median of {ROUNDS}: {ours.rate:,.0f} vs {bare.rate:,.0f} records/s; CPU s/1,000 {ours.cpu_per_1000:.3f} vs {bare.cpu_per_1000:.3f}; "
            f"load {ours.load} / {bare.load}")


def section_dlt(quick: bool, postgres_admin: str) -> None:
    print("3. against dlt rest_api (ours / dlt)", flush=True)
    if not dlt_installed():
        for database in ("SQLite", "PostgreSQL"):
            add("3", f"ours/dlt records/s, {database}", None, ">= 2", None, "dlt not installed: pip install -e .[bench]")
        return
    found = import_medians(quick, postgres_admin)
    theirs_pg = max((m for kind, m in found.items() if kind.startswith("dlt postgresql")), key=lambda m: m.rate, default=None)
    pg_destination = next((kind for kind, m in found.items() if m is theirs_pg), "")
    for database, ours, theirs, label in (
        ("SQLite", found.get("ours sqlite"), found.get("dlt sqlite"), "sqlalchemy destination"),
        ("PostgreSQL", found.get("ours postgresql"), theirs_pg, pg_destination.removeprefix("dlt postgresql ").strip("()") + " destination, the faster of two"),
    ):
        if ours is None or theirs is None:
            add("3", f"ours/dlt records/s, {database}", None, ">= 2", None, "PostgreSQL not reachable")
            continue
        value = ours.rate / theirs.rate
        add("3", f"ours/dlt records/s, {database}", value, ">= 2", value >= 2,
            f"median of {ROUNDS}: {ours.rate:,.0f} vs {theirs.rate:,.0f} records/s (dlt {label}); CPU s/1,000 {ours.cpu_per_1000:.3f} vs "
            f"{theirs.cpu_per_1000:.3f}; load {ours.load} / {theirs.load}")


# ------------------------------------------------------------------------------ 4. incremental


def incremental_run(base_url: str, k: int, db_url: str) -> tuple[int, float, int]:
    """One 30-minute incremental run with ``k`` contacts changed since the last sync."""
    from crm_pipelines.providers.hubspot.api import HubSpotClient
    from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.importer import plan_window, run_import

    store = LocalStore.open(db_url)
    try:
        now = datetime.fromisoformat(httpx.get(f"{base_url}/_simulator/clock").json()["now"].replace("Z", "+00:00"))
        start = now - timedelta(minutes=10)
        state = store.sync_state("hubspot", "contacts")
        state.synced_through = start  # the previous window was synced
        store.save_sync_state(state)
        if k:
            httpx.post(f"{base_url}/_simulator/mutate", json={"entity": "contacts", "modify": k}, timeout=120).raise_for_status()
        now = datetime.fromisoformat(httpx.get(f"{base_url}/_simulator/clock").json()["now"].replace("Z", "+00:00"))
        end = now + timedelta(seconds=1)
        window = plan_window(store.sync_state("hubspot", "contacts"), end - timedelta(minutes=30), end, first_start=datetime(2000, 1, 1, tzinfo=timezone.utc), now=end)
        with HubSpotClient(access_token=TOKEN, base_url=base_url) as client:
            started = time.perf_counter()
            result = run_import(HubSpotChangeReader(client, strategy="search"), store, "hubspot", "contacts", window, stats=client.stats)
            seconds = time.perf_counter() - started
        return int(result.api["calls"]), seconds, result.fetched
    finally:
        store.dispose()


def section_incremental(quick: bool) -> None:
    big = 100_000 if quick else 1_000_000
    print(f"4. incremental cost ({big:,} vs 10,000 contacts)", flush=True)
    reference = (datetime.now(timezone.utc) - timedelta(hours=3)).isoformat()
    times: dict[tuple[int, int], float] = {}
    for total in (10_000, big):
        with simulator_process("--contacts", str(total), "--reference-time", reference, "--daily-limit", "0") as base_url:
            # Seeded data ends at the reference time; move the clock on so no seeded record is recent.
            httpx.post(f"{base_url}/_simulator/clock", json={"advance": 7200}).raise_for_status()
            tmp = Path(tempfile.mkdtemp())
            for k in (0, 100, 10_000):
                # An hour on: the window of this run holds only the changes made for it.
                httpx.post(f"{base_url}/_simulator/clock", json={"advance": 3600}).raise_for_status()
                calls, seconds, fetched = incremental_run(base_url, k, f"sqlite:///{tmp / f'inc{k}.db'}")
                times[(total, k)] = seconds
                if total == big:
                    bound = math.ceil(k / 200) + 1
                    add("4", f"calls, k={k:,} of {total:,}", calls, f"<= {bound} (ceil(k/200)+1)", calls <= bound and fetched == k,
                        f"{fetched:,} read in {seconds:.2f} s", fmt="{:.0f}")
    for k in (0, 100, 10_000):
        # Runs of a few hundredths of a second differ by scheduling noise: within 0.25 s counts as equal.
        value = times[(big, k)] / times[(10_000, k)]
        met = value <= 1.5 or times[(big, k)] - times[(10_000, k)] < 0.25
        add("4", f"time {big:,} / 10,000 total, k={k:,}", value, "<= 1.5 or < 0.25 s apart", met, f"{times[(big, k)]:.2f} s vs {times[(10_000, k)]:.2f} s")


# ------------------------------------------------------------------------------ 5. memory and CPU


MEMORY_CHILD = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from speed import our_import, peak_rss_kb
run = our_import({base_url!r}, {db_url!r})
print(run.records, run.seconds, run.cpu_s, run.load, peak_rss_kb())
"""


def import_in_child(base_url: str, db_url: str) -> tuple[Run, float]:
    """An import in a fresh process: its run and its peak RSS in MB."""
    code = MEMORY_CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), base_url=base_url, db_url=db_url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True).stdout.split()
    return Run(int(out[0]), float(out[1]), float(out[2]), float(out[3])), int(out[4]) / 1024


def section_memory(quick: bool, postgres_admin: str, sizes: tuple[int, ...] | None = None) -> None:
    sizes = sizes or ((10_000, 100_000) if quick else (10_000, 100_000, 1_000_000))
    print(f"5. memory and CPU per record ({', '.join(f'{n:,}' for n in sizes)} records, {ROUNDS} rounds)", flush=True)
    runs: dict[tuple[str, int], list[Run]] = {}
    peaks: dict[int, list[float]] = {}
    for n in sizes:
        with simulator_process("--contacts", str(n), "--no-rate-limits", "--daily-limit", "0") as base_url:
            for _ in range(ROUNDS):
                run, peak = import_in_child(base_url, f"sqlite:///{Path(tempfile.mkdtemp()) / 'mem.db'}")
                runs.setdefault(("SQLite", n), []).append(run)
                peaks.setdefault(n, []).append(peak)
                print(f"  SQLite {n:,}: {run.rate:,.0f} records/s, {run.cpu_per_1000:.3f} CPU s/1,000, peak RSS {peak:.0f} MB (load {run.load:.1f})", flush=True)
                with postgres_database(postgres_admin) as pg_url:
                    if pg_url is None:
                        continue
                    run, _ = import_in_child(base_url, pg_url)
                    runs.setdefault(("PostgreSQL", n), []).append(run)
                    print(f"  PostgreSQL {n:,}: {run.rate:,.0f} records/s, {run.cpu_per_1000:.3f} CPU s/1,000 (load {run.load:.1f})", flush=True)
    small, big = sizes[0], sizes[-1]
    growth = statistics.median(peaks[big]) - statistics.median(peaks[small])
    add("5", f"peak RSS growth {small:,} -> {big:,}", growth, "< 64 MB", growth < 64,
        f"median of {ROUNDS}: {statistics.median(peaks[small]):.0f} MB -> {statistics.median(peaks[big]):.0f} MB", fmt="{:.1f} MB")
    for database in ("SQLite", "PostgreSQL"):
        if (database, big) not in runs:
            add("5", f"CPU per record {big:,} / {small:,}, {database}", None, "<= 1.1", None, "PostgreSQL not reachable")
            continue
        medians = {n: median(runs[(database, n)]) for n in sizes}
        value = medians[big].cpu_per_1000 / medians[small].cpu_per_1000
        per_size = ", ".join(f"{n:,}: {m.cpu_per_1000:.3f}" for n, m in medians.items())
        loads = ", ".join(m.load for m in medians.values())
        add("5", f"CPU per record {big:,} / {small:,}, {database}", value, "<= 1.1", value <= 1.1,
            f"CPU s per 1,000 records (median of {ROUNDS}, this process only) {per_size}; load {loads}")


# ------------------------------------------------------------------------------ 6. Dagster


def section_dagster(quick: bool) -> None:
    print("6. Dagster: one schedule tick with nothing changed", flush=True)
    import logging

    import dagster as dg

    warnings.simplefilter("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)

    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.dagster_defs.partitions import integration_partitions_name
    from crm_pipelines.definitions import defs
    from crm_pipelines.providers.hubspot.resource import HubSpotResource
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
    from crm_pipelines.storage.store import LocalStore

    tmp = Path(tempfile.mkdtemp())
    config = HubSpotSimConfig(seed=5, contacts=2_000, companies=200, deals=400, tokens=(TOKEN,))
    db_url = f"sqlite:///{tmp / 'dagster.db'}"
    os.environ["CRM_BENCH_HUBSPOT_TOKEN"] = TOKEN
    with HubSpotSimulator(config) as sim, dg.instance_for_test() as instance:
        # One store's HubSpot integration, synced every minute (so the tick finds it due right after its first sync).
        store = LocalStore.open(db_url)
        store.integrations.add_store("loja_bench")
        store.integrations.add("hubspot", store="loja_bench", connection={"access_token": {"env": "CRM_BENCH_HUBSPOT_TOKEN"}, "base_url": sim.base_url},
                               settings={"cadence_minutes": 1})
        store.dispose()
        instance.add_dynamic_partitions(integration_partitions_name("hubspot"), ["loja_bench"])
        resources = {"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=db_url)}
        job = defs.resolve_job_def("hubspot_import")
        initial = job.execute_in_process(instance=instance, partition_key="loja_bench", resources=resources)
        assert initial.success
        schedule = defs.resolve_schedule_def("hubspot_incremental")
        now = datetime.now(timezone.utc)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()) as context:
            requests = list(schedule.evaluate_tick(context).run_requests or [])
        add("6", "runs per schedule tick", len(requests), "1", len(requests) == 1, "hubspot_incremental", fmt="{:.0f}")
        started = time.perf_counter()
        result = defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance, resources=resources, tags=requests[0].tags)
        seconds = time.perf_counter() - started
        # The run syncs every due integration and reports each one's partitions: its events are in the instance's log.
        logged = [entry.dagster_event for entry in instance.all_logs(result.run_id) if entry.dagster_event and entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"]
        materialized = sorted(e.event_specific_data.materialization.asset_key.to_user_string() for e in logged)
        fetched = sum(e.event_specific_data.materialization.metadata["fetched"].value for e in logged)
        add("6", "tick's run wall time (s)", seconds, "< 30 s", result.success and seconds < 30,
            f"one run materialized {', '.join(materialized)}; {fetched} records read", fmt="{:.1f}")


# ------------------------------------------------------------------------------ 7. export


def section_export(quick: bool, postgres_admin: str) -> None:
    n = 5_000 if quick else 10_000
    print(f"7. export overhead ({n:,} new contacts, {ROUNDS} rounds of: bare send loop, ours from SQLite and PostgreSQL)", flush=True)
    runs: dict[str, list[Run]] = {}
    first_id = 0

    def record(kind: str, run: Run) -> None:
        runs.setdefault(kind, []).append(run)
        print(f"    {kind}: {run.rate:,.0f} records/s, {run.cpu_per_1000:.3f} CPU s/1,000 (load {run.load:.1f})", flush=True)

    with simulator_process("--contacts", "0", "--no-rate-limits", "--daily-limit", "0") as base_url:
        speed.bare_send(base_url, 500, 10**9, "warm-up")
        for round_ in range(ROUNDS):
            # Every measurement has its own local ids and e-mails: each creates new provider records.
            first_id += 1_000_000
            record("bare", speed.bare_send(base_url, n, first_id, f"bare{round_}"))
            first_id += 1_000_000
            record("SQLite", speed.our_export(base_url, f"sqlite:///{Path(tempfile.mkdtemp()) / 'export.db'}", n, first_id, f"sqlite{round_}"))
            with postgres_database(postgres_admin) as pg_url:
                if pg_url is not None:
                    first_id += 1_000_000
                    record("PostgreSQL", speed.our_export(base_url, pg_url, n, first_id, f"postgres{round_}"))
    bare = median(runs["bare"])
    for database in ("SQLite", "PostgreSQL"):
        if database not in runs:
            add("7", f"export/bare send loop, {database}", None, ">= 0.6", None, "PostgreSQL not reachable")
            continue
        ours = median(runs[database])
        value = ours.rate / bare.rate
        add("7", f"export/bare send loop, {database}", value, ">= 0.6", value >= 0.6,
            f"median of {ROUNDS}: {ours.rate:,.0f} vs {bare.rate:,.0f} records/s; CPU s/1,000 {ours.cpu_per_1000:.3f} vs {bare.cpu_per_1000:.3f}; "
            f"load {ours.load} / {bare.load}")


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and scaled limits (under 2 minutes)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="sections to run, e.g. 2,3")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs per measurement whose median is kept (sections 2, 3, 5, 7)")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin URL of a PostgreSQL server (a throwaway database is created)")
    parser.add_argument("--memory-sizes", default="", help="record counts of section 5, e.g. 10000,100000,1000000 (default: 10,000 and 100,000 "
                        "with --quick, else up to 1,000,000)")
    args = parser.parse_args(argv)
    ROUNDS = max(1, args.rounds)
    only = {s.strip() for s in args.only.split(",")}
    started = time.monotonic()
    sections = {
        "1": lambda: section_rate_limits(args.quick),
        "2": lambda: section_overhead(args.quick, args.postgres),
        "3": lambda: section_dlt(args.quick, args.postgres),
        "4": lambda: section_incremental(args.quick),
        "5": lambda: section_memory(args.quick, args.postgres, tuple(int(n) for n in args.memory_sizes.split(",") if n.strip()) or None),
        "6": lambda: section_dagster(args.quick),
        "7": lambda: section_export(args.quick, args.postgres),
    }
    for key, run in sections.items():
        if key in only:
            section_started = time.monotonic()
            run()
            print(f"  ({time.monotonic() - section_started:.0f} s)", flush=True)
    total = time.monotonic() - started

    print()
    print(f"crm_pipelines benchmarks ({'quick' if args.quick else 'full'}), {datetime.now(timezone.utc):%Y-%m-%d}, {os.cpu_count()} cores, {total:.0f} s")
    header = ("#", "figure", "value", "goal", "met", "detail")
    rows = [(f.section, f.name, *f.cells()) for f in FIGURES]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(line.format(*header))
    print("-" * (sum(widths) + 2 * 5 + 6))
    for row in rows:
        print(line.format(*row))
    unmet = [f for f in FIGURES if f.met is False]
    print(f"{len(FIGURES) - len(unmet)} of {len(FIGURES)} figures meet their goal" + (f"; not met: {', '.join(f.name for f in unmet)}" if unmet else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
