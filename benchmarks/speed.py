"""Import and export speed: our paths, the bare network loops and dlt (``run.py`` sections 2, 3, 5, 7).

Each function makes one measurement against a HubSpot simulator running in another process and
returns a :class:`Run`: records, wall seconds, the CPU seconds of this process over the same span
(every thread; the simulator's and PostgreSQL's own CPU are not in it) and the 1-minute load
average when it started, so that a figure taken on a busy machine says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import statistics
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson

TOKEN = "bench-token"
#: Contacts' fields in the export measurements (no CPF/CNPJ: matching is by e-mail only).
EXPORT_FIELDS = ("email", "first_name", "last_name", "phone", "company_name", "job_title", "lifecycle_stage")


def peak_rss_kb() -> int:
    """This process's peak resident set size in kB.

    ``VmHWM`` on Linux: ``ru_maxrss`` keeps the parent's peak at the time of the fork, so a child
    of a large benchmark process would report the parent's size instead of its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Run:
    """One measurement."""

    records: int
    seconds: float
    cpu_s: float
    load: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s / self.records * 1000


@dataclass(frozen=True)
class Median:
    """The median of several runs of one measurement, with the load averages seen."""

    runs: tuple[Run, ...]

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def cpu_per_1000(self) -> float:
        return statistics.median(r.cpu_per_1000 for r in self.runs)

    @property
    def load(self) -> str:
        loads = [r.load for r in self.runs]
        return f"{min(loads):.1f}-{max(loads):.1f}"


def median(runs: Sequence[Run]) -> Median:
    return Median(tuple(runs))


class _Stopwatch:
    def __init__(self) -> None:
        self.load = os.getloadavg()[0]
        self.cpu0 = _cpu_s()
        self.t0 = time.perf_counter()

    def stop(self, records: int) -> Run:
        return Run(records, time.perf_counter() - self.t0, _cpu_s() - self.cpu0, self.load)


def full_window(reason: str = "benchmark: full"):
    from crm_pipelines.sync.importer import ImportWindow

    now = datetime.now(timezone.utc)
    return ImportWindow(now - timedelta(days=3650), now, None, now + timedelta(days=1), reason)


# ------------------------------------------------------------------------------ import


def our_import(base_url: str, url: str, measured: contextlib.AbstractContextManager | None = None) -> Run:
    """The real path: HubSpot reader (list) + ``run_import`` (read ahead, ``apply_remote``).
    ``measured`` is entered around the import alone (a profiler started and stopped there).

    Each run starts with no phone parsed, as a run in its own process does: the E.164 cache would
    otherwise keep every phone of the rounds before (the same simulator records) and time only
    look-ups.
    """
    from crm_pipelines.core.normalize import forget_parsed_phones
    from crm_pipelines.providers.hubspot.api import HubSpotClient
    from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.importer import run_import

    store = LocalStore.open(url)
    forget_parsed_phones()
    try:
        with HubSpotClient(access_token=TOKEN, base_url=base_url, burst_limit=1_000_000, search_per_second=1_000_000) as client:
            with measured or contextlib.nullcontext():
                watch = _Stopwatch()
                result = run_import(HubSpotChangeReader(client, strategy="list"), store, "hubspot", "contacts", full_window(), stats=client.stats)
                run = watch.stop(result.fetched)
        assert result.outcome.created == result.fetched, result.summary()
        return run
    finally:
        store.dispose()


def bare_download(base_url: str) -> Run:
    """Only download the pages our import reads (same properties, 100 per page) and decode them."""
    from crm_pipelines.providers.hubspot.mapping import properties_for

    properties = ",".join(properties_for("contacts"))
    count = 0
    watch = _Stopwatch()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}) as client:
        after = None
        while True:
            params = {"limit": 100, "properties": properties}
            if after:
                params["after"] = after
            data = orjson.loads(client.get("/crm/v3/objects/contacts", params=params).content)
            count += len(data["results"])
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
    return watch.stop(count)


