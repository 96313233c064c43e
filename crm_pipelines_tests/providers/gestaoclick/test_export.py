"""Export to GestaoClick over real HTTP: single writes, matching, idempotent creates, rejects."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, update

from crm_pipelines.providers.gestaoclick.mapping import split_notes
from crm_pipelines.providers.gestaoclick.reader import GestaoClickChangeReader
from crm_pipelines.storage.schema import companies, contacts, deals
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.importer import run_import
from crm_pipelines_tests.providers.gestaoclick.conftest import gc_client
from crm_pipelines_tests.providers.gestaoclick.helpers import (
    add_contacts,
    assert_exactly_once,
    export,
)
from crm_pipelines_tests.providers.gestaoclick.test_import import (
    full_window,
    partition_window,
)

UTC = timezone.utc


@pytest.mark.slow
def test_export_of_10000_contacts_lands_each_exactly_once(make_empty_sim, sqlite_url):
    sim = make_empty_sim(limite_honoured=True)
    store = LocalStore.open(sqlite_url)
    add_contacts(store, 10_000)
    result = export(sim, store)
    assert (result.created, result.rejected, result.linked) == (10_000, 0, 0)
    assert result.api["by_kind"]["write"] == 10_000  # one POST per record, no bulk endpoint
    # an empty account: one call per tipo (PF, ES) to size the clientes, one scan of each: not 10,000 look-ups
    assert result.api["by_kind"]["match"] == 4
    remote, links = assert_exactly_once(sim, store)
    assert sim.count("contacts") == len(links) == 10_000
    by_email = {r["email"]: r for r in remote.values()}
    assert by_email["pessoa1@exemplo.com.br"]["nome"] == "João Gonçalves 1"
    assert by_email["pessoa2@exemplo.com.br"]["nome"] == "Conceição Gonçalves 2"
    assert split_notes(by_email["pessoa3@exemplo.com.br"]["observacoes"])[1]["job_title"] == "Diretora de Operações"

    again = export(sim, store)
    assert again.selected == 0 and again.api.get("calls", 0) == 0
    # importing what was exported changes nothing locally
    with gc_client(sim) as client:
        result = run_import(GestaoClickChangeReader(client), store, "gestaoclick", "contacts", partition_window(), stats=client.stats)
    assert result.outcome.unchanged == 10_000 and result.outcome.updated == 0
    store.dispose()


def test_rejected_records_go_to_the_ledger_and_the_rest_land(make_empty_sim, store):
    sim = make_empty_sim()
    add_contacts(store, 200, bad_email_every=25)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), [{"email": "cpf.ruim@exemplo.com.br", "first_name": "Ana", "document": "529.982.247-24", "created_at": now, "updated_at": now}])
    sim.faults.rate_5xx = 0.03
    result = export(sim, store)
    assert (result.created, result.rejected) == (192, 9)
    assert_exactly_once(sim, store)
    assert sim.count("contacts") == 192
    rejects = {r["record_ref"]: r for r in store.open_rejects("gestaoclick", "contacts", "export")}
    assert len(rejects) == 9
    server_side = [r for r in rejects.values() if r["category"] == "VALIDATION_ERROR"]
    assert len(server_side) == 8 and all("email" in r["message"] and "inválido" in r["message"] for r in server_side)
    [local_check] = [r for r in rejects.values() if r["category"] == "INVALID_FIELD"]
    assert "CPF" in local_check["message"] and "check digits" in local_check["message"]


@pytest.mark.parametrize("local_count", [3, 60], ids=["look-ups", "index"])
def test_existing_clientes_with_the_same_email_or_cpf_are_linked(make_empty_sim, store, local_count):
    sim = make_empty_sim(contacts=200)
    remote = sorted(sim.records("contacts").values(), key=lambda r: int(r["id"]))
    by_cpf = [r for r in remote if r["cpf"] and "." in r["cpf"]][: local_count // 3 or 1]  # stored formatted at GestaoClick
    by_email = [r for r in remote if r["email"] and r not in by_cpf][: local_count - len(by_cpf)]
    now = datetime.now(UTC)
    rows = [{"first_name": "Local", "email": None, "document": "".join(ch for ch in r["cpf"] if ch.isdigit())} for r in by_cpf]
    rows += [{"first_name": "Local", "email": r["email"].upper(), "document": None} for r in by_email]
    rows.append({"first_name": "Nova", "email": "nova.pessoa@exemplo.com.br", "document": None})
    rows = [row | {"created_at": now, "updated_at": now} for row in rows]
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)
    result = export(sim, store)
    assert (result.linked, result.created) == (local_count, 1)
    assert sim.count("contacts") == 201
    links = store.linked_records("gestaoclick", "contacts")
    assert {r["id"] for r in by_cpf + by_email} <= set(links)
    lookups = result.api["by_kind"]["match"]
    assert lookups < 40 if local_count == 60 else lookups >= 3


def test_updates_keep_what_the_mapping_does_not_cover(make_empty_sim, store):
    sim = make_empty_sim(companies=5)
    with gc_client(sim) as client:
        run_import(GestaoClickChangeReader(client), store, "gestaoclick", "companies", full_window(), stats=client.stats)
    target = sorted(sim.records("companies"), key=int)[0]
    second_address = {"cep": "01000-000", "logradouro": "Av. Paulista", "numero": "1000", "nome_cidade": "São Paulo", "pais": "Brasil"}
    stored = sim.set_fields("companies", target, observacoes="Cliente desde 2019. Não ligar às sextas.",
                            enderecos=sim.clientes[int(target)]["enderecos"] + [second_address])
    with gc_client(sim) as client:
        run_import(GestaoClickChangeReader(client), store, "gestaoclick", "companies", partition_window(), stats=client.stats)
    local_id = store.linked_records("gestaoclick", "companies")[target]["id"]
    with store.engine.begin() as conn:
        conn.execute(update(companies).where(companies.c.id == local_id).values(city="Niterói", industry="Logística", domain="acai-norte.com.br"))
    result = export(sim, store, "companies")
    assert (result.updated, result.rejected) == (1, 0)
    after = sim.records("companies")[target]
    text, tag = split_notes(after["observacoes"])
    assert text == "Cliente desde 2019. Não ligar às sextas."
    assert (tag["industry"], tag["domain"]) == ("Logística", "acai-norte.com.br")
    assert after["enderecos"][0]["endereco"]["nome_cidade"] == "Niterói"
    assert after["enderecos"][0]["endereco"]["logradouro"] == stored["enderecos"][0]["logradouro"]
    assert after["enderecos"][1]["endereco"]["logradouro"] == "Av. Paulista"
    assert after["razao_social"] == stored["razao_social"]
    # the round trip is stable: the next import finds nothing new
    with gc_client(sim) as client:
        again = run_import(GestaoClickChangeReader(client), store, "gestaoclick", "companies", partition_window(), stats=client.stats)
    assert again.outcome.updated == 0 and again.outcome.unchanged == 5


def test_deals_become_vendas(make_empty_sim, store):
    sim = make_empty_sim(contacts=3)
    cliente_id = sorted(sim.records("contacts"), key=int)[0]
    now = datetime.now(UTC)
    close = datetime(2026, 12, 31, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [
            {"name": "Pedido Açaí", "amount": Decimal("1234567.89"), "currency": "BRL", "stage": "Concretizada", "pipeline": "varejo", "close_date": close, "created_at": now, "updated_at": now},
            {"name": "Em dólar", "amount": Decimal("10.00"), "currency": "USD", "stage": None, "pipeline": None, "close_date": close, "created_at": now, "updated_at": now},
        ])
    result = export(sim, store, "deals", writer_kw={"deal_cliente_id": cliente_id})
    assert (result.created, result.rejected) == (1, 1)
    [venda] = sim.records("deals").values()
    assert Decimal(venda["valor_total"]) == Decimal("1234567.89")
    assert (venda["nome_situacao"], venda["situacao_id"], venda["data"], venda["cliente_id"]) == ("Concretizada", "3153", "2026-12-31", cliente_id)
    assert split_notes(venda["observacoes"]) == ("Pedido Açaí", {"key": "deals:1", "pipeline": "varejo"})
    [reject] = store.open_rejects("gestaoclick", "deals", "export")
    assert "BRL" in reject["message"]

    # Without a cliente_id GestaoClick refuses the venda; the message names the field.
    with store.engine.begin() as conn:
        conn.execute(insert(deals), [{"name": "Sem cliente", "amount": Decimal("5.00"), "currency": "BRL", "created_at": now, "updated_at": now}])
    result = export(sim, store, "deals")
    assert result.created == 0
    messages = {r["record_ref"]: r["message"] for r in store.open_rejects("gestaoclick", "deals", "export")}
    assert "cliente_id" in messages["3"]


def test_only_changed_records_are_sent_again(make_empty_sim, store):
    sim = make_empty_sim()
    add_contacts(store, 40)
    export(sim, store)
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id <= 4).values(phone="(21) 98888-7777"))
    result = export(sim, store)
    assert (result.selected, result.updated, result.created) == (4, 4, 0)
    assert result.api["by_kind"] == {"read": 4, "write": 4}  # GET then PUT per record
    assert sum(1 for r in sim.records("contacts").values() if r["telefone"] == "+5521988887777") == 4
