"""Provider-generic fault injection: start a provider's simulator, misbehave, sync, reconcile.

Every provider in :data:`crm_pipelines.providers.registry.PROVIDERS` is driven the same way:
its simulator is started with :func:`crm_pipelines.cli.demo.start_simulator`, the environment
variables of ``plugin.simulator_env`` point the resource at it, and
:func:`crm_pipelines.sync.runner.import_now` / :func:`export_now` run the sync. A scenario runs
until a sync completes (at most ``max_runs``); failed runs must fail with a clear message (the
provider's name and what went wrong). Reconciliation then compares both sides record by record.

Time is simulated where the code waits: the HTTP client's back-off sleeps advance the simulator's
clock instead of the wall clock, so "an outage of five minutes" costs a fraction of a second.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert

from crm_pipelines.core.http import ApiClient
from crm_pipelines.providers.registry import PROVIDERS, plugin
from crm_pipelines.simulator.server import Fault, FaultConfig
from crm_pipelines.storage.schema import ENTITY_TABLES
from crm_pipelines.storage.store import LocalStore

ENTITIES = ("contacts", "companies", "deals")
#: Records per entity each simulator starts with for import scenarios (contacts, companies, deals).
IMPORT_SIZES = (8, 4, 5)
#: Local records per entity for export scenarios.
EXPORT_RECORDS = 6
#: The client timeout while faults run (a "slow" answer takes longer than this).
CLIENT_TIMEOUT_S = 0.4
#: Seconds a create with no answer is waited for before it may be sent again (real time).
LATE_CREATE_PATIENCE_S = 1.0
#: Entities each provider's simulator can receive in an export scenario without extra setup.
EXPORT_ENTITIES: dict[str, tuple[str, ...]] = {name: ("contacts", "companies") for name in PROVIDERS}


@dataclass(frozen=True)
class Scenario:
    """One fault: how to set it up on a simulator, and for which providers it applies."""

    name: str
    setup: Callable[[Any, "FaultRun"], None]
    applies: Callable[[str], bool] = lambda provider: True
    max_runs: int = 6


@dataclass
class Outcome:
    fault: str
    provider: str
    direction: str
    runs: int = 0
    failed_runs: int = 0
    failure_messages: list[str] = field(default_factory=list)
    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    completed: bool = False
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {"fault": self.fault, "provider": self.provider, "direction": self.direction, "runs": self.runs,
                "failed_runs": self.failed_runs, "records_checked": self.checked, "lost": self.lost, "duplicated": self.duplicated}


# ------------------------------------------------------------------------------------------
# Fault hooks on a running simulator
# ------------------------------------------------------------------------------------------


class FaultRun:
    """Extra fault behaviour on one simulator: timed outages and actions at the N-th request."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.api_requests = 0
        self.outage_until: float | None = None
        self.outage_after: int | None = None
        self.outage_seconds = 0.0
        self.actions: dict[int, Callable[[], None]] = {}
        self.reject_status: int | None = None  # every request answered with this status (token revoked)
        self._decide = sim._injector.decide
        sim._injector.decide = self._decide_hook

    def _decide_hook(self, route: str | None = None) -> Fault | None:
        self.api_requests += 1
        action = self.actions.pop(self.api_requests, None)
        if action is not None:
            action()
        if self.reject_status is not None:
            return Fault("status", self.reject_status, source="test")
        if self.outage_after is not None and self.api_requests >= self.outage_after and self.outage_until is None:
            self.outage_until = self.sim.clock.timestamp() + self.outage_seconds
        if self.outage_until is not None and self.sim.clock.timestamp() < self.outage_until:
            return Fault("status", 503, source="outage")
        return self._decide(route)

    def outage(self, after_requests: int, seconds: float) -> None:
        self.outage_after, self.outage_seconds = after_requests, seconds

    def at_request(self, n: int, action: Callable[[], None]) -> None:
        self.actions[n] = action

    def calm(self) -> None:
        """Stop every fault (the provider is healthy again)."""
        self.sim.faults = FaultConfig()
        self.sim._injector.clear()
        self.reject_status = None
        if self.outage_until is not None:
            self.sim.clock.advance(max(0.0, self.outage_until - self.sim.clock.timestamp()) + 1)
        if self.sim.provider == "bling":
            # A token refused right after a refresh is not refreshed again for a few seconds (no
            # refresh storms); the next scheduled run comes later than that.
            from crm_pipelines.providers.bling.api import MIN_REFRESH_INTERVAL_S

            time.sleep(MIN_REFRESH_INTERVAL_S)


