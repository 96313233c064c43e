"""Tolerant reading of GestaoClick shapes: meta variants, error bodies, the observacoes tag, values."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from crm_pipelines.core.model import RecordError
from crm_pipelines.providers.gestaoclick.api import describe_error, field_errors, next_page
from crm_pipelines.providers.gestaoclick.mapping import join_notes, parse_timestamp, split_notes, to_payload, to_remote_record


@pytest.mark.parametrize(
    ("meta", "current", "received", "expected"),
    [
        ({"proxima_pagina": "3", "total_paginas": "9"}, 2, 20, 3),
        ({"proxima_pagina": None, "total_paginas": "9"}, 2, 20, None),  # proxima_pagina decides
        ({"total_paginas": 4}, 3, 20, 4),
        ({"total_paginas": "4"}, 4, 20, None),
        ({"total_da_pagina": "20"}, 1, 20, 2),  # neither key: go on until an empty page
        ({}, 5, 0, None),
        ({"proxima_pagina": "2"}, 2, 20, None),  # never loops on the same page
    ],
)
def test_next_page_reads_every_meta_variant(meta, current, received, expected):
    assert next_page(meta, current, received) == expected


def test_error_bodies_of_every_shape_give_a_message():
    envelope = {"code": 422, "status": "error", "data": {"mensagem": "Erro de validação", "erros": {"cpf": ["O CPF informado é inválido."]}}}
    assert describe_error(envelope) == "Erro de validação - cpf: O CPF informado é inválido."
    assert field_errors({"code": 422, "status": "error", "data": {"email": "E-mail inválido"}}) == {"email": ["E-mail inválido"]}
    assert describe_error({"message": "Too many"}) == "Too many"
    assert describe_error({"status": "error", "data": "Token inválido"}) == "Token inválido"
    assert describe_error({"errors": [{"campo": "nome", "mensagem": "obrigatório"}]}) == "nome: obrigatório"
    assert describe_error(None) is None


def test_observacoes_tag_round_trip_keeps_the_users_text():
    notes = join_notes("Cliente desde 2019.\nNão ligar às sextas.", {"key": "contacts:7", "job_title": "Sócia", "company_name": None})
    assert notes.endswith('[crm_pipelines] {"job_title": "Sócia", "key": "contacts:7"}')
    assert split_notes(notes) == ("Cliente desde 2019.\nNão ligar às sextas.", {"key": "contacts:7", "job_title": "Sócia"})
    assert split_notes("[crm_pipelines] {not json") == ("[crm_pipelines] {not json", {})
    assert split_notes(None) == (None, {})


def test_cliente_values_are_normalized():
    record = {"id": 320, "tipo_pessoa": "PF", "nome": " João  da Conceição ", "cpf": "529.982.247-25", "email": " Joao@Exemplo.COM.br ",
              "telefone": "", "celular": "(11) 99999-0000", "modificado_em": "2025-01-15 10:22:33",
              "observacoes": '[crm_pipelines] {"job_title": "Gerente de Compras"}'}
    mapped = to_remote_record("contacts", record)
    assert mapped.external_id == "320"
    assert mapped.fields == {"email": "joao@exemplo.com.br", "first_name": "João", "last_name": "da Conceição", "phone": "(11) 99999-0000",
                             "document": "52998224725", "company_name": None, "job_title": "Gerente de Compras", "lifecycle_stage": None}
    assert mapped.updated_at == datetime(2025, 1, 15, 13, 22, 33, tzinfo=timezone.utc)  # São Paulo is UTC-3
    bad = to_remote_record("companies", {"id": "9", "tipo_pessoa": "PJ", "nome": "Açaí Norte", "cnpj": "11.222.333/0001-80"})
    assert isinstance(bad, RecordError) and "CNPJ" in bad.message and "cnpj" in bad.message


def test_venda_values_and_payload():
    mapped = to_remote_record("deals", {"id": "77", "valor_total": "140,5", "data": "2025-02-03", "nome_situacao": "Em aberto", "observacoes": "Pedido São João"})
    assert mapped.fields["amount"] == Decimal("140.50") and mapped.fields["currency"] == "BRL"
    assert mapped.fields["close_date"] == datetime(2025, 2, 3, tzinfo=timezone.utc) and mapped.fields["name"] == "Pedido São João"
    payload = to_payload("deals", {"name": "Pedido", "amount": Decimal("10.00"), "currency": "BRL", "close_date": None}, key="deals:5")
    assert payload["produtos"] == [{"produto": {"nome_produto": "Pedido", "quantidade": "1", "valor_venda": "10.00", "valor_desconto": "0.00"}}]
    assert split_notes(payload["observacoes"])[1] == {"key": "deals:5"} and len(payload["data"]) == 10
    with pytest.raises(ValueError, match="BRL"):
        to_payload("deals", {"name": "x", "amount": Decimal("1"), "currency": "USD"}, key=None)


def test_documents_leave_as_digits():
    payload = to_payload("companies", {"name": "Conceição Ltda", "document": "11.222.333/0001-81", "city": "São Paulo", "country": "Brasil"}, key="companies:1")
    assert payload["cnpj"] == "11222333000181" and payload["tipo_pessoa"] == "PJ" and payload["ativo"] == "1"
    assert payload["enderecos"] == [{"endereco": {"nome_cidade": "São Paulo", "pais": "Brasil"}}]
    assert parse_timestamp("2025-01-15T10:22:33Z") == datetime(2025, 1, 15, 10, 22, 33, tzinfo=timezone.utc)


def test_multi_line_sale_notes_stay_as_written_when_the_name_did_not_change():
    current = {"observacoes": "Entrega em São Paulo\nPagar no boleto\n[crm_pipelines] {\"key\": \"deals:3\"}", "valor_total": "10.00", "produtos": [{"produto": {}}]}
    mapped = to_remote_record("deals", dict(current, id="5"))
    assert mapped.fields["name"] == "Entrega em São Paulo Pagar no boleto"
    payload = to_payload("deals", mapped.fields, key=None, current=current)
    assert payload["observacoes"] == current["observacoes"] and "produtos" not in payload
    renamed = to_payload("deals", dict(mapped.fields, name="Novo nome"), key=None, current=current)
    assert split_notes(renamed["observacoes"]) == ("Novo nome", {"key": "deals:3"})
