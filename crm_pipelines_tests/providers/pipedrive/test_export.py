"""Export to Pipedrive over real HTTP: concurrent single writes, matching, rejects, crash recovery."""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, update

from crm_pipelines.core.errors import QuotaExhausted
from crm_pipelines.providers.pipedrive.writer import PipedriveWriter
from crm_pipelines.storage.schema import companies, contacts, deals
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity

from .conftest import client_for

UTC = timezone.utc
PATH = {"contacts": "persons", "companies": "organizations", "deals": "deals"}


@pytest.fixture
def make_sim(start_pipedrive_sim):
    return lambda **kw: start_pipedrive_sim(**({"seed": 5, "persons": 0, "organizations": 0, "deals": 0, "burst_limit": 5000, "daily_token_budget": 0} | kw))


def add_local_contacts(store, n, *, start=0, invalid_every=0):
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        email = f"pessoa{i}@exemplo.com.br"
        if invalid_every and i % invalid_every == 0:
            email = f"pessoa{i}@exemplo.com."  # passes the local check, refused by Pipedrive
        rows.append({"email": email, "first_name": "João" if i % 2 else "Conceição", "last_name": f"Silva {i}", "job_title": "Analista", "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def export(sim, store, entity="contacts", *, writer_kw=None, **kw):
    with client_for(sim, burst_limit=5000) as client:
        return export_entity(PipedriveWriter(client, **(writer_kw or {})), store, "pipedrive", entity, stats=client.stats, **kw)


def assert_exactly_once(sim, store, entity="contacts"):
    remote = sim.records(PATH[entity])
    key = sim.field_keys(PATH[entity])["crm_record_id"]
    counts = collections.Counter(o["custom_fields"][key] for o in remote.values() if o["custom_fields"][key])
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not duplicated, f"duplicates at the provider: {list(duplicated.items())[:5]}"
    links = store.linked_records("pipedrive", entity)
    assert set(links) <= set(remote)
    assert len(links) == len({row["id"] for row in links.values()})
    return remote, links


@pytest.mark.slow
def test_10000_contacts_land_exactly_once_and_a_rerun_sends_nothing(make_sim, sqlite_store):
    store = sqlite_store
    sim = make_sim()
    add_local_contacts(store, 10_000)
    result = export(sim, store)
    assert (result.created, result.rejected) == (10_000, 0)
    assert result.api["by_kind"]["write"] == 10_000  # one request per record: Pipedrive has no bulk writes
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 10_000 == sim.count("persons")
    by_email = {o["emails"][0]["value"]: o for o in remote.values()}
    assert by_email["pessoa1@exemplo.com.br"]["first_name"] == "João"
    assert by_email["pessoa2@exemplo.com.br"]["name"] == "Conceição Silva 2"
    again = export(sim, store)
    assert again.selected == 0 and again.api.get("by_kind", {}).get("write", 0) == 0


def test_only_changed_records_are_sent_again_as_patches(make_sim, sqlite_store):
    sim = make_sim()
    add_local_contacts(sqlite_store, 150)
    export(sim, sqlite_store)
    with sqlite_store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 10).values(job_title="Diretora de Operações"))
    result = export(sim, sqlite_store)
    assert (result.selected, result.updated, result.created) == (10, 10, 0)
    key = sim.field_keys("persons")["Job title"]
    assert [o["custom_fields"][key] for o in sim.records("persons").values()].count("Diretora de Operações") == 10


def test_a_rejected_record_goes_to_the_ledger_while_the_rest_land(make_sim, sqlite_store):
    sim = make_sim()
    add_local_contacts(sqlite_store, 400, invalid_every=50)
    sim.faults.rate_5xx = 0.03
    sim.faults.rate_429 = 0.005
    result = export(sim, sqlite_store)
    assert (result.created, result.rejected) == (392, 8)
    assert result.api["retries"] > 0
    remote, _ = assert_exactly_once(sim, sqlite_store)
    assert len(remote) == 392
    rejects = sqlite_store.open_rejects("pipedrive", "contacts", "export")
    assert len(rejects) == 8 and all("email" in r["message"].lower() and r["category"] == "HTTP_400" for r in rejects)
    sim.faults.rate_5xx = sim.faults.rate_429 = 0.0
    assert export(sim, sqlite_store).selected == 0  # a rejected record waits for a change of its content
    again = export(sim, sqlite_store, ids=[int(r["record_ref"]) for r in rejects], retry_rejected=True)
    assert (again.selected, again.created) == (8, 0)


