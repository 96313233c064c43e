"""The GestaoClick simulator over raw HTTP: auth, paging envelope, filters, limits, errors, switches."""

from __future__ import annotations

import time

import pytest

from crm_pipelines_tests.providers.gestaoclick.conftest import ACCESS, SECRET


def test_both_tokens_are_required(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim()
    for access, secret in ((None, SECRET), (ACCESS, None), (ACCESS, "wrong"), ("wrong", SECRET)):
        response = http_for(sim, access, secret).get("/clientes")
        assert response.status_code == 401
        assert response.json() == {"code": 401, "status": "error", "data": {"mensagem": "Token de acesso inválido ou não informado"}}
    assert http_for(sim).get("/clientes").status_code == 200


def test_pages_follow_proxima_pagina_in_the_envelope(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=45, companies=0)
    api = http_for(sim)
    ids = []
    pagina = 1
    while pagina:
        body = api.get("/clientes", params={"pagina": pagina}).json()
        assert (body["code"], body["status"]) == (200, "success")
        meta = body["meta"]
        assert meta["total_registros"] == "45" and meta["total_paginas"] == "3" and meta["limite_por_pagina"] == "20"
        assert meta["pagina_atual"] == str(pagina) and meta["total_registros_pagina"] == str(len(body["data"]))
        ids += [r["id"] for r in body["data"]]
        pagina = int(meta["proxima_pagina"]) if meta["proxima_pagina"] else None
        if pagina:
            assert meta["proxima_url"].endswith(f"pagina={pagina}")
    assert len(ids) == len(set(ids)) == 45
    assert all(isinstance(i, str) and i.isdigit() for i in ids)  # ids and numbers are strings
    assert body["meta"]["proxima_url"] is None


def test_limite_is_ignored_by_default_and_honoured_by_switch(start_gestaoclick_sim, http_for):
    ignored = start_gestaoclick_sim(contacts=150, companies=0)
    assert len(http_for(ignored).get("/clientes", params={"limite": 100}).json()["data"]) == 20
    honoured = start_gestaoclick_sim(contacts=150, companies=0, limite_honoured=True, limite_max=50)
    body = http_for(honoured).get("/clientes", params={"limite": 500}).json()  # clamped
    assert len(body["data"]) == 50 and body["meta"]["limite_por_pagina"] == "50"
    rejecting = start_gestaoclick_sim(contacts=10, companies=0, limite_honoured=True, limite_max=50, limite_oversize="reject")
    response = http_for(rejecting).get("/clientes", params={"limite": 51})
    assert response.status_code == 400 and "50" in response.json()["data"]["mensagem"]


def test_meta_variants_and_typed_numbers(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=30, companies=0, meta_page_count_key="total_da_pagina", meta_total_paginas=False, numbers_as_strings=False)
    body = http_for(sim).get("/clientes").json()
    assert "total_paginas" not in body["meta"] and "total_registros_pagina" not in body["meta"]
    assert body["meta"]["total_da_pagina"] == 20 and body["meta"]["proxima_pagina"] == 2
    assert isinstance(body["data"][0]["id"], int)


def test_nested_arrays_use_wrapper_objects(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim()
    cliente = http_for(sim).get("/clientes").json()["data"][0]
    assert set(cliente["enderecos"][0]) == {"endereco"} and "nome_cidade" in cliente["enderecos"][0]["endereco"]
    venda = http_for(sim).get("/vendas").json()["data"][0]
    assert set(venda["produtos"][0]) == {"produto"} and set(venda["parcelas"][0]) == {"parcela"}
    assert isinstance(venda["valor_total"], str)


def test_filters_tipo_pessoa_document_email_and_sale_dates(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=40, companies=12, limite_honoured=True, rate_limits_enabled=False)
    api = http_for(sim)
    pj = api.get("/clientes", params={"tipo_pessoa": "PJ", "limite": 100}).json()
    assert pj["meta"]["total_registros"] == "12" and {r["tipo_pessoa"] for r in pj["data"]} == {"PJ"}
    person = next(r for r in sim.records("contacts").values() if r["cpf"] and "." in r["cpf"])
    digits = "".join(ch for ch in person["cpf"] if ch.isdigit())
    found = api.get("/clientes", params={"cpf_cnpj": digits}).json()["data"]
    assert [r["id"] for r in found] == [person["id"]]
    found = api.get("/clientes", params={"email": person["email"].upper()}).json()["data"]
    assert [r["id"] for r in found] == [person["id"]]
    dates = sorted(v["data"] for v in sim.records("deals").values())
    middle = dates[len(dates) // 2]
    windowed = api.get("/vendas", params={"data_inicio": middle, "data_fim": middle, "limite": 100}).json()["data"]
    assert windowed and all(v["data"] == middle for v in windowed)

    ignoring = start_gestaoclick_sim(contacts=5, companies=5, honour_tipo_pessoa_filter=False)
    assert http_for(ignoring).get("/clientes", params={"tipo_pessoa": "PJ"}).json()["meta"]["total_registros"] == "10"


def test_sorting_by_id_descending(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=30, companies=0)
    ids = [int(r["id"]) for r in http_for(sim).get("/clientes", params={"ordenacao": "id", "direcao": "desc"}).json()["data"]]
    assert ids == sorted(ids, reverse=True) and ids[0] == max(int(i) for i in sim.records("contacts"))


def test_per_second_limit_answers_429_in_the_envelope(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=5, companies=0)
    api = http_for(sim)
    statuses = [api.get("/clientes").status_code for _ in range(6)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    limited = api.get("/clientes")
    assert limited.status_code == 429
    assert limited.json() == {"code": 429, "status": "error", "data": {"mensagem": "Limite de requisições por segundo excedido"}}
    assert "Retry-After" not in limited.headers
    assert sim.stats["rate_limited"]["SECONDLY"] >= 2
    time.sleep(1.05)
    assert api.get("/clientes").status_code == 200


def test_retry_after_and_error_style_switches(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=1, companies=0, per_second=1, retry_after_on_429=True, error_style="message")
    api = http_for(sim)
    api.get("/clientes")
    limited = api.get("/clientes")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json() == {"message": "Limite de requisições por segundo excedido"}
    empty = start_gestaoclick_sim(contacts=1, companies=0, error_style="empty")
    response = http_for(empty, secret="nope").get("/clientes")
    assert response.status_code == 401 and response.content == b""


def test_daily_limit(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(contacts=1, companies=0, daily_limit=2, per_second=100)
    api = http_for(sim)
    assert [api.get("/clientes").status_code for _ in range(2)] == [200, 200]
    response = api.get("/clientes")
    assert response.status_code == 429 and "diário" in response.json()["data"]["mensagem"]
    sim.reset_rate_limits()
    assert api.get("/clientes").status_code == 200


def test_validation_errors_name_each_field(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(rate_limits_enabled=False)
    api = http_for(sim)
    response = api.post("/clientes", json={"tipo_pessoa": "PF", "nome": "", "cpf": "529.982.247-24", "email": "x@y", "ativo": "1"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 422 and body["status"] == "error"
    assert set(body["data"]["erros"]) == {"nome", "cpf", "email"}
    assert "CPF" in body["data"]["erros"]["cpf"][0]
    created = api.post("/clientes", json={"tipo_pessoa": "PF", "nome": "João da Conceição", "cpf": "52998224725", "email": "joao@exemplo.com.br", "ativo": "1",
                                          "enderecos": [{"endereco": {"nome_cidade": "São Paulo", "pais": "Brasil"}}]})
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    assert data["nome"] == "João da Conceição" and data["enderecos"][0]["endereco"]["nome_cidade"] == "São Paulo"
    venda = api.post("/vendas", json={"data": "2025-01-10"})
    assert venda.status_code == 422 and {"cliente_id", "produtos"} <= set(venda.json()["data"]["erros"])
    relaxed = start_gestaoclick_sim(rate_limits_enabled=False, vendas_require_cliente=False, vendas_require_produtos=False)
    assert http_for(relaxed).post("/vendas", json={"data": "2025-01-10", "valor_total": "10.5"}).json()["data"]["valor_total"] == "10.50"


def test_unique_documents_switch(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(rate_limits_enabled=False, unique_documents=True)
    api = http_for(sim)
    body = {"tipo_pessoa": "PF", "nome": "Ana", "cpf": "52998224725", "ativo": "1"}
    assert api.post("/clientes", json=body).status_code == 200
    again = api.post("/clientes", json=body)
    assert again.status_code == 422 and "cpf" in again.json()["data"]["erros"]


def test_update_delete_and_404(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(rate_limits_enabled=False)
    api = http_for(sim)
    record_id = next(iter(sim.records("companies")))
    updated = api.put(f"/clientes/{record_id}", json={"telefone": "(11) 4000-1234"})
    assert updated.status_code == 200 and updated.json()["data"]["telefone"] == "(11) 4000-1234"
    assert api.delete(f"/clientes/{record_id}").status_code == 200
    missing = api.get(f"/clientes/{record_id}")
    assert missing.status_code == 404 and missing.json()["data"]["mensagem"] == "Registro não encontrado"


def test_timestamps_and_observacoes_switches(start_gestaoclick_sim, http_for):
    with_stamps = start_gestaoclick_sim(record_timestamps=True, clientes_observacoes=False)
    cliente = http_for(with_stamps).get("/clientes").json()["data"][0]
    assert len(cliente["modificado_em"]) == 19 and cliente["modificado_em"][10] == " "
    assert "observacoes" not in cliente
    plain = start_gestaoclick_sim()
    assert "modificado_em" not in http_for(plain).get("/clientes").json()["data"][0]


def test_injected_faults_use_the_envelope(start_gestaoclick_sim, http_for):
    sim = start_gestaoclick_sim(rate_limits_enabled=False)
    sim.fail_next(1, 503)
    response = http_for(sim).get("/vendas")
    assert response.status_code == 503 and response.json()["status"] == "error"


@pytest.mark.parametrize("entity", ["contacts", "companies", "deals"])
def test_python_side_mutations(start_gestaoclick_sim, entity):
    sim = start_gestaoclick_sim()
    before = sim.count(entity)
    created = sim.create(entity, 3)
    gone = sim.delete(entity, 2)
    changed = sim.modify(entity, 2)
    assert sim.count(entity) == before + 3 - 2
    assert not set(gone) & set(sim.records(entity)) and set(changed) <= set(sim.records(entity))
    assert set(created) - set(gone) <= set(sim.records(entity))


def test_command_line_and_admin_mutations(start_gestaoclick_sim):
    import argparse

    import httpx

    from crm_pipelines.providers.gestaoclick.simulator import GestaoClickSimulator
    from crm_pipelines.simulator.__main__ import add_common_arguments, fault_config_from_args, load_simulator_class

    assert load_simulator_class("gestaoclick") is GestaoClickSimulator
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    GestaoClickSimulator.add_cli_arguments(parser)
    args = parser.parse_args(["--contacts", "5", "--companies", "2", "--deals", "3", "--token", "a", "--secret", "b", "--limite-honoured", "--daily-limit", "0"])
    args.faults = fault_config_from_args(args)
    sim = GestaoClickSimulator.from_cli_args(args)
    assert (sim.count("contacts"), sim.count("companies"), sim.count("deals")) == (5, 2, 3)
    assert sim.config.credentials == (("a", "b"),) and sim.config.limite_honoured and sim.config.daily_limit is None

    running = start_gestaoclick_sim(contacts=10, companies=0, deals=0)
    body = httpx.post(f"{running.base_url}/_simulator/mutate", json={"entity": "contacts", "create": 2, "delete": 3}).json()
    assert len(body["created"]) == 2 and len(body["deleted"]) == 3 and running.count("contacts") == 9
    health = httpx.get(f"{running.base_url}/_simulator/health").json()
    assert health["records"]["contacts"] == 9 and health["per_second"] == 3