def _rates(**rates) -> Callable[[Any, FaultRun], None]:
    def setup(sim, run: FaultRun) -> None:
        sim.faults = FaultConfig(seed=7, **rates)
    return setup


def _storm_429(sim, run: FaultRun) -> None:
    sim.fail_next(6, 429)
    sim.faults = FaultConfig(seed=7, rate_429=0.3)


def _slow(sim, run: FaultRun) -> None:
    sim.faults = FaultConfig(seed=7, rate_slow=0.15, slow_seconds=CLIENT_TIMEOUT_S * 2)


def _outage(sim, run: FaultRun) -> None:
    run.outage(after_requests=3, seconds=300)  # five simulated minutes of 503s, starting mid-run


def _token_expiry(sim, run: FaultRun) -> None:
    provider = sim.provider
    if provider == "salesforce":
        run.at_request(3, sim.expire_sessions)
    elif provider == "bling":
        run.at_request(3, sim.expire_access_tokens)
    elif provider == "hubspot":
        # A private-app token revoked mid-run: every call answers 401 until it is restored.
        run.at_request(3, lambda: setattr(run, "reject_status", 401))


TOKEN_PROVIDERS = ("hubspot", "salesforce", "bling")

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("429 storm", _storm_429),
    Scenario("5xx at 10%", _rates(rate_5xx=0.1)),
    Scenario("slower than client timeout", _slow),
    Scenario("connection resets", _rates(rate_reset=0.1)),
    Scenario("truncated JSON", _rates(rate_truncated=0.1)),
    Scenario("token expired mid-run", _token_expiry, applies=lambda p: p in TOKEN_PROVIDERS),
    Scenario("outage of 5 minutes", _outage),
)}


# ------------------------------------------------------------------------------------------
# Simulated time for the HTTP client
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def simulated_client_time(sims: list, timeout_s: float = CLIENT_TIMEOUT_S) -> Iterator[None]:
    """Clients built inside use a short timeout, and their back-off sleeps advance the simulators' clocks."""
    original = ApiClient.__init__

    def fake_sleep(seconds: float) -> None:
        for sim in sims:
            sim.clock.advance(seconds)
        time.sleep(min(seconds, 0.01))

    def init(self, *args, **kwargs):
        kwargs["timeout_s"] = min(kwargs.get("timeout_s", timeout_s), timeout_s)
        kwargs["sleep"] = fake_sleep
        original(self, *args, **kwargs)

    from crm_pipelines.sync import exporter

    settle, patience = exporter.AMBIGUOUS_SETTLE_S, exporter.LATE_CREATE_PATIENCE_S
    ApiClient.__init__ = init
    exporter.AMBIGUOUS_SETTLE_S = timeout_s * 4  # a slow answer lands 2 timeouts late
    exporter.LATE_CREATE_PATIENCE_S = LATE_CREATE_PATIENCE_S
    try:
        yield
    finally:
        ApiClient.__init__ = original
        exporter.AMBIGUOUS_SETTLE_S, exporter.LATE_CREATE_PATIENCE_S = settle, patience


#: The deployment key of the tests' databases: Bling keeps its rotated refresh token in the store's
#: database, encrypted, and a PostgreSQL database has no key file beside it.
TEST_SECRET_KEY = "Xr5mXGCrzkyTFyj4ozF16qK0-9_hJRTDwLrwFMpQ5nY="


@contextlib.contextmanager
def provider_env(provider: str, sim) -> Iterator[dict[str, str]]:
    env = plugin(provider).simulator_env(sim) | {"CRM_SECRET_KEY": os.environ.get("CRM_SECRET_KEY") or TEST_SECRET_KEY}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start(provider: str, sizes: tuple[int, int, int], seed: int = 3):
    from crm_pipelines.cli.demo import start_simulator

    return start_simulator(provider, sizes=sizes, seed=seed)


