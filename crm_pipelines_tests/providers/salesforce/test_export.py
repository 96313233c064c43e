"""Export to Salesforce over real HTTP: collections, exactly-once creates, matching, rejects, crashes."""

from __future__ import annotations

import collections
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, update

from crm_pipelines.providers.salesforce.mapping import Mapping
from crm_pipelines.providers.salesforce.writer import SalesforceWriter
from crm_pipelines.storage.schema import companies, contacts, deals
from crm_pipelines.sync.exporter import export_entity

UTC = timezone.utc
P = "salesforce"
EXT = "Crm_Record_Id__c"


@pytest.fixture
def make_sim(start_salesforce_sim):
    return lambda **kw: start_salesforce_sim(**({"seed": 5, "contacts": 0, "companies": 0, "deals": 0} | kw))


def add_local_contacts(store, n, *, start=0, invalid_every=0, with_documents=False):
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        email = f"pessoa{i}@exemplo.com.br"
        if invalid_every and i % invalid_every == 0:
            email = f"pessoa{i}-at-nowhere"  # Salesforce rejects it (INVALID_EMAIL_ADDRESS)
        rows.append({"email": email, "first_name": "João" if i % 2 else "Conceição", "last_name": f"Silva {i}", "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def export(client, store, entity="contacts", **kw):
    kw.setdefault("batch_size", 200)
    return export_entity(SalesforceWriter(client), store, P, entity, stats=client.stats, **kw)


def assert_exactly_once(sim, store, entity="contacts"):
    remote = sim.records(entity)
    keys = collections.Counter(o[EXT] for o in remote.values() if o[EXT])
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"duplicates at the provider: {list(duplicated.items())[:5]}"
    links = store.linked_records(P, entity)
    assert set(links) <= set(remote)
    assert len(links) == len({row["id"] for row in links.values()})
    return remote, links


def test_changed_records_go_as_updates_by_id(make_sim, store, sf_client):
    sim = make_sim()
    add_local_contacts(store, 300)
    export(sf_client(sim), store)
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 10).values(job_title="Diretora de Operações"))
        conn.execute(update(contacts).where(contacts.c.id.between(11, 13)).values(first_name=None))
    result = export(sf_client(sim), store)
    assert (result.selected, result.updated, result.created) == (13, 13, 0)
    assert result.api["by_kind"] == {"write": 1}
    remote = sim.records("contacts").values()
    assert [o["Title"] for o in remote].count("Diretora de Operações") == 10
    assert sorted(o["LastName"] for o in remote if o["FirstName"] is None) == ["Silva 10", "Silva 11", "Silva 12"]  # cleared remotely


def test_rejected_records_go_to_the_ledger_and_the_rest_land_despite_faults(make_sim, store, sf_client):
    sim = make_sim()
    add_local_contacts(store, 1000, invalid_every=20)  # 5% invalid
    client = sf_client(sim)
    client.limits()
    sim.fail_next(1, 503)
    sim.fail_next(1, kind="reset")
    sim.faults.rate_5xx = 0.2
    sim.faults.rate_reset = 0.1
    result = export(client, store)
    assert client.stats.retries >= 2
    assert (result.created, result.rejected) == (950, 50)
    remote, _ = assert_exactly_once(sim, store)
    assert len(remote) == 950
    rejects = store.open_rejects(P, "contacts", "export")
    assert len(rejects) == 50 and {r["category"] for r in rejects} == {"INVALID_EMAIL_ADDRESS"}
    assert all("invalid email address" in r["message"] for r in rejects)
    sim.faults.rate_5xx = sim.faults.rate_reset = 0.0
    assert export(client, store).selected == 0  # a rejected record waits for a change of its content
    again = export(client, store, ids=[int(r["record_ref"]) for r in rejects], retry_rejected=True)
    assert again.selected == 50 and again.created == 0
    assert store.open_rejects(P, "contacts", "export")[0]["attempts"] == 2


