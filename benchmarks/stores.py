"""Many stores on one database: accounts side by side, and the schedule's cost per integration.

Two sections, each printed as a table with the load average:

1. **Two HubSpot accounts and a Bling account synced at once**, each store's full import in its
   own process (as the schedule, the CLI or two Dagster runs would be), against simulators at
   HubSpot's published limit (100 requests per 10 s per account) and Bling's 3 per second. For
   each account: requests, time, the strict floor its own limit allows (the first window's
   requests go at once, each further window waits), and ``share of ceiling`` = floor / time
   (1.0: the account's whole limit was used, whatever the others did). Median of the repetitions.
2. **The schedule's tick over many integrations** (default 500, 5 % with changes): the time to
   register them, the time the definitions take to load (they do not depend on the number of
   integrations), the tick's run (the incremental job, in-process, on the instance) with its
   time per integration, and the load time of the asset page's queries for ``hubspot/contacts``
   with every integration as a partition.

Usage: ``python benchmarks/stores.py [--repeat 3] [--contacts 30000] [--integrations 500] [--only 1|2] [--database URL]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

HUBSPOT_LIMIT, HUBSPOT_WINDOW_S = 100, 10.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def window_floor(requests: int, per_window: int, window_s: float) -> float:
    """The least time ``requests`` take under a sliding window of ``per_window`` per ``window_s``."""
    return max(-(-requests // per_window) - 1, 0) * window_s


def _sync_store(url: str, provider: str, key: str) -> dict:
    """One store's full import of contacts, in its own process (shared budgets in the database)."""
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.runner import import_now

    store = LocalStore.open(url)
    integration = store.integrations.get(provider, key)
    started = time.monotonic()
    result = import_now(integration, "contacts", store, full=True)
    seconds = time.monotonic() - started
    store.dispose()
    return {"integration": integration.label, "records": result.fetched, "requests": int(result.api.get("calls", 0)), "seconds": seconds,
            "rate_limited": int(result.api.get("rate_limited", 0))}