# ------------------------------------------------------------------------------------------
# Local records for exports
# ------------------------------------------------------------------------------------------

#: Valid CPFs and CNPJs (check digits computed below).
def _cpf(n: int) -> str:
    base = [int(d) for d in f"{(n * 7919 + 123456) % 10**9:09d}"]
    for length in (9, 10):
        total = sum(d * w for d, w in zip(base, range(length + 1, 1, -1)))
        base.append((total * 10 % 11) % 10)
    return "".join(map(str, base))


def _cnpj(n: int) -> str:
    base = [int(d) for d in f"{(n * 7919 + 4567) % 10**8:08d}0001"]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        total = sum(d * w for d, w in zip(base, weights))
        r = total % 11
        base.append(0 if r < 2 else 11 - r)
    return "".join(map(str, base))


def local_rows(entity: str, n: int, tag: str, start: int = 0) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(start, start + n):
        if entity == "contacts":
            rows.append({"email": f"{tag}.{i}@exemplo.com.br", "first_name": "Conceição", "last_name": f"Faria {tag} {i}",
                         "phone": f"+55 11 9{i:04d}-{i:04d}", "document": _cpf(i + 17 * len(tag)), "created_at": now, "updated_at": now})
        elif entity == "companies":
            rows.append({"name": f"Empresa {tag} {i} Ltda", "domain": f"{tag}-{i}.com.br", "document": _cnpj(i + 31 * len(tag)),
                         "created_at": now, "updated_at": now})
        else:
            raise ValueError(entity)
    return rows


def add_local(store: LocalStore, entity: str, n: int, tag: str = "falha", start: int = 0) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(ENTITY_TABLES[entity]), local_rows(entity, n, tag, start))


# ------------------------------------------------------------------------------------------
# Reconciliation
# ------------------------------------------------------------------------------------------

_KEY = re.compile(r"(?:crm:)?(contacts|companies|deals):(\d+)")


def reconcile_import(sim, store: LocalStore, provider: str, entity: str) -> tuple[int, int, int, str]:
    """(checked, lost, duplicated, detail): every provider record present locally exactly once."""
    remote = set(sim.records(entity))
    links = store.linked_records(provider, entity)
    local_rows = store.count(entity)
    lost = len(remote - set(links))
    extra_links = len(set(links) - remote)
    local_ids = [row["id"] for row in links.values()]
    duplicated = extra_links + (len(local_ids) - len(set(local_ids))) + max(0, local_rows - len(remote))
    detail = f"{entity}: provider {len(remote)}, links {len(links)}, local rows {local_rows}"
    return len(remote), lost, duplicated, detail


def remote_keys(sim, entity: str) -> collections.Counter:
    """How many provider records carry each local id's idempotency key."""
    keys: collections.Counter = collections.Counter()
    for record in sim.records(entity).values():
        found = {int(m.group(2)) for m in _KEY.finditer(json.dumps(record, default=str)) if m.group(1) == entity}
        keys.update(found)
    return keys


def reconcile_export(sim, store: LocalStore, provider: str, entity: str, before: int) -> tuple[int, int, int, str]:
    """(checked, lost, duplicated, detail): every sendable local record at the provider exactly once."""
    local_ids = set(_local_ids(store, entity))
    rejected = {int(r["record_ref"]) for r in store.open_rejects(provider, entity, "export")}
    expected = local_ids - rejected
    remote = sim.records(entity)
    links = store.linked_records(provider, entity)
    linked_local = {row["id"]: ext for ext, row in links.items()}
    lost = sum(1 for lid in expected if lid not in linked_local or linked_local[lid] not in remote)
    keys = remote_keys(sim, entity)
    duplicated = sum(n - 1 for n in keys.values() if n > 1) + max(0, len(remote) - before - len(expected))
    detail = f"{entity}: local {len(local_ids)}, rejected {len(rejected)}, provider {len(remote)} (had {before}), linked {len(linked_local)}, keyed {len(keys)}"
    return len(expected), lost, duplicated, detail


def _local_ids(store: LocalStore, entity: str) -> list[int]:
    from sqlalchemy import select

    table = ENTITY_TABLES[entity]
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(table.c.id).where(table.c.deleted_at.is_(None)))]