@pytest.mark.parametrize("failing_save_s", [0.0, 0.5], ids=["prompt", "slow"])
def test_a_crash_between_write_and_save_does_not_duplicate(make_sim, store, sf_client, monkeypatch, failing_save_s):
    """The writes reach Salesforce but the run dies before saving the ids: the next run finds them
    (a slow failing save lets the next batches be sent before it fails)."""
    sim = make_sim()
    add_local_contacts(store, 1000)
    real_save = type(store).save_exported
    calls = {"n": 0}

    def crash_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            time.sleep(failing_save_s)
            raise KeyboardInterrupt("killed between the write and the save")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(type(store), "save_exported", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        export(sf_client(sim), store)
    monkeypatch.setattr(type(store), "save_exported", real_save)
    # Two batches were saved; the third reached Salesforce, and so may the next ones sent before the
    # failed save was seen: each one sent keeps its intents.
    sent = sim.count("contacts")
    assert sent >= 600 and len(store.pending_intents(P, "contacts")) == sent - 400
    result = export(sf_client(sim), store)
    assert result.recovered == sent - 400 and result.created == 1000 - sent
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 1000
    assert store.pending_intents(P, "contacts") == {}


def test_a_create_retried_after_a_lost_answer_updates_instead_of_duplicating(make_sim, store, sf_client, monkeypatch):
    """The upsert lands but its answer arrives cut short: the retried upsert finds the records (created=false)."""
    sim = make_sim()
    add_local_contacts(store, 150)
    client = sf_client(sim)
    client.limits()
    monkeypatch.setattr(SalesforceWriter, "match", lambda self, entity, records: {})  # the write is the next call
    sim.fail_next(1, kind="truncate")
    writes_before = sim.stats["by_route"].get("PATCH /composite/sobjects/{SObject}/{ExtId}", 0)
    result = export(client, store)
    assert result.created == 150 and client.stats.retries == 1
    assert sim.stats["by_route"]["PATCH /composite/sobjects/{SObject}/{ExtId}"] - writes_before == 2
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 150


def test_existing_records_with_the_same_email_domain_or_document_are_linked(make_sim, store, sf_client):
    sim = make_sim(contacts=200, companies=120)
    remote_contacts = sim.records("contacts")
    emails = sorted(o["Email"] for o in remote_contacts.values() if o["Email"])[:30]
    documented = [o for o in remote_contacts.values() if o["CPF_CNPJ__c"] and o["Email"] not in emails][:10]
    sites = [o for o in sim.records("companies").values() if o["Website"]][:20]
    now = datetime.now(UTC)
    import re

    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": e.upper(), "last_name": "Pessoa", "document": None, "created_at": now, "updated_at": now} for e in emails]
                     + [{"email": None, "last_name": "Doc", "document": re.sub(r"\D", "", o["CPF_CNPJ__c"]), "created_at": now, "updated_at": now} for o in documented])
        conn.execute(insert(companies), [{"name": f"Local {i}", "domain": re.sub(r"^(https?://)?(www\.)?", "", o["Website"]).strip("/"), "created_at": now, "updated_at": now} for i, o in enumerate(sites)]
                     + [{"name": "Nova Ltda", "domain": "nova-ltda.com.br", "created_at": now, "updated_at": now}])
    result = export(sf_client(sim), store)
    assert (result.linked, result.created) == (40, 0)
    assert sim.count("contacts") == 200
    links = store.linked_records(P, "contacts")
    assert {links[o["Id"]]["document"] for o in documented} == {re.sub(r"\D", "", o["CPF_CNPJ__c"]) for o in documented}
    result = export(sf_client(sim), store, "companies")
    assert (result.linked, result.created) == (20, 1)
    assert sim.count("companies") == 121


