"""All benchmarks in one run, one table: every figure is a ratio measured in this run.

1. Rate-limit efficiency per provider: wall time / floor (requests needed / allowed rate), from
   the per-provider scripts (``hubspot_import.py``, ``pipedrive.py``...); Salesforce, which has no
   per-second limit, as calls / the minimum calls. Goal <= 1.05.
2. Overhead without limits: records/s of a full HubSpot import (reader + ``LocalStore.apply_remote``)
   into SQLite and PostgreSQL over records/s of a bare loop downloading the same pages (httpx +
   JSON decode). Goal >= 0.8.
3. Against dlt: records/s of our import over dlt's ``rest_api`` source reading the same list pages
   into the same SQLite database (dlt's ``sqlalchemy`` destination). Goal >= 2.
4. Incremental cost: one 30-minute incremental run (``plan_window`` + ``run_import``, search) on a
   simulator holding 1,000,000 contacts (quick: 100,000) with k = 0, 100, 10,000 changed: API calls
   against ceil(k / 200) + 1 (search pages hold 200) and the time against the same run on a
   10,000-contact simulator. Goal: calls within the bound, time ratio <= 1.5 (or under 0.25 s apart).
5. Memory: peak RSS of an import of 10,000 and of 1,000,000 records (quick: 100,000), each in a
   fresh process (the simulator in another). Goal: growth < 64 MB.
6. Dagster: one schedule tick of ``hubspot_incremental`` with nothing changed after an initial
   sync: run requests per tick (goal 1, all entities in it) and the wall time of that run
   executed in process (goal < 30 s).

The simulators run in their own processes where the client's CPU time is measured (2, 4, 5), so
the simulator's work does not share the client's interpreter.

Usage: ``python benchmarks/run.py [--quick] [--only 1,2,...] [--postgres URL]``
(dlt is a benchmark-only dependency: ``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
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

TOKEN = "bench-token"
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


def full_window(reason: str = "benchmark: full"):
    from crm_pipelines.sync.importer import ImportWindow

    now = datetime.now(timezone.utc)
    return ImportWindow(now - timedelta(days=3650), now, None, now + timedelta(days=1), reason)


def our_import(base_url: str, url: str) -> tuple[int, float]:
    """The real path: HubSpot reader (list) + run_import/apply_remote; returns (records, seconds)."""
    from crm_pipelines.providers.hubspot.api import HubSpotClient
    from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.importer import run_import

    store = LocalStore.open(url)
    try:
        with HubSpotClient(access_token=TOKEN, base_url=base_url, burst_limit=1_000_000, search_per_second=1_000_000) as client:
            started = time.perf_counter()
            result = run_import(HubSpotChangeReader(client, strategy="list"), store, "hubspot", "contacts", full_window(), stats=client.stats)
            seconds = time.perf_counter() - started
        assert result.outcome.created == result.fetched, result.summary()
        return result.fetched, seconds
    finally:
        store.dispose()


def bare_download(base_url: str) -> tuple[int, float]:
    """Only download the pages our import reads (same properties, 100 per page) and decode them."""
    from crm_pipelines.providers.hubspot.mapping import properties_for

    properties = ",".join(properties_for("contacts"))
    count = 0
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}) as client:
        after = None
        while True:
            params = {"limit": 100, "properties": properties}
            if after:
                params["after"] = after
            data = json.loads(client.get("/crm/v3/objects/contacts", params=params).content)
            count += len(data["results"])
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
    return count, time.perf_counter() - started


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


# ------------------------------------------------------------------------------ 2. overhead


def section_overhead(quick: bool, postgres_admin: str) -> None:
    n = 20_000 if quick else 50_000
    print(f"2. overhead without limits ({n:,} contacts)", flush=True)
    with simulator_process("--contacts", str(n), "--no-rate-limits") as base_url:
        bare_download(base_url)  # warm-up: the simulator renders its pages once
        count, bare_s = bare_download(base_url)
        bare_rate = count / bare_s
        tmp = Path(tempfile.mkdtemp())
        records, seconds = our_import(base_url, f"sqlite:///{tmp / 'overhead.db'}")
        value = (records / seconds) / bare_rate
        add("2", "import/bare download, SQLite", value, ">= 0.8", value >= 0.8, f"{records / seconds:,.0f} vs {bare_rate:,.0f} records/s")
        with postgres_database(postgres_admin) as pg_url:
            if pg_url is None:
                add("2", "import/bare download, PostgreSQL", None, ">= 0.8", None, "PostgreSQL not reachable")
            else:
                records, seconds = our_import(base_url, pg_url)
                value = (records / seconds) / bare_rate
                add("2", "import/bare download, PostgreSQL", value, ">= 0.8", value >= 0.8, f"{records / seconds:,.0f} vs {bare_rate:,.0f} records/s")


# ------------------------------------------------------------------------------ 3. dlt


def dlt_import(base_url: str, db_path: Path) -> tuple[int, float]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from crm_pipelines.providers.hubspot.mapping import properties_for

    source = rest_api_source({
        "client": {"base_url": base_url, "auth": {"type": "bearer", "token": TOKEN},
                   "paginator": {"type": "json_link", "next_url_path": "paging.next.link"}},
        "resources": [{
            "name": "contacts",
            "endpoint": {"path": "crm/v3/objects/contacts", "params": {"limit": 100, "properties": ",".join(properties_for("contacts"))},
                         "data_selector": "results"},
            "primary_key": "id",
            "write_disposition": "merge",
        }],
    })
    pipeline = dlt.pipeline(pipeline_name=f"bench_{uuid.uuid4().hex[:8]}", pipelines_dir=str(db_path.parent / "dlt"),
                            destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{db_path}"), dataset_name="hubspot")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = pipeline.run(source)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    # On SQLite, dlt's sqlalchemy destination keeps each dataset in its own attached file.
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path.parent / f"{db_path.stem}__hubspot.db")) as conn:
        rows = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
    return rows, seconds


def section_dlt(quick: bool) -> None:
    n = 10_000 if quick else 20_000
    print(f"3. against dlt rest_api ({n:,} contacts, SQLite)", flush=True)
    try:
        import dlt  # noqa: F401
    except ImportError:
        print("  dlt not installed: pip install -e .[bench]")
        add("3", "ours/dlt records/s, SQLite", None, ">= 2", None, "dlt not installed: pip install -e .[bench]")
        return
    with simulator_process("--contacts", str(n), "--no-rate-limits") as base_url:
        bare_download(base_url)
        tmp = Path(tempfile.mkdtemp())
        records, seconds = our_import(base_url, f"sqlite:///{tmp / 'ours.db'}")
        theirs, their_seconds = dlt_import(base_url, tmp / "dlt.db")
    ours_rate, their_rate = records / seconds, n / their_seconds
    value = ours_rate / their_rate
    add("3", "ours/dlt records/s, SQLite", value, ">= 2", value >= 2, f"{ours_rate:,.0f} vs {their_rate:,.0f} records/s (dlt sqlalchemy destination, {theirs:,} rows)")


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


# ------------------------------------------------------------------------------ 5. memory


MEMORY_CHILD = """
import resource, sys, tempfile
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from run import our_import
records, seconds = our_import({base_url!r}, "sqlite:///" + tempfile.mkdtemp() + "/mem.db")
print(records, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def section_memory(quick: bool) -> None:
    big = 100_000 if quick else 1_000_000
    print(f"5. memory (10,000 vs {big:,} records)", flush=True)
    peaks = {}
    for n in (10_000, big):
        with simulator_process("--contacts", str(n), "--no-rate-limits", "--daily-limit", "0") as base_url:
            code = MEMORY_CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), base_url=base_url)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True).stdout.split()
            records, seconds, kb = int(out[0]), float(out[1]), int(out[2])
            peaks[n] = kb / 1024
            print(f"  {records:,} records in {seconds:.1f} s, peak RSS {kb / 1024:.1f} MB", flush=True)
    growth = peaks[big] - peaks[10_000]
    add("5", f"peak RSS growth 10,000 -> {big:,}", growth, "< 64 MB", growth < 64, f"{peaks[10_000]:.0f} MB -> {peaks[big]:.0f} MB", fmt="{:.1f} MB")


