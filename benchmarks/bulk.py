"""Regular API against bulk API, side by side, in one run (see docs/bulk.md).

1. Initial sync of N Shopify customers (standard plan: 2,000-point bucket restored at 100/s):
   the cost-paced ``customers`` connection walk against one ``bulkOperationRunQuery``.
2. Initial sync of N Salesforce contacts: SOQL pages of 2,000 against a Bulk API 2.0 query job.
3. Export of N new local contacts to Salesforce: sObject Collections (200 a call) against a Bulk
   API 2.0 ingest job.

Each path is timed against its own floor:

* the Shopify connection walk: the cost floor, ``(actual points - bucket size) / restore rate``;
* every other path: a bare client sending the same provider requests over HTTP (no mapping, no
  database) on a simulator of the same size: what the provider's side costs.

``ratio`` is time / floor (the overhead of doing it properly); ``bulk/regular`` is the bulk path's
time over the regular path's time, and ``bulk/regular floor`` over the regular path's floor (the
issue's goal for Shopify: under 0.1).

Every path runs ``--repeat`` times (default 3; the regular and bulk runs of a family alternate) and
its row shows the median time and floor, except the Shopify regular path: it runs once (33 minutes
for 100,000 customers, nearly all of it waiting on the cost budget), started first in a child
process at nice 10 while the others run. Beside each row: the 1-minute load average at the start
and the end of its runs (lowest-highest), and before and after the whole benchmark.

Usage: ``python benchmarks/bulk.py [--records 100000] [--quick] [--repeat 3] [--database URL] [--skip NAME]``
(``--quick``: 10,000)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from crm_pipelines.providers.salesforce.api import QUERY_BATCH_SIZE, SalesforceClient  # noqa: E402
from crm_pipelines.providers.salesforce.bulk import RESULT_PAGE  # noqa: E402
from crm_pipelines.providers.salesforce.mapping import Mapping as SalesforceMapping  # noqa: E402
from crm_pipelines.providers.salesforce.reader import SalesforceChangeReader  # noqa: E402
from crm_pipelines.providers.salesforce.simulator import (  # noqa: E402
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SalesforceSimConfig,
    SalesforceSimulator,
)
from crm_pipelines.providers.salesforce.writer import SalesforceWriter  # noqa: E402
from crm_pipelines.providers.shopify.api import ShopifyClient  # noqa: E402
from crm_pipelines.providers.shopify.bulk import bulk_query_text  # noqa: E402
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader  # noqa: E402
from crm_pipelines.providers.shopify.simulator import ShopifySimConfig, ShopifySimulator  # noqa: E402
from crm_pipelines.storage.schema import contacts  # noqa: E402
from crm_pipelines.storage.store import LocalStore  # noqa: E402
from crm_pipelines.sync.exporter import export_entity  # noqa: E402
from crm_pipelines.sync.importer import ImportWindow, run_import  # noqa: E402

TOKEN = "shpat_bench_token"
SLOW_CALL_S = 900.0
BUCKET, RESTORE = 2000.0, 100.0
DATA = "/services/data/v66.0"
SELECT = f"SELECT {', '.join(SalesforceMapping().select_fields('contacts'))} FROM Contact"


def fresh_store(database: str | None, label: str) -> LocalStore:
    return LocalStore.open(database or f"sqlite:///{Path(tempfile.mkdtemp()) / f'{label}.db'}")


def full_window() -> ImportWindow:
    now = datetime.now(timezone.utc)
    return ImportWindow(now, now, None, now, "benchmark: initial sync")


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    outcome = work()
    return time.monotonic() - started, outcome


def wait_until(check: Callable[[], bool]) -> None:
    while not check():
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------- Shopify


def shopify_import(path: str, n: int, database: str | None) -> dict[str, Any]:
    """One initial sync of ``n`` customers by the regular (``list``) or the bulk path."""
    config = ShopifySimConfig(seed=9, customers=n, orders=0, companies=0, tokens=(TOKEN,), plan="standard")
    with ShopifySimulator(config) as sim:
        store = fresh_store(database, f"shopify-{path}")
        # The simulator builds a bulk query's whole result file within the bulkOperationRunQuery call
        # (Shopify answers at once and builds it afterwards): at 100,000 customers on a loaded machine
        # that call may take longer than the client's usual 30 s.
        client = ShopifyClient(access_token=TOKEN, base_url=sim.base_url, bucket_size=BUCKET, restore_rate=RESTORE, timeout_s=SLOW_CALL_S)
        reader = ShopifyChangeReader(client, strategy="list" if path == "regular" else "bulk")
        seconds, result = timed(lambda: run_import(reader, store, "shopify", "contacts", full_window(), stats=client.stats))
        client.close()
        ok = set(store.linked_records("shopify", "contacts")) == set(sim.records("contacts"))
        store.dispose()
        if path == "regular":
            floor, basis = max(client.cost.actual - BUCKET, 0) / RESTORE, "cost points"
        else:
            floor, basis = _shopify_bulk_bare(sim), "bare requests"
        return {"run": f"Shopify initial sync, {path}", "path": path, "records": result.fetched, "calls": int(result.api.get("calls", 0)),
                "points": client.cost.actual, "seconds": seconds, "floor": floor, "basis": basis, "reconciled": ok}


def _shopify_bulk_bare(sim: ShopifySimulator) -> float:
    """Start the same bulk query, poll it, read its file: no mapping, no database."""
    url = f"{sim.base_url}/admin/api/2026-10/graphql.json"
    with httpx.Client(timeout=SLOW_CALL_S, headers={"X-Shopify-Access-Token": TOKEN}) as http:
        def gql(query: str, **variables: Any) -> dict[str, Any]:
            return http.post(url, json={"query": query, "variables": variables}).json()["data"]

        started = time.monotonic()
        op = gql("mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } } }", q=bulk_query_text("contacts", None))["bulkOperationRunQuery"]["bulkOperation"]
        node: dict[str, Any] = {}

        def done() -> bool:
            node.update(gql("query($id: ID!) { node(id: $id) { ... on BulkOperation { status url } } }", id=op["id"])["node"])
            return node["status"] == "COMPLETED"

        wait_until(done)
        with http.stream("GET", node["url"]) as response:
            for line in response.iter_lines():
                json.loads(line)
        return time.monotonic() - started


# ---------------------------------------------------------------------------------------- Salesforce


def salesforce_client(sim: SalesforceSimulator) -> SalesforceClient:
    # As on Shopify, the simulator does a job's work within one call (a query job's rows when it is
    # created, an ingest job's on UploadComplete): more than the usual 60 s on a loaded machine.
    return SalesforceClient(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN, login_url=sim.base_url,
                            timeout_s=SLOW_CALL_S)


def bare_session(sim: SalesforceSimulator) -> httpx.Client:
    http = httpx.Client(base_url=sim.base_url, timeout=SLOW_CALL_S)
    token = http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID,
                                                       "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN}).json()
    http.headers.update({"Authorization": f"Bearer {token['access_token']}", "Sforce-Query-Options": f"batchSize={QUERY_BATCH_SIZE}"})
    return http


def salesforce_import(path: str, n: int, database: str | None) -> dict[str, Any]:
    """One initial sync of ``n`` contacts by SOQL pages (regular) or a Bulk API 2.0 query job."""
    with SalesforceSimulator(SalesforceSimConfig(seed=9, contacts=n, companies=0, deals=0)) as sim:
        store = fresh_store(database, f"salesforce-{path}")
        client = salesforce_client(sim)
        reader = SalesforceChangeReader(client, strategy="soql" if path == "regular" else "bulk")
        seconds, result = timed(lambda: run_import(reader, store, "salesforce", "contacts", full_window(), stats=client.stats))
        client.close()
        ok = set(store.linked_records("salesforce", "contacts")) == set(sim.records("contacts"))
        store.dispose()
        with closing(bare_session(sim)) as http:
            floor = _sf_query_bare(http) if path == "regular" else _sf_bulk_query_bare(http)
        return {"run": f"Salesforce initial sync, {path}", "path": path, "records": result.fetched, "calls": int(result.api.get("calls", 0)),
                "points": None, "seconds": seconds, "floor": floor, "basis": "bare requests", "reconciled": ok}


def _sf_query_bare(http: httpx.Client) -> float:
    started = time.monotonic()
    data = http.get(f"{DATA}/query", params={"q": SELECT + " ORDER BY SystemModstamp, Id"}).json()
    while not data.get("done", True):
        data = http.get(data["nextRecordsUrl"]).json()
    return time.monotonic() - started


def _sf_bulk_query_bare(http: httpx.Client) -> float:
    started = time.monotonic()
    job = http.post(f"{DATA}/jobs/query", json={"operation": "query", "query": SELECT}).json()
    wait_until(lambda: http.get(f"{DATA}/jobs/query/{job['id']}").json()["state"] == "JobComplete")
    locator = None
    while locator != "null":
        response = http.get(f"{DATA}/jobs/query/{job['id']}/results", params={"maxRecords": RESULT_PAGE} | ({"locator": locator} if locator else {}))
        list(csv.reader(io.StringIO(response.text)))
        locator = response.headers.get("Sforce-Locator")
    return time.monotonic() - started


def salesforce_export(path: str, n: int, database: str | None) -> dict[str, Any]:
    """One export of ``n`` new local contacts by sObject Collections (regular) or Bulk API 2.0 ingest jobs."""
    with SalesforceSimulator(SalesforceSimConfig(seed=9, contacts=0, companies=0, deals=0)) as sim:
        store = fresh_store(database, f"salesforce-export-{path}")
        store.integrations.update(store.scope("salesforce"), settings={"bulk_threshold": None if path == "regular" else 1})
        now = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), [{"email": f"c{i}@bench.example.com", "first_name": "Zoë", "last_name": f"Gonçalves {i}",
                                             "created_at": now, "updated_at": now} for i in range(n)])
        client = salesforce_client(sim)
        seconds, result = timed(lambda: export_entity(SalesforceWriter(client), store, "salesforce", "contacts", stats=client.stats, batch_size=200))
        client.close()
        ok = result.created == n and sim.count("contacts") == n == len(store.linked_records("salesforce", "contacts"))
        store.dispose()
    with SalesforceSimulator(SalesforceSimConfig(seed=9, contacts=0, companies=0, deals=0)) as bare_sim, closing(bare_session(bare_sim)) as http:
        floor = _sf_collections_bare(http, n) if path == "regular" else _sf_ingest_bare(http, n)
    return {"run": f"Salesforce export, {'sObject Collections' if path == 'regular' else 'Bulk API 2.0'}", "path": path, "records": result.created,
            "calls": int(result.api.get("calls", 0)), "points": None, "seconds": seconds, "floor": floor, "basis": "bare requests", "reconciled": ok}


def _contact(i: int) -> dict[str, Any]:
    return {"Email": f"c{i}@bench.example.com", "FirstName": "Zoë", "LastName": f"Gonçalves {i}", "Crm_Record_Id__c": f"contacts:{i + 1}"}


def _sf_collections_bare(http: httpx.Client, n: int) -> float:
    """The regular export's requests: one e-mail look-up and one upsert of 200 per batch."""
    started = time.monotonic()
    for start in range(0, n, 200):
        batch = [_contact(i) for i in range(start, min(start + 200, n))]
        emails = ", ".join(f"'{r['Email']}'" for r in batch)
        http.get(f"{DATA}/query", params={"q": f"SELECT Id, Email FROM Contact WHERE Email IN ({emails})"})
        http.patch(f"{DATA}/composite/sobjects/Contact/Crm_Record_Id__c", json={"allOrNone": False, "records": [{"attributes": {"type": "Contact"}} | r for r in batch]})
    return time.monotonic() - started


