"""Salesforce import and export of 10,000 records against the simulator at the real default limits.

Salesforce has no per-second limit; what a sync spends is the org's rolling 24-hour allocation of
API requests (100,000 for an Enterprise org before per-licence additions), shared with every other
user and integration of the org. So this prints, for a full import and an export of N contacts:

* API calls used against the minimum the API needs: ceil(N / 2,000) query pages for a read (plus
  the one recycle-bin page a full sync also reads); ceil(N / 200) collection writes plus one
  look-up query per batch (matching by e-mail before creating) for an export;
* the share of the daily allocation those calls are;
* wall time and records/s, against a bare loop that only sends the same requests over HTTP
  (no mapping, no database): ``ratio`` = sync time / bare time (the overhead of doing it properly).

Usage: ``python benchmarks/salesforce.py [--records 10000] [--daily-limit 100000] [--database URL]``
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

import httpx  # noqa: E402  (after the path set-up above)
from sqlalchemy import insert

from crm_pipelines.providers.salesforce.api import COLLECTION_MAX, QUERY_BATCH_SIZE, SalesforceClient
from crm_pipelines.providers.salesforce.reader import SalesforceChangeReader
from crm_pipelines.providers.salesforce.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SalesforceSimConfig,
    SalesforceSimulator,
)
from crm_pipelines.providers.salesforce.writer import SalesforceWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import

DATA = "/services/data/v66.0"


def client_for(sim: SalesforceSimulator) -> SalesforceClient:
    return SalesforceClient(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN, login_url=sim.base_url)


def bare_session(sim: SalesforceSimulator) -> httpx.Client:
    http = httpx.Client(base_url=sim.base_url, timeout=60)
    token = http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID,
                                                       "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN}).json()
    http.headers.update({"Authorization": f"Bearer {token['access_token']}", "Sforce-Query-Options": f"batchSize={QUERY_BATCH_SIZE}"})
    return http


def bare_read(sim: SalesforceSimulator, soql: str, *, all_rows: bool = False) -> tuple[int, int, float]:
    """Download every page of ``soql`` and nothing else: (records, calls, seconds)."""
    http = bare_session(sim)
    try:
        started = time.monotonic()
        page = http.get(f"{DATA}/{'queryAll' if all_rows else 'query'}", params={"q": soql}).json()
        records, calls = len(page["records"]), 1
        while not page["done"]:
            page = http.get(page["nextRecordsUrl"]).json()
            records += len(page["records"])
            calls += 1
        return records, calls, time.monotonic() - started
    finally:
        http.close()


def bare_export(sim: SalesforceSimulator, n: int) -> tuple[int, float]:
    """The same look-ups and upserts as the export, bodies built in advance: (calls, seconds)."""
    batches = []
    for start in range(0, n, COLLECTION_MAX):
        ids = range(start, min(start + COLLECTION_MAX, n))
        emails = ", ".join(f"'pessoa{i}@exemplo.com.br'" for i in ids)
        records = [{"attributes": {"type": "Contact"}, "Email": f"pessoa{i}@exemplo.com.br", "FirstName": "João", "LastName": f"Silva {i}",
                    "Crm_Record_Id__c": f"contacts:{i + 1}"} for i in ids]
        batches.append((f"SELECT Id, Email FROM Contact WHERE Email IN ({emails})", {"allOrNone": False, "records": records}))
    http = bare_session(sim)
    try:
        started = time.monotonic()
        for soql, body in batches:
            http.get(f"{DATA}/query", params={"q": soql}).raise_for_status()
            http.patch(f"{DATA}/composite/sobjects/Contact/Crm_Record_Id__c", json=body).raise_for_status()
        return 2 * len(batches), time.monotonic() - started
    finally:
        http.close()


def main(argv: list[str] | None = None) -> list:
    """Run the benchmark, print its table and return its rows (``benchmarks/run.py`` reads them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--daily-limit", type=int, default=100_000, help="org allocation per rolling 24 h (Enterprise base: 100,000)")
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    args = parser.parse_args(argv)
    n = args.records
    rows = []

    # ---------------------------------------------------------------- import
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'import.db'}"
    store = LocalStore.open(url)
    with SalesforceSimulator(SalesforceSimConfig(seed=7, contacts=n, companies=0, deals=0, daily_api_limit=args.daily_limit)) as sim:
        client = client_for(sim)
        now = datetime.now(timezone.utc)
        window = ImportWindow(now - timedelta(days=365), now, None, now + timedelta(seconds=1), "benchmark: full")
        started = time.monotonic()
        result = run_import(SalesforceChangeReader(client), store, "salesforce", "contacts", window, stats=client.stats)
        seconds = time.monotonic() - started
        client.close()
        assert store.count("contacts") == sim.count("contacts") == n, "the import did not reconcile"
        used = sim.api_usage()["used"]
        fields = ", ".join(SalesforceChangeReader(client).mapping.select_fields("contacts"))
        _, bare_calls_main, bare_main = bare_read(sim, f"SELECT {fields} FROM Contact ORDER BY SystemModstamp, Id")
        _, bare_calls_bin, bare_bin = bare_read(sim, f"SELECT {fields} FROM Contact WHERE IsDeleted = true ORDER BY SystemModstamp, Id", all_rows=True)
        minimum = math.ceil(n / QUERY_BATCH_SIZE) + 1
        rows.append(("import (SOQL, full)", result.fetched, result.api["calls"], minimum, used, args.daily_limit, seconds, bare_main + bare_bin))
    store.dispose()

    # ---------------------------------------------------------------- export
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'export.db'}"
    store = LocalStore.open(url)
    stamp = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": f"pessoa{i}@exemplo.com.br", "first_name": "João", "last_name": f"Silva {i}", "created_at": stamp, "updated_at": stamp} for i in range(n)])
    with SalesforceSimulator(SalesforceSimConfig(seed=7, contacts=0, companies=0, deals=0, daily_api_limit=args.daily_limit)) as sim:
        client = client_for(sim)
        started = time.monotonic()
        result = export_entity(SalesforceWriter(client), store, "salesforce", "contacts", stats=client.stats, batch_size=COLLECTION_MAX)
        seconds = time.monotonic() - started
        client.close()
        assert sim.count("contacts") == result.created == n, "the export did not land every record once"
        used = sim.api_usage()["used"]
    with SalesforceSimulator(SalesforceSimConfig(seed=7, contacts=0, companies=0, deals=0, daily_api_limit=args.daily_limit)) as bare_sim:
        _, bare_seconds = bare_export(bare_sim, n)
    minimum = 2 * math.ceil(n / COLLECTION_MAX)
    rows.append(("export (collections)", result.created, result.api["calls"], minimum, used, args.daily_limit, seconds, bare_seconds))
    store.dispose()

    print(f"Salesforce simulator: {n} contacts, daily allocation {args.daily_limit:,} requests (rolling 24 h), no per-second limit; "
          f"database {url.split(':')[0]}")
    print("minimum calls: import = ceil(n/2000) query pages + 1 recycle-bin page; export = ceil(n/200) upserts + ceil(n/200) e-mail look-ups")
    header = f"{'run':<22}{'records':>9}{'calls':>7}{'minimum':>9}{'share of day':>14}{'seconds':>9}{'records/s':>11}{'bare s':>8}{'bare rec/s':>12}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, records, calls, minimum, used, limit, seconds, bare in rows:
        print(f"{name:<22}{records:>9}{calls:>7}{minimum:>9}{used / limit:>13.3%} {seconds:>9.2f}{records / seconds:>11.0f}{bare:>8.2f}{records / bare:>12.0f}{seconds / bare:>7.2f}")
    print("ratio = sync wall time / bare loop sending the same requests (no mapping, no database); share of day = calls counted by the org")
    return rows

if __name__ == "__main__":
    main()
