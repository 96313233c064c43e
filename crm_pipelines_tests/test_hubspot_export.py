"""Export to HubSpot over real HTTP: bulk creates, matching, change detection, rejects, crashes."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.writer import IDEMPOTENCY_PROPERTY, HubSpotWriter
from crm_pipelines.storage.schema import companies, contacts
from crm_pipelines.sync.exporter import export_entity

TOKEN = "export-test-token"
PATIENCE_S = 1.0
UTC = timezone.utc


@pytest.fixture
def make_sim(start_hubspot_sim):
    return lambda **overrides: start_hubspot_sim(**({"seed": 5, "contacts": 0, "companies": 0, "deals": 0, "tokens": (TOKEN,), "burst_limit": 1000} | overrides))


def add_local_contacts(store, n, *, start=0, invalid_every=0):
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        email = f"pessoa{i}@exemplo.com.br"
        if invalid_every and i % invalid_every == 0:
            email = f"pessoa{i}-at-nowhere"  # HubSpot rejects it
        rows.append({"email": email, "first_name": "João" if i % 2 else "Conceição", "last_name": f"Silva {i}", "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def export(sim, store, entity="contacts", **kw):
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=1000) as client:
        return export_entity(HubSpotWriter(client), store, "hubspot", entity, stats=client.stats, **kw)


def assert_exactly_once(sim, store, entity="contacts"):
    remote = sim.records(entity)
    keys = collections.Counter(o["properties"].get(IDEMPOTENCY_PROPERTY) for o in remote.values())
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"duplicates at the provider: {list(duplicated.items())[:5]}"
    links = store.linked_records("hubspot", entity)
    assert set(links) <= set(remote)
    assert len(links) == len({row["id"] for row in links.values()})
    return remote, links


def test_new_contacts_are_created_in_100_record_batches_and_linked(make_sim, store):
    sim = make_sim()
    add_local_contacts(store, 1050)
    result = export(sim, store)
    assert result.created == 1050 and result.rejected == 0
    assert result.api["by_kind"]["write"] == 11  # ceil(1050 / 100)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 1050
    # the values landed, accents included
    by_email = {o["properties"]["email"]: o["properties"] for o in remote.values()}
    assert by_email["pessoa1@exemplo.com.br"]["firstname"] == "João"
    assert by_email["pessoa2@exemplo.com.br"]["firstname"] == "Conceição"

    # nothing changed locally: nothing is sent
    again = export(sim, store)
    assert again.selected == 0 and again.api.get("by_kind", {}).get("write", 0) == 0


def test_only_changed_records_are_sent_again(make_sim, store):
    sim = make_sim()
    add_local_contacts(store, 300)
    export(sim, store)
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 10).values(job_title="Diretora de Operações"))
    result = export(sim, store)
    assert (result.selected, result.updated, result.created) == (10, 10, 0)
    assert result.api["by_kind"]["write"] == 1
    titles = [o["properties"].get("jobtitle") for o in sim.records("contacts").values()]
    assert titles.count("Diretora de Operações") == 10


def test_existing_provider_records_are_matched_not_duplicated(make_sim, store):
    sim = make_sim(contacts=200)
    remote_emails = sorted(o["properties"]["email"] for o in sim.records("contacts").values() if o["properties"].get("email"))[:50]
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": e.upper(), "first_name": "Local", "created_at": now, "updated_at": now} for e in remote_emails])
    # the local table keeps e-mails as written; matching normalizes both sides
    with store.engine.begin() as conn:
        conn.execute(update(contacts).values(email=contacts.c.email))
    before = sim.count("contacts")
    result = export(sim, store)
    assert result.linked == 50 and result.created == 0
    assert sim.count("contacts") == before


def test_companies_match_by_domain(make_sim, store):
    sim = make_sim(companies=100)
    domains = sorted(o["properties"]["domain"] for o in sim.records("companies").values() if o["properties"].get("domain"))[:20]
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(companies), [{"name": f"Local {d}", "domain": d, "created_at": now, "updated_at": now} for d in domains]
                     + [{"name": "Nova Ltda", "domain": "nova-ltda.com.br", "created_at": now, "updated_at": now}])
    before = sim.count("companies")
    result = export(sim, store, "companies")
    assert (result.linked, result.created) == (20, 1)
    assert sim.count("companies") == before + 1


def test_invalid_records_go_to_the_ledger_and_valid_ones_land_once_despite_faults(make_sim, store):
    sim = make_sim()
    add_local_contacts(store, 1000, invalid_every=20)  # 5% invalid
    sim.faults.rate_429 = 0.1
    sim.faults.rate_5xx = 0.1
    result = export(sim, store)
    assert result.created == 950
    assert result.rejected == 50
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == 950
    rejects = store.open_rejects("hubspot", "contacts", "export")
    assert len(rejects) == 50
    assert all("email" in r["message"].lower() for r in rejects), rejects[0]

    # the next run sends nothing: a rejected record waits for a change of its content
    sim.faults.rate_429 = sim.faults.rate_5xx = 0.0
    again = export(sim, store)
    assert again.selected == 0 and again.api.get("calls", 0) == 0
    # `rejects retry` sends them again (still invalid: rejected a second time)
    refs = [int(r["record_ref"]) for r in store.open_rejects("hubspot", "contacts", "export")]
    retried = export(sim, store, ids=refs, retry_rejected=True)
    assert retried.selected == 50 and retried.rejected == 50 and retried.created == 0
    assert store.open_rejects("hubspot", "contacts", "export")[0]["attempts"] == 2


def test_conflict_on_create_becomes_a_link(make_sim, store, monkeypatch):
    """Search lag: matching misses a just-created contact; the 409 on create links it instead."""
    sim = make_sim(contacts=30)
    existing = next(o for o in sim.records("contacts").values() if o["properties"].get("email"))
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": existing["properties"]["email"], "first_name": "Ana", "created_at": now, "updated_at": now}])
    monkeypatch.setattr(HubSpotWriter, "match", lambda self, entity, records: {})
    result = export(sim, store)
    assert result.linked == 1 and result.created == 0 and result.updated == 1
    assert store.linked_records("hubspot", "contacts")[existing["id"]]["first_name"] == "Ana"
    assert sim.records("contacts")[existing["id"]]["properties"]["firstname"] == "Ana"


def test_dry_run_sends_nothing(make_sim, store):
    sim = make_sim()
    add_local_contacts(store, 120)
    result = export(sim, store, dry_run=True)
    assert (result.would_create, result.would_update) == (120, 0)
    assert sim.count("contacts") == 0
    assert sim.stats["total_requests"] == 0
    assert store.pending_intents("hubspot", "contacts") == {}


@pytest.mark.slow
def test_killed_exports_never_duplicate_or_lose_records(make_sim, sqlite_url):
    """SIGKILL the export process at 20+ points; the runs that follow create nothing twice."""
    from crm_pipelines.storage.store import LocalStore

    sim = make_sim()
    store = LocalStore.open(sqlite_url)
    total = 4000  # 40 write batches: room for 20+ kills at one or two batches each
    add_local_contacts(store, total)
    rng = random.Random(42)
    # A killed process's lease expires after 1 s; its creates in flight are waited for 1 s at most.
    env = dict(os.environ, CRM_EXPORT_LEASE_TTL_S="1", CRM_LATE_CREATE_PATIENCE_S=str(PATIENCE_S))
    helper = [sys.executable, "-m", "crm_pipelines_tests.helpers.export_once", sim.base_url, TOKEN, sqlite_url]
    cwd = Path(__file__).resolve().parents[1]
    kills = 0
    for _ in range(60):
        writes_before = sum(n for route, n in sim.stats["by_route"].items() if "upsert" in route or "update" in route)
        proc = subprocess.Popen(helper, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        target = writes_before + rng.randint(1, 2)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            writes = sum(n for route, n in sim.stats["by_route"].items() if "upsert" in route or "update" in route)
            if writes >= target:
                time.sleep(rng.uniform(0, 0.03))  # land anywhere: mid-request, before or after the commit
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            if kills >= 20:
                break
            # A slow machine lets a process write several batches before its kill lands: give
            # the next processes more to export rather than exercise fewer kill points.
            add_local_contacts(store, 1000, start=total)
            total += 1000
            continue
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills += 1
    else:
        pytest.fail(f"the export never completed ({kills} kills)")
    # one more run to be sure everything settled, once the creates in flight at a kill may be given up on
    time.sleep(PATIENCE_S)
    final = subprocess.run(helper, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert final.returncode == 0, final.stderr[-2000:]
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == total, f"provider has {len(remote)} records for {total} local ones"
    assert len(links) == total
    assert store.pending_intents("hubspot", "contacts") == {}
    store.dispose()


def test_batch_refused_as_a_whole_is_split_until_the_bad_records_are_alone(make_sim, store, monkeypatch):
    """Without trace ids HubSpot fails the whole batch on one bad input; bisection saves the rest."""
    sim = make_sim()
    add_local_contacts(store, 100, invalid_every=25)  # 4 invalid e-mails among 100
    original = HubSpotWriter._write

    def without_trace_ids(self, entity, action, inputs):
        return original(self, entity, action, [{k: v for k, v in i.items() if k != "objectWriteTraceId"} for i in inputs])

    monkeypatch.setattr(HubSpotWriter, "_write", without_trace_ids)
    result = export(sim, store)
    assert (result.created, result.rejected) == (96, 4)
    assert_exactly_once(sim, store)
    assert sim.count("contacts") == 96
    messages = [r["message"] for r in store.open_rejects("hubspot", "contacts", "export")]
    assert len(messages) == 4 and all("email" in m.lower() for m in messages)


def test_invalid_cpf_is_rejected_before_sending(make_sim, store):
    sim = make_sim()
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [
            {"email": "ok@exemplo.com.br", "document": "529.982.247-25", "created_at": now, "updated_at": now},
            {"email": "bad@exemplo.com.br", "document": "529.982.247-24", "created_at": now, "updated_at": now},
        ])
    result = export(sim, store)
    assert (result.created, result.rejected) == (1, 1)
    [reject] = store.open_rejects("hubspot", "contacts", "export")
    assert "CPF" in reject["message"] and reject["category"] == "INVALID_FIELD"
    [remote] = sim.records("contacts").values()
    assert remote["properties"]["cpf_cnpj"] == "52998224725"


def test_only_new_sends_only_records_never_exported(make_sim, store):
    sim = make_sim()
    add_local_contacts(store, 50)
    export(sim, store)
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 5).values(job_title="CEO"))
    add_local_contacts(store, 7, start=50)
    result = export(sim, store, only_new=True)
    assert (result.selected, result.created, result.updated) == (7, 7, 0)
    assert "CEO" not in [o["properties"].get("jobtitle") for o in sim.records("contacts").values()]


def test_deals_are_exported_with_exact_amounts_and_dates(make_sim, store):
    from decimal import Decimal

    from crm_pipelines.storage.schema import deals

    sim = make_sim()
    now = datetime.now(UTC)
    close = datetime(2026, 12, 31, 15, 0, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "Pedido Açaí", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "closedwon", "pipeline": "default", "close_date": close, "created_at": now, "updated_at": now},
            {"name": "Sem estágio", "amount": Decimal("10.00"), "currency": "BRL", "stage": None, "pipeline": "default", "close_date": None, "created_at": now, "updated_at": now},
        ])
    result = export(sim, store, "deals")
    assert (result.created, result.rejected) == (1, 1)
    [remote] = sim.records("deals").values()
    assert remote["properties"]["dealname"] == "Pedido Açaí"
    assert Decimal(remote["properties"]["amount"]) == Decimal("1234567.89")
    assert remote["properties"]["closedate"].startswith("2026-12-31T15:00:00")
    [reject] = store.open_rejects("hubspot", "deals", "export")
    assert "dealstage" in reject["message"]


def test_each_new_record_is_mapped_once_from_its_check_to_its_create(make_sim, store, monkeypatch):
    import crm_pipelines.providers.hubspot.writer as writer_module

    sim = make_sim()
    add_local_contacts(store, 250)
    built = collections.Counter()
    to_properties = writer_module.to_properties

    def counted(entity, fields, mapping=None):
        built[entity] += 1
        return to_properties(entity, fields, mapping)

    monkeypatch.setattr(writer_module, "to_properties", counted)
    result = export(sim, store)
    assert (result.created, built["contacts"]) == (250, 250)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 250