# ------------------------------------------------------------------------------ 6. Dagster


def section_dagster(quick: bool) -> None:
    print("6. Dagster: one schedule tick with nothing changed", flush=True)
    import logging

    import dagster as dg

    warnings.simplefilter("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)

    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.dagster_defs.partitions import SYNC_PARTITIONS
    from crm_pipelines.definitions import defs
    from crm_pipelines.providers.hubspot.resource import HubSpotResource
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator

    tmp = Path(tempfile.mkdtemp())
    config = HubSpotSimConfig(seed=5, contacts=2_000, companies=200, deals=400, tokens=(TOKEN,))
    with HubSpotSimulator(config) as sim, dg.instance_for_test() as instance:
        resources = {"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=f"sqlite:///{tmp / 'dagster.db'}")}
        job = defs.resolve_job_def("hubspot_import")
        initial = job.execute_in_process(instance=instance, partition_key=SYNC_PARTITIONS.get_first_partition_key(), resources=resources)
        assert initial.success
        schedule = defs.resolve_schedule_def("hubspot_incremental")
        now = datetime.now(timezone.utc)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()) as context:
            requests = list(schedule.evaluate_tick(context).run_requests or [])
        add("6", "runs per schedule tick", len(requests), "1", len(requests) == 1, "hubspot_incremental", fmt="{:.0f}")
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, partition_key=requests[0].partition_key, resources=resources, tags=requests[0].tags)
        seconds = time.perf_counter() - started
        materialized = sorted(e.event_specific_data.materialization.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")
        fetched = sum(e.event_specific_data.materialization.metadata["fetched"].value for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")
        add("6", "tick's run wall time (s)", seconds, "< 30 s", result.success and seconds < 30,
            f"one run materialized {', '.join(materialized)}; {fetched} records read", fmt="{:.1f}")


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and scaled limits (under 2 minutes)")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="sections to run, e.g. 2,3")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin URL of a PostgreSQL server (a throwaway database is created)")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",")}
    started = time.monotonic()
    sections = {
        "1": lambda: section_rate_limits(args.quick),
        "2": lambda: section_overhead(args.quick, args.postgres),
        "3": lambda: section_dlt(args.quick),
        "4": lambda: section_incremental(args.quick),
        "5": lambda: section_memory(args.quick),
        "6": lambda: section_dagster(args.quick),
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