def test_crash_between_write_and_save_does_not_duplicate(make_sim, sqlite_store, monkeypatch):
    """The writes land, the process dies before saving their ids: the next run links them by key."""
    sim = make_sim()
    add_local_contacts(sqlite_store, 350)
    original = LocalStore.save_exported
    calls = {"n": 0}

    def crash_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed between write and save")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "save_exported", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        export(sim, sqlite_store)
    monkeypatch.setattr(LocalStore, "save_exported", original)
    # Two batches were saved; the third reached Pipedrive (the fourth may have too, sent before the failed save was seen).
    sent = sim.count("persons")
    assert sent >= 300 and len(sqlite_store.pending_intents("pipedrive", "contacts")) == sent - 200
    result = export(sim, sqlite_store)
    assert result.recovered == sent - 200 and result.created == 350 - sent
    remote, links = assert_exactly_once(sim, sqlite_store)
    assert len(remote) == len(links) == 350
    assert sqlite_store.pending_intents("pipedrive", "contacts") == {}


@pytest.mark.parametrize("search_below", [1000, 0], ids=["search", "index"])
def test_crash_recovery_uses_search_or_the_index(make_sim, sqlite_store, monkeypatch, search_below):
    sim = make_sim()
    add_local_contacts(sqlite_store, 4)
    monkeypatch.setattr(LocalStore, "save_exported", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        export(sim, sqlite_store, writer_kw={"search_below": search_below})
    monkeypatch.undo()
    result = export(sim, sqlite_store, writer_kw={"search_below": search_below})
    assert (result.recovered, result.created) == (4, 0)
    assert ("search" in result.api["by_kind"]) is (search_below == 1000)
    assert_exactly_once(sim, sqlite_store)
    assert sim.count("persons") == 4


@pytest.mark.parametrize("search_below", [1000, 0], ids=["search", "index"])
def test_existing_persons_are_matched_by_email_and_cpf_not_duplicated(make_sim, sqlite_store, search_below):
    sim = make_sim(persons=300)
    people = [o for o in sim.records("persons").values() if o["emails"]]
    doc_key = sim.field_keys("persons")["CPF/CNPJ"]
    by_email = people[:6]
    by_cpf = [o for o in people[6:] if o["custom_fields"][doc_key]][:4]
    now = datetime.now(UTC)
    rows = [{"email": o["emails"][0]["value"].upper(), "document": None, "first_name": "Local", "created_at": now, "updated_at": now} for o in by_email]
    rows += [{"email": f"outro{i}@exemplo.com.br", "document": o["custom_fields"][doc_key], "first_name": "Doc", "created_at": now, "updated_at": now} for i, o in enumerate(by_cpf)]
    rows += [{"email": "nova@exemplo.com.br", "document": None, "first_name": "Nova", "created_at": now, "updated_at": now}]
    with sqlite_store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)
    result = export(sim, sqlite_store, writer_kw={"search_below": search_below})
    assert (result.linked, result.created) == (10, 1)
    assert sim.count("persons") == 301
    links = sqlite_store.linked_records("pipedrive", "contacts")
    assert {str(o["id"]) for o in by_email + by_cpf} <= set(links)