def _sf_ingest_bare(http: httpx.Client, n: int) -> float:
    """The bulk export's requests: e-mail look-ups as the writer cuts them, then one upsert ingest job."""
    started = time.monotonic()
    records = [_contact(i) for i in range(n)]
    for start in range(0, n, 300):
        emails = ", ".join(f"'{r['Email']}'" for r in records[start : start + 300])
        http.get(f"{DATA}/query", params={"q": f"SELECT Id, Email FROM Contact WHERE Email IN ({emails})"})
    job = http.post(f"{DATA}/jobs/ingest", json={"object": "Contact", "operation": "upsert", "externalIdFieldName": "Crm_Record_Id__c"}).json()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    http.put(f"{DATA}/jobs/ingest/{job['id']}/batches", content=out.getvalue().encode(), headers={"Content-Type": "text/csv"})
    http.patch(f"{DATA}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    wait_until(lambda: http.get(f"{DATA}/jobs/ingest/{job['id']}").json()["state"] in ("JobComplete", "Failed"))
    http.get(f"{DATA}/jobs/ingest/{job['id']}/successfulResults/")
    http.get(f"{DATA}/jobs/ingest/{job['id']}/failedResults/")
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------- runs and report

BENCHES: dict[str, Callable[[str, int, str | None], dict[str, Any]]] = {
    "shopify": shopify_import, "salesforce-import": salesforce_import, "salesforce-export": salesforce_export}


def measured(bench: Callable[[str, int, str | None], dict[str, Any]], path: str, n: int, database: str | None) -> dict[str, Any]:
    """One run, with the 1-minute load average when it started and when it ended."""
    load_start = os.getloadavg()[0]
    row = bench(path, n, database)
    return row | {"runs": 1, "load": (load_start, os.getloadavg()[0])}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one path as one row: median time and floor, every run reconciled, the load's range."""
    loads = [value for run in runs for value in run["load"]]
    return runs[-1] | {"seconds": statistics.median(r["seconds"] for r in runs), "floor": statistics.median(r["floor"] for r in runs),
                       "reconciled": all(r["reconciled"] for r in runs), "runs": len(runs), "load": (min(loads), max(loads))}


def start_shopify_regular(n: int, database: str | None, out: Path) -> subprocess.Popen:
    """The Shopify regular path (about 20 s per 1,000 customers at the standard plan's cost budget) in a
    child process at nice 10: it mostly waits on the cost budget while the other paths run."""
    command = [sys.executable, __file__, "--child", "shopify-regular", "--records", str(n), "--out", str(out)]
    if database:
        command += ["--database", database]
    return subprocess.Popen(command, preexec_fn=lambda: os.nice(10))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 records")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path but the Shopify regular one, which runs once (default 3: the median)")
    parser.add_argument("--database", help="SQLAlchemy URL of an empty database per run (default: new SQLite files)")
    parser.add_argument("--skip", action="append", default=[], choices=tuple(BENCHES))
    parser.add_argument("--child", choices=("shopify-regular",), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.records
    if args.child:
        Path(args.out).write_text(json.dumps(measured(shopify_import, "regular", n, args.database)))
        return []
    load_before = os.getloadavg()
    child, child_out = None, Path(tempfile.mkdtemp()) / "shopify-regular.json"
    if "shopify" not in args.skip:
        child = start_shopify_regular(n, args.database, child_out)
    rows: list[dict[str, Any]] = []
    for name, bench in BENCHES.items():
        if name in args.skip:
            continue
        paths = ("bulk",) if name == "shopify" else ("regular", "bulk")
        runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
        for _ in range(args.repeat):
            for path in paths:  # alternated, so that a change of load falls on both
                runs[path].append(measured(bench, path, n, args.database))
        if child is not None and name == "shopify":
            shopify_bulk = median_of(runs["bulk"])
            continue
        rows += [median_of(runs[path]) for path in paths]
    if child is not None:
        if child.wait() != 0:
            raise SystemExit(f"the Shopify regular run failed (exit {child.returncode})")
        rows = [json.loads(child_out.read_text()), shopify_bulk, *rows]
    report(rows, n, args, load_before)
    return rows


def report(rows: list[dict[str, Any]], n: int, args: argparse.Namespace, load_before: tuple[float, float, float]) -> None:
    load_after = os.getloadavg()
    print(f"Regular against bulk path, {n:,} records; database {(args.database or 'sqlite').split(':')[0]}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores)")
    print(f"seconds and floor: median of {args.repeat} runs, but the Shopify regular path: one run, in a child process at nice 10 "
          "while the others ran; load: the 1-minute load average at the start and end of a row's runs (lowest-highest)")
    header = (f"{'run':<42}{'records':>9}{'runs':>5}{'calls':>7}{'points':>8}{'seconds':>9}{'floor s':>9}{'ratio':>7}  {'floor basis':<14}"
              f"{'bulk/regular':>13}{'bulk/reg. floor':>16}{'load':>12}  ok")
    print(header)
    print("-" * len(header))
    regular: dict[str, dict[str, Any]] = {}
    for r in rows:
        family = r["run"].split(",")[0]
        if r["path"] == "regular":
            regular[family] = r
        base = regular.get(family) if r["path"] == "bulk" else None
        versus = f"{r['seconds'] / base['seconds']:.3f}" if base and base["seconds"] else "-"
        versus_floor = f"{r['seconds'] / base['floor']:.3f}" if base and base["floor"] else "-"
        ratio = f"{r['seconds'] / r['floor']:.2f}" if r["floor"] else "-"
        points = "-" if r["points"] is None else str(r["points"])
        load = f"{min(r['load']):.2f}-{max(r['load']):.2f}"
        print(f"{r['run']:<42}{r['records']:>9}{r['runs']:>5}{r['calls']:>7}{points:>8}{r['seconds']:>9.2f}{r['floor']:>9.2f}{ratio:>7}  "
              f"{r['basis']:<14}{versus:>13}{versus_floor:>16}{load:>12}  {r['reconciled']}")


if __name__ == "__main__":
    main()