def section_accounts(args) -> list[dict]:
    from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, BlingSimConfig, BlingSimulator
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
    from crm_pipelines.storage.store import LocalStore

    runs: dict[str, list[dict]] = {}
    for repetition in range(args.repeat):
        url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'stores.db'}"
        now = datetime.now(timezone.utc)
        hub_a = HubSpotSimulator(HubSpotSimConfig(seed=31, contacts=args.contacts, companies=0, deals=0, tokens=("token-a",)))
        hub_b = HubSpotSimulator(HubSpotSimConfig(seed=31, contacts=args.contacts, companies=0, deals=0, tokens=("token-b",)))
        bling = BlingSimulator(BlingSimConfig(seed=5, contacts=args.bling_contacts, companies=0, deals=0, reference_time=now, clock_start=now))
        for sim in (hub_a, hub_b, bling):
            sim.start()
        try:
            store = LocalStore.open(url)
            registry = store.integrations
            os.environ.setdefault("CRM_SECRET_KEY", "Xr5mXGCrzkyTFyj4ozF16qK0-9_hJRTDwLrwFMpQ5nY=")
            for key, sim, token in (("loja_a", hub_a, "token-a"), ("loja_b", hub_b, "token-b")):
                registry.add_store(key)
                registry.add("hubspot", store=key, connection={"access_token": token, "base_url": sim.base_url})
            registry.add_store("loja_c")
            registry.add("bling", store="loja_c", connection={"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                                                               "refresh_token": DEFAULT_REFRESH_TOKEN, "base_url": bling.base_url + "/Api/v3"})
            store.dispose()
            with ProcessPoolExecutor(max_workers=3) as pool:
                futures = [pool.submit(_sync_store, url, p, k) for p, k in (("hubspot", "loja_a"), ("hubspot", "loja_b"), ("bling", "loja_c"))]
                results = [f.result() for f in futures]
        finally:
            for sim in (hub_a, hub_b, bling):
                sim.stop()
        for result in results:
            runs.setdefault(result["integration"], []).append(result)
        print(f"  repetition {repetition + 1}: " + ", ".join(f"{r['integration']} {r['seconds']:.1f}s" for r in results), file=sys.stderr)
    rows = []
    for label, results in runs.items():
        limit, window = (HUBSPOT_LIMIT, HUBSPOT_WINDOW_S) if label.startswith("hubspot") else (3, 1.0)
        median = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
        floor = window_floor(median["requests"], limit, window)
        rows.append({"account": label, "records": median["records"], "requests": median["requests"], "seconds": round(median["seconds"], 2),
                     "floor_s": floor, "share_of_ceiling": round(floor / median["seconds"], 3) if median["seconds"] else 0.0,
                     "429s": median["rate_limited"]})
    return rows


def section_tick(args) -> list[dict]:
    import dagster as dg
    import httpx

    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.dagster_defs.partitions import integration_partitions_name
    from crm_pipelines.providers.hubspot.resource import HubSpotResource
    from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator
    from crm_pipelines.simulator.config import AccountSpec
    from crm_pipelines.storage.store import LocalStore

    rows = []
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'tick.db'}"
    n = args.integrations
    changed = max(1, n * 5 // 100)
    accounts = tuple(AccountSpec(str(1000 + i), tokens=(f"token-{i}",), records={"contacts": 20, "companies": 2, "deals": 2}) for i in range(n))
    now = datetime.now(timezone.utc)
    sim = HubSpotSimulator(HubSpotSimConfig(seed=9, contacts=20, companies=2, deals=2, tokens=("token-default",), accounts=accounts,
                                            reference_time=now - timedelta(hours=2), clock_start=now))
    sim.start()
    try:
        store = LocalStore.open(url)
        started = time.monotonic()
        for i in range(n):
            key = f"loja_{i:04d}"
            store.integrations.add_store(key)
            store.integrations.add("hubspot", store=key, account_id=str(1000 + i), connection={"access_token": {"env": f"TOKEN_{i}"}, "base_url": sim.base_url})
            os.environ[f"TOKEN_{i}"] = f"token-{i}"
        rows.append({"step": f"register {n} stores and integrations", "seconds": round(time.monotonic() - started, 2), "per_integration_ms": round((time.monotonic() - started) / n * 1000, 2)})

        started = time.monotonic()
        import crm_pipelines.definitions as definitions

        defs = definitions.build_definitions()
        defs.get_repository_def().get_all_jobs()
        rows.append({"step": "load the definitions", "seconds": round(time.monotonic() - started, 2), "per_integration_ms": 0.0})

        home = tempfile.mkdtemp()
        with dg.instance_for_test(temp_dir=home) as instance:
            instance.add_dynamic_partitions(integration_partitions_name("hubspot"), [f"loja_{i:04d}" for i in range(n)])
            resources = {"hubspot": HubSpotResource(access_token="token-default", base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=url)}
            job = defs.resolve_job_def("hubspot_incremental")
            started = time.monotonic()
            first = job.execute_in_process(instance=instance, resources=resources, run_config={"ops": {"hubspot__sync_due_integrations": {"config": {"max_parallel": 8}}}})
            initial = time.monotonic() - started
            assert first.success
            rows.append({"step": f"first tick: initial sync of {n} integrations", "seconds": round(initial, 2), "per_integration_ms": round(initial / n * 1000, 1)})
            for i in range(changed):
                sim.modify("contacts", n=3, account=str(1000 + i))
            keys = [f"loja_{i:04d}" for i in range(n)]
            started = time.monotonic()
            tick = job.execute_in_process(instance=instance, resources=resources,
                                          run_config={"ops": {"hubspot__sync_due_integrations": {"config": {"integrations": keys, "max_parallel": 8}}}})
            seconds = time.monotonic() - started
            assert tick.success
            rows.append({"step": f"a tick: {n} integrations, {changed} with changes", "seconds": round(seconds, 2), "per_integration_ms": round(seconds / n * 1000, 1)})
        rows.extend(_asset_page_load(home, url, n))
    finally:
        sim.stop()
    return rows


def _asset_page_load(home: str, url: str, n: int) -> list[dict]:
    """Time the GraphQL queries of the asset page of hubspot/contacts, served by a real webserver."""
    import socket
    import subprocess

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, DAGSTER_HOME=home, CRM_DATABASE_URL=url)
    server = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m", "crm_pipelines.definitions", "-p", str(port), "-h", "127.0.0.1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = """query AssetPage($key: AssetKeyInput!) {
      assetNodeOrError(assetKey: $key) { ... on AssetNode { id description partitionKeysByDimension { name partitionKeys }
        assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } partitionStats { numMaterialized numPartitions } } }
    }"""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        timings = []
        for _ in range(3):
            started = time.monotonic()
            answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": {"key": {"path": ["hubspot", "contacts"]}}}, timeout=120)
            timings.append(time.monotonic() - started)
            answer.raise_for_status()
        stats = answer.json()["data"]["assetNodeOrError"]["partitionStats"]
        return [{"step": f"asset page of hubspot/contacts ({stats['numMaterialized']} of {stats['numPartitions']} partitions materialized)",
                 "seconds": round(statistics.median(timings), 3), "per_integration_ms": round(statistics.median(timings) / n * 1000, 3)}]
    finally:
        server.terminate()
        server.wait(timeout=30)


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title} (load average {_load()})")
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def main(argv: list[str] | None = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=30_000, help="contacts per HubSpot account (300 list requests: a 20 s floor)")
    parser.add_argument("--bling-contacts", type=int, default=45)
    parser.add_argument("--integrations", type=int, default=500)
    parser.add_argument("--only", choices=("1", "2"))
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file per repetition)")
    args = parser.parse_args(argv)
    rows = []
    if args.only in (None, "1"):
        accounts = section_accounts(args)
        print_table(f"Accounts synced at once, median of {args.repeat}", accounts)
        rows += accounts
    if args.only in (None, "2"):
        tick = section_tick(args)
        print_table(f"The schedule's tick over {args.integrations} integrations", tick)
        rows += tick
    return rows


if __name__ == "__main__":
    main()