def test_organizations_match_by_domain_and_cnpj(make_sim, sqlite_store):
    sim = make_sim(organizations=60)
    keys = sim.field_keys("organizations")
    orgs = list(sim.records("organizations").values())
    with_domain = [o for o in orgs if o["custom_fields"][keys["Domain"]]][:5]
    with_cnpj = [o for o in orgs if o["custom_fields"][keys["CPF/CNPJ"]] and o not in with_domain][:3]
    now = datetime.now(UTC)
    rows = [{"name": f"Local {i}", "domain": "https://www." + o["custom_fields"][keys["Domain"]], "document": None, "created_at": now, "updated_at": now} for i, o in enumerate(with_domain)]
    rows += [{"name": f"Doc {i}", "domain": None, "document": o["custom_fields"][keys["CPF/CNPJ"]], "created_at": now, "updated_at": now} for i, o in enumerate(with_cnpj)]
    rows += [{"name": "Nova Ltda", "domain": "nova-ltda.com.br", "document": "11.222.333/0001-81", "created_at": now, "updated_at": now}]
    with sqlite_store.engine.begin() as conn:
        conn.execute(insert(companies), rows)
    result = export(sim, sqlite_store, "companies")
    assert (result.linked, result.created) == (8, 1)
    created = [o for o in sim.records("organizations").values() if o["name"] == "Nova Ltda"]
    assert len(created) == 1 and created[0]["custom_fields"][keys["CPF/CNPJ"]] == "11222333000181"
    assert created[0]["custom_fields"][keys["crm_record_id"]].startswith("companies:")


def test_deals_are_exported_with_exact_values_and_bad_stage_is_rejected(make_sim, sqlite_store):
    sim = make_sim()
    now = datetime.now(UTC)
    with sqlite_store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "Pedido Açaí", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "3", "pipeline": "1", "close_date": datetime(2026, 12, 31, tzinfo=UTC), "created_at": now, "updated_at": now},
            {"name": "Estágio inexistente", "amount": Decimal("10.00"), "currency": "BRL", "stage": "42", "pipeline": "1", "close_date": None, "created_at": now, "updated_at": now},
            {"name": "Estágio por nome", "amount": Decimal("10.00"), "currency": "BRL", "stage": "closedwon", "pipeline": None, "close_date": None, "created_at": now, "updated_at": now},
        ])
    result = export(sim, sqlite_store, "deals")
    assert (result.created, result.rejected) == (1, 2)
    [remote] = sim.records("deals").values()
    assert (remote["title"], remote["stage_id"], remote["expected_close_date"]) == ("Pedido Açaí", 3, "2026-12-31")
    assert Decimal(str(remote["value"])) == Decimal("1234567.89")
    messages = " | ".join(r["message"] for r in sqlite_store.open_rejects("pipedrive", "deals", "export"))
    assert "Stage with id 42 not found" in messages and "numeric id" in messages


def test_update_of_a_record_deleted_in_pipedrive_is_rejected_alone(make_sim, sqlite_store):
    sim = make_sim()
    add_local_contacts(sqlite_store, 20)
    export(sim, sqlite_store)
    victim = sorted(sim.records("persons"), key=int)[0]
    sim.delete("persons", [victim])
    with sqlite_store.engine.begin() as conn:
        conn.execute(update(contacts).values(job_title="CEO"))
    result = export(sim, sqlite_store)
    assert (result.updated, result.rejected) == (19, 1)
    [reject] = sqlite_store.open_rejects("pipedrive", "contacts", "export")
    assert reject["category"] == "NOT_FOUND"


def test_spent_daily_budget_stops_the_export_cleanly_and_the_next_day_resumes(make_sim, sqlite_store):
    sim = make_sim(daily_token_budget=20 + 10 + 5 * 60)  # fields + index + 60 creates
    add_local_contacts(sqlite_store, 150)
    with pytest.raises(QuotaExhausted):
        export(sim, sqlite_store)
    assert sim.count("persons") == 60
    sim.config.daily_token_budget = 2_000  # a top-up
    sim.reset_rate_limits()  # and midnight: the next run resumes where the last one stopped
    result = export(sim, sqlite_store)
    assert result.recovered == 60
    remote, links = assert_exactly_once(sim, sqlite_store)
    assert len(remote) == len(links) == 150


def test_missing_idempotency_field_is_a_clear_configuration_error(make_sim, sqlite_store, monkeypatch):
    from crm_pipelines.core.errors import ConfigurationError
    from crm_pipelines.providers.pipedrive import mapping

    sim = make_sim()
    add_local_contacts(sqlite_store, 1)
    monkeypatch.setitem(mapping.CUSTOM_FIELD_NAMES["contacts"], "crm_record_id", "integration key")
    with pytest.raises(ConfigurationError, match="crm_record_id|integration key"):
        export(sim, sqlite_store)