def test_duplicate_rule_answer_becomes_a_link(make_sim, store, sf_client, monkeypatch):
    """Matching missed a record (created meanwhile); the org's duplicate rule names it: link, then update."""
    sim = make_sim(contacts=30, block_duplicate_emails=True)
    existing = next(o for o in sim.records("contacts").values() if o["Email"])
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": existing["Email"], "first_name": "Ana", "last_name": "Lima", "created_at": now, "updated_at": now}])
    monkeypatch.setattr(SalesforceWriter, "match", lambda self, entity, records: {})
    result = export(sf_client(sim), store)
    assert (result.linked, result.created, result.updated) == (1, 0, 1)
    assert sim.records("contacts")[existing["Id"]]["FirstName"] == "Ana" and sim.count("contacts") == 30


def test_batch_refused_as_a_whole_is_split_until_the_bad_records_are_alone(make_sim, store, sf_client, monkeypatch):
    """A field the org lacks fails the whole request (400); bisection saves the other records."""
    sim = make_sim()
    add_local_contacts(store, 200)
    original = Mapping.to_sobject

    def with_unknown_field(self, entity, values, **kw):
        out = original(self, entity, values, **kw)
        if values.get("email", "").startswith(("pessoa13@", "pessoa77@")):
            out["Apelido__c"] = "x"
        return out

    monkeypatch.setattr(Mapping, "to_sobject", with_unknown_field)
    result = export(sf_client(sim), store)
    assert (result.created, result.rejected) == (198, 2)
    assert_exactly_once(sim, store)
    rejects = store.open_rejects(P, "contacts", "export")
    assert {r["category"] for r in rejects} == {"INVALID_FIELD"} and all("Apelido__c" in r["message"] for r in rejects)


def test_invalid_cpf_is_rejected_before_sending(make_sim, store, sf_client):
    sim = make_sim()
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [
            {"email": "ok@exemplo.com.br", "last_name": "Ok", "document": "529.982.247-25", "created_at": now, "updated_at": now},
            {"email": "bad@exemplo.com.br", "last_name": "Bad", "document": "529.982.247-24", "created_at": now, "updated_at": now},
        ])
    result = export(sf_client(sim), store)
    assert (result.created, result.rejected) == (1, 1)
    [reject] = store.open_rejects(P, "contacts", "export")
    assert "CPF" in reject["message"] and reject["category"] == "INVALID_FIELD"
    [remote] = sim.records("contacts").values()
    assert remote["CPF_CNPJ__c"] == "52998224725"


def test_deals_are_exported_with_exact_amounts_and_close_dates(make_sim, store, sf_client):
    sim = make_sim()
    now = datetime.now(UTC)
    close = datetime(2026, 12, 31, 0, 0, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "Pedido Açaí", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "Closed Won", "close_date": close, "created_at": now, "updated_at": now},
            {"name": "Sem estágio", "amount": Decimal("10.00"), "currency": "BRL", "stage": None, "close_date": close, "created_at": now, "updated_at": now},
        ])
    result = export(sf_client(sim), store, "deals")
    assert (result.created, result.rejected) == (1, 1)
    [remote] = sim.records("deals").values()
    assert remote["Name"] == "Pedido Açaí" and Decimal(str(remote["Amount"])) == Decimal("1234567.89")
    assert remote["CloseDate"] == "2026-12-31" and remote["IsWon"] is True and remote["CurrencyIsoCode"] == "BRL"
    [reject] = store.open_rejects(P, "deals", "export")
    assert reject["category"] == "REQUIRED_FIELD_MISSING" and "StageName" in reject["message"]


def test_each_new_record_is_mapped_once_from_its_check_to_its_create(make_sim, store, sf_client, monkeypatch):
    sim = make_sim()
    add_local_contacts(store, 250)
    built = collections.Counter()
    to_sobject = Mapping.to_sobject

    def counted(self, entity, fields, **kw):
        built[entity] += 1
        return to_sobject(self, entity, fields, **kw)

    monkeypatch.setattr(Mapping, "to_sobject", counted)
    result = export(sf_client(sim), store)
    assert (result.created, built["contacts"]) == (250, 250)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 250
    assert sorted(o["LastName"] for o in remote.values())[:2] == ["Silva 0", "Silva 1"]