# ------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------


def clear_message(provider: str, exc: BaseException) -> str | None:
    """None when ``exc`` is a clear failure (names the provider and the cause), else why not."""
    text = str(exc)
    title = plugin(provider).title.lower()
    if provider not in text.lower() and title not in text.lower():
        return f"message does not name the provider: {type(exc).__name__}: {text[:300]}"
    if len(text) < 15 or "Traceback" in text:
        return f"message is not clear: {text[:300]}"
    return None


def run_import_scenario(provider: str, scenario: Scenario, db_url: str, *, sizes=IMPORT_SIZES, seed: int = 3) -> Outcome:
    from crm_pipelines.sync.runner import import_now

    outcome = Outcome(scenario.name, provider, "import")
    sim = start(provider, sizes, seed)
    store = LocalStore.open(db_url)
    try:
        run = FaultRun(sim)
        scenario.setup(sim, run)
        entities = plugin(provider).entities
        with provider_env(provider, sim), simulated_client_time([sim]):
            pending = list(entities)
            while pending and outcome.runs < scenario.max_runs:
                outcome.runs += 1
                failed = False
                for entity in list(pending):
                    try:
                        import_now(provider, entity, store, shared=False)
                        pending.remove(entity)
                    except Exception as exc:  # noqa: BLE001 - every failure is judged by its message
                        failed = True
                        problem = clear_message(provider, exc)
                        outcome.failure_messages.append(problem or str(exc)[:200])
                        if problem:
                            outcome.detail += problem + "; "
                if failed:
                    outcome.failed_runs += 1
                    run.calm()  # the provider recovers; the next run must close the gap
            outcome.completed = not pending
        details = []
        for entity in entities:
            checked, lost, duplicated, detail = reconcile_import(sim, store, provider, entity)
            outcome.checked += checked
            outcome.lost += lost
            outcome.duplicated += duplicated
            details.append(detail)
        outcome.detail += "; ".join(details)
    finally:
        store.dispose()
        sim.stop()
    return outcome


def run_export_scenario(provider: str, scenario: Scenario, db_url: str, *, records: int = EXPORT_RECORDS, seed: int = 3) -> Outcome:
    from crm_pipelines.sync.runner import export_now

    outcome = Outcome(scenario.name, provider, "export")
    sim = start(provider, (0, 0, 0), seed)
    store = LocalStore.open(db_url)
    entities = EXPORT_ENTITIES[provider]
    try:
        for entity in entities:
            add_local(store, entity, records, tag=provider[:4])
        before = {entity: len(sim.records(entity)) for entity in entities}
        run = FaultRun(sim)
        scenario.setup(sim, run)
        with provider_env(provider, sim), simulated_client_time([sim]):
            pending = list(entities)
            while pending and outcome.runs < scenario.max_runs:
                outcome.runs += 1
                failed = False
                for entity in list(pending):
                    try:
                        export_now(provider, entity, store, shared=False)
                        pending.remove(entity)
                    except Exception as exc:  # noqa: BLE001
                        failed = True
                        problem = clear_message(provider, exc)
                        outcome.failure_messages.append(problem or str(exc)[:200])
                        if problem:
                            outcome.detail += problem + "; "
                if failed:
                    outcome.failed_runs += 1
                    run.calm()
            outcome.completed = not pending
            # one more run on a healthy provider, once creates with no answer may be given up on: it settles what is left
            run.calm()
            time.sleep(LATE_CREATE_PATIENCE_S)
            for entity in entities:
                try:
                    export_now(provider, entity, store, shared=False)
                except Exception as exc:  # noqa: BLE001
                    outcome.completed = False
                    outcome.failure_messages.append(f"run after recovery failed: {exc}"[:300])
        details = []
        for entity in entities:
            checked, lost, duplicated, detail = reconcile_export(sim, store, provider, entity, before[entity])
            outcome.checked += checked
            outcome.lost += lost
            outcome.duplicated += duplicated
            details.append(detail)
        outcome.detail += "; ".join(details)
    finally:
        store.dispose()
        sim.stop()
    return outcome


def print_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