def dlt_import(base_url: str, destination: str, database: str, work_dir: Path) -> Run:
    """dlt's ``rest_api`` source reading the same list pages, merged by id into ``destination``.

    ``destination``: ``sqlalchemy`` (``database`` a SQLAlchemy URL, SQLite or PostgreSQL) or
    ``postgres`` (dlt's own PostgreSQL destination; ``database`` a PostgreSQL URL).
    """
    import dlt
    from dlt.sources.rest_api import rest_api_source
    from sqlalchemy.engine import make_url

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
    if destination == "postgres":
        url = make_url(database)
        # dlt asks for a password even where the server trusts local connections.
        credentials = url.set(drivername="postgresql", password=url.password or "unused").render_as_string(hide_password=False)
        target = dlt.destinations.postgres(credentials=credentials)
    else:
        target = dlt.destinations.sqlalchemy(credentials=database)
    pipeline = dlt.pipeline(pipeline_name=f"bench_{uuid.uuid4().hex[:8]}", pipelines_dir=str(work_dir / "dlt"), destination=target, dataset_name="hubspot")
    watch = _Stopwatch()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = pipeline.run(source)
    info.raise_on_failed_jobs()
    return watch.stop(_dlt_rows(database))


def _dlt_rows(database: str) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(database)
    if url.get_backend_name() == "sqlite":
        # On SQLite, dlt's sqlalchemy destination keeps each dataset in its own attached file.
        path = Path(url.database)
        url = url.set(database=str(path.parent / f"{path.stem}__hubspot.db"))
        table = "contacts"
    else:
        table = "hubspot.contacts"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ export


def export_rows(n: int, first_id: int, label: str) -> list[dict]:
    """``n`` local contacts with ids from ``first_id`` (each measurement its own ids and e-mails)."""
    now = datetime.now(timezone.utc)
    return [
        {"id": first_id + i, "email": f"c{i}@{label}.example.com", "first_name": "Zoë", "last_name": f"Gonçalves {i}", "phone": "+55 11 99999-0000",
         "company_name": "Padaria São João", "job_title": "Gerente", "lifecycle_stage": "lead", "created_at": now, "updated_at": now}
        for i in range(n)
    ]


def our_export(base_url: str, url: str, n: int, first_id: int, label: str) -> Run:
    """The real path: ``export_entity`` of ``n`` new local contacts (match by e-mail, intents, upsert, links)."""
    from sqlalchemy import insert

    from crm_pipelines.providers.hubspot.api import HubSpotClient
    from crm_pipelines.providers.hubspot.writer import HubSpotWriter
    from crm_pipelines.storage.schema import contacts
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.exporter import export_entity

    store = LocalStore.open(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), export_rows(n, first_id, label))
        with HubSpotClient(access_token=TOKEN, base_url=base_url, burst_limit=1_000_000, search_per_second=1_000_000) as client:
            watch = _Stopwatch()
            result = export_entity(HubSpotWriter(client), store, "hubspot", "contacts", stats=client.stats)
            run = watch.stop(result.created)
        assert result.created == n, result.summary()
        return run
    finally:
        store.dispose()


def bare_send(base_url: str, n: int, first_id: int, label: str) -> Run:
    """The requests our export sends for new contacts, from records in memory, without a database.

    Per 100 records: the look-up by e-mail (``batch/read``) and the create (``batch/upsert`` keyed by
    the idempotency property), JSON encoded and decoded with orjson.
    """
    from crm_pipelines.providers.hubspot.mapping import to_properties
    from crm_pipelines.providers.hubspot.writer import IDEMPOTENCY_PROPERTY

    rows = export_rows(n, first_id, label)
    batches = []
    for start in range(0, n, 100):
        chunk = rows[start : start + 100]
        lookup = {"inputs": [{"id": r["email"]} for r in chunk], "idProperty": "email", "properties": ["email"]}
        inputs = []
        for r in chunk:
            key = f"contacts:{r['id']}"
            properties = to_properties("contacts", {name: r[name] for name in EXPORT_FIELDS})
            inputs.append({"id": key, "idProperty": IDEMPOTENCY_PROPERTY, "properties": properties | {IDEMPOTENCY_PROPERTY: key}, "objectWriteTraceId": str(r["id"])})
        batches.append((lookup, {"inputs": inputs}))
    created = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Accept": "application/json"}
    watch = _Stopwatch()
    with httpx.Client(base_url=base_url, headers=headers) as client:
        for lookup, upsert in batches:
            orjson.loads(client.post("/crm/v3/objects/contacts/batch/read", content=orjson.dumps(lookup)).content)
            answer = client.post("/crm/v3/objects/contacts/batch/upsert", content=orjson.dumps(upsert))
            created += len(orjson.loads(answer.content)["results"])
    assert created == n, f"bare send created {created} of {n}"
    return watch.stop(created)


__all__ = ["Median", "Run", "bare_download", "bare_send", "dlt_import", "median", "our_export", "our_import", "peak_rss_kb"]
