"""Export to Bling over real HTTP: exactly once, re-runs, rejects, crash recovery, linking by CNPJ/e-mail."""

from __future__ import annotations

import collections
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert

from crm_pipelines.providers.bling.writer import BlingWriter
from crm_pipelines.storage.schema import companies, contacts, deals
from crm_pipelines.sync.exporter import export_entity

UTC = timezone.utc


def add_rows(store, table, rows):
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(table), [r | {"created_at": now, "updated_at": now} for r in rows])


def export(client, store, entity="contacts"):
    return export_entity(BlingWriter(client), store, "bling", entity, stats=client.stats)


def assert_exactly_once(sim, store, entity="contacts"):
    key_field = "numeroLoja" if entity == "deals" else "codigo"
    remote = sim.records(entity)
    keys = collections.Counter(b[key_field] for b in remote.values() if b[key_field])
    assert not {k: n for k, n in keys.items() if n > 1}
    links = store.linked_records("bling", entity)
    assert set(links) <= set(remote)
    return remote, links


@pytest.mark.slow
def test_export_of_10000_contacts_lands_each_exactly_once_and_a_rerun_sends_nothing(start_bling_sim, client_for, sqlite_url):
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open(sqlite_url)
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    add_rows(store, contacts, [{"first_name": "João" if i % 2 else "Conceição", "last_name": f"Antônio {i}", "phone": f"(11) 3000-{i:04d}"} for i in range(10_000)])
    client = client_for(sim)
    result = export(client, store)
    assert result.created == 10_000 and result.rejected == 0
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == 10_000 and len(links) == 10_000
    assert {b["nome"] for b in remote.values()} >= {"João Antônio 1", "Conceição Antônio 0"}
    again = export(client, store)
    assert again.created == again.updated == 0 and sim.count("contacts") == 10_000
    store.dispose()


def test_rejected_records_go_to_the_ledger_while_the_rest_land(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    add_rows(store, contacts, [{"first_name": "Ana", "last_name": str(i), "document": "123.456.789-00" if i == 3 else None} for i in range(10)])
    add_rows(store, deals, [{"name": f"Pedido São Paulo {i}", "amount": -5 if i == 1 else 100 + i, "currency": "BRL"} for i in range(5)])
    client = client_for(sim)
    c = export(client, store)
    d = export(client, store, "deals")
    assert (c.created, c.rejected, d.created, d.rejected) == (9, 1, 4, 1)
    ledger = {r["entity"]: r["message"] for r in store.open_rejects("bling", None, "export")}
    assert "CPF 123.456.789-00 has invalid check digits" in ledger["contacts"]
    assert "valor" in ledger["deals"]  # Bling's per-field message reaches the ledger
    assert_exactly_once(sim, store, "deals")


def test_existing_company_with_the_same_cnpj_is_linked_not_duplicated(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    existing = sim.insert_contato({"nome": "Conceição Alimentos Ltda", "tipo": "J", "numeroDocumento": "11.222.333/0001-81"})
    person = sim.insert_contato({"nome": "Antônio Silva", "tipo": "F", "email": "antonio@exemplo.com.br"})
    add_rows(store, companies, [{"name": "Conceição Alimentos", "document": "11222333000181", "city": "São Paulo"}, {"name": "Outra", "document": None, "city": None}])
    add_rows(store, contacts, [{"first_name": "Antônio", "last_name": "Silva", "email": "ANTONIO@exemplo.com.br"}])
    client = client_for(sim)
    result = export(client, store, "companies")
    assert (result.linked, result.created) == (1, 1)
    assert sim.count("companies") == 2
    assert store.linked_records("bling", "companies")[str(existing.id)]["name"] == "Conceição Alimentos"
    assert sim.records("companies")[str(existing.id)]["endereco"]["geral"]["municipio"] == "São Paulo"
    contact = export(client, store, "contacts")
    assert (contact.linked, contact.created) == (1, 0) and str(person.id) in store.linked_records("bling", "contacts")


def test_a_crash_between_write_and_save_does_not_duplicate(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    add_rows(store, contacts, [{"first_name": "Simão", "last_name": str(i)} for i in range(3)])
    add_rows(store, deals, [{"name": "Renovação", "amount": 10, "currency": "BRL"}])
    local = sorted(r.local_id for r in store.export_candidates("bling", "contacts"))
    deal_id = next(iter(store.export_candidates("bling", "deals"))).local_id
    # The previous run created two records, then died before saving their ids.
    store.write_intents("bling", "contacts", [(i, f"contacts:{i}", "x") for i in local[:2]])
    store.write_intents("bling", "deals", [(deal_id, f"deals:{deal_id}", "x")])
    for i in local[:2]:
        sim.insert_contato({"nome": f"Simão {i}", "tipo": "F", "codigo": f"contacts:{i}"})
    sim.insert_pedido({"contato": {"id": sim.consumidor_final_id}, "numeroLoja": f"deals:{deal_id}", "itens": [{"valor": 10, "quantidade": 1}]})
    client = client_for(sim)
    result = export(client, store)
    assert result.recovered == 2 and result.created == 1
    assert sim.count("contacts") == 3
    assert_exactly_once(sim, store)
    d = export(client, store, "deals")
    assert d.recovered == 1 and d.created == 0 and sim.count("deals") == 1


def test_updates_keep_fields_this_project_does_not_manage(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    add_rows(store, contacts, [{"first_name": "Júlia", "last_name": "Brandão", "email": "julia@exemplo.com.br"}])
    client = client_for(sim)
    export(client, store)
    (remote_id, body), = sim.records("contacts").items()
    sim.modify("contacts", ids=[remote_id], changes={"celular": "(48) 99999-1111"})
    with store.engine.begin() as conn:
        conn.execute(contacts.update().values(phone="(48) 3222-0000", updated_at=datetime.now(UTC)))
    assert export(client, store).updated == 1
    after = sim.records("contacts")[remote_id]
    assert after["telefone"] == "+554832220000" and after["celular"] == "(48) 99999-1111" and after["codigo"] == body["codigo"]



def test_bling_key_lookup_reads_every_substring_hit_and_compares_exactly(start_bling_sim, client_for):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    client = client_for(sim)
    writer = BlingWriter(client)
    ids = {}
    for n in [*range(10, 200), 1]:  # contacts:1 is a prefix of contacts:10 ... contacts:199, created last
        ids[n] = client.create("contacts", {"nome": f"Pessoa {n}", "tipo": "F", "situacao": "A", "codigo": f"contacts:{n}"})
    assert writer.find_by_keys("contacts", ["contacts:1", "contacts:19", "contacts:2"]) == {"contacts:1": str(ids[1]), "contacts:19": str(ids[19])}


def test_matching_a_batch_reads_the_account_once_instead_of_once_per_record(start_bling_sim, client_for, store):
    from crm_pipelines.simulator.datagen import cpf_check_digits

    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    cpfs = [base + cpf_check_digits(base) for base in (f"{100_000_000 + 7919 * i:09d}" for i in range(216))]
    existing = [sim.insert_contato({"nome": f"Cliente {i}", "tipo": "F", "numeroDocumento": cpfs[i]}) for i in range(150)]
    # 66 local contacts, as in the report that found 131 calls: 20 already at Bling (same CPF), 46 new.
    add_rows(store, contacts, [{"first_name": "Cliente", "last_name": str(i), "email": f"cliente{i}@exemplo.com.br", "document": cpfs[130 + i]} for i in range(66)])
    client = client_for(sim)
    result = export(client, store)
    assert (result.linked, result.created, result.rejected) == (20, 46, 0)
    links = store.linked_records("bling", "contacts")
    assert {str(c.id) for c in existing[130:]} <= set(links)
    # Two list pages hold the whole account; only the e-mails of the 46 new ones are searched one by one
    # (Bling's list summaries carry no e-mail): 48 look-ups, where one per record per key made 112.
    assert client.stats.by_kind["list"] == 2 + 46
    assert client.stats.by_kind["write"] == 66  # 46 creates, and the 20 linked ones updated with the local values
