"""Linking only links: a local record found by e-mail or CPF keeps what it owns, field by field.

A HubSpot contact found by its e-mail and a Bling contact found by its CPF meet a local record
holding values of its own. Linking ties them; then every field the provider holds is settled by
the integration's conflict strategy, and the fields it does not hold are never written.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from crm_pipelines.core.model import FIELDS, RemoteRecord
from crm_pipelines.providers.registry import held_fields
from crm_pipelines.storage.conflicts import ConflictLedger
from crm_pipelines.storage.schema import contacts

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
CPF = "52998224725"

#: provider, the local record before its import, the provider's version, fields the two dispute.
CASES = {
    "email": (
        "hubspot",
        {"email": "ana@exemplo.com.br", "first_name": "Ana Local", "phone": "+5511987654321", "job_title": "Gerente", "company_name": "Padaria São João"},
        {"email": "ana@exemplo.com.br", "first_name": "Ana Remota", "last_name": "Souza", "phone": None, "job_title": None,
         "company_name": "Padaria São João", "lifecycle_stage": "lead"},
        ("first_name",),
    ),
    "cpf": (
        "bling",
        {"email": "ana@loja.com.br", "first_name": "Ana Local", "phone": "+5511987654321", "job_title": "Gerente", "company_name": "Padaria São João",
         "document": CPF},
        {"email": "ana.souza@bling.com.br", "first_name": "Ana Remota", "last_name": "Souza", "phone": None, "document": CPF},
        ("email", "first_name"),
    ),
}


def local_fields(store, local_id) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.id == local_id)).one()
    return {name: getattr(row, name) for name in FIELDS["contacts"]}


def link_one(store, how: str, *, local_at=T0, remote_at=T0 + timedelta(minutes=1)):
    """The local record, then the provider's import that finds it; returns what each side had and the outcome."""
    provider, local, remote, _ = CASES[how]
    with store.engine.begin() as conn:
        local_id = conn.execute(insert(contacts).values(**local, created_at=local_at, updated_at=local_at).returning(contacts.c.id)).scalar_one()
    before = local_fields(store, local_id)
    outcome = store.apply_remote(provider, "contacts", [RemoteRecord("900", remote_at, remote)])
    assert (outcome.linked, outcome.created) == (1, 0)
    assert store.linked_records(provider, "contacts")["900"]["id"] == local_id
    return local_id, before, outcome


def expected(how: str, before: dict, winner: str) -> dict:
    """Every local value kept, blanks filled by the provider, disputed fields from ``winner``."""
    provider, _, remote, disputed = CASES[how]
    held = held_fields(provider, "contacts")
    out = dict(before)
    for name in held:
        if out[name] is None and remote.get(name) is not None:
            out[name] = remote[name]
    if winner == "provider":
        out.update({name: remote[name] for name in disputed})
    return out


@pytest.mark.parametrize("how", ["email", "cpf"])
def test_local_wins_leaves_every_local_value_as_it_was(open_store, how):
    store = open_store("local_wins")
    local_id, before, outcome = link_one(store, how)
    after = local_fields(store, local_id)
    assert {name: after[name] for name, value in before.items() if value is not None} == {name: v for name, v in before.items() if v is not None}
    assert after == expected(how, before, "local")
    assert outcome.conflicts == 1
    [decision] = ConflictLedger(store.engine).list(include_resolved=True)
    assert (decision["decision"], decision["resolved_by"]) == ("local", "auto:local_wins")
    # The local values the provider lacks or disputes go out with the next export.
    provider = CASES[how][0]
    [change] = list(store.export_candidates(provider, "contacts"))
    assert change.local_id == local_id and change.fields["first_name"] == "Ana Local"


@pytest.mark.parametrize("how", ["email", "cpf"])
def test_provider_wins_takes_the_disputed_fields_and_erases_nothing(open_store, how):
    store = open_store("provider_wins")
    local_id, before, outcome = link_one(store, how)
    after = local_fields(store, local_id)
    assert after == expected(how, before, "provider")
    assert (after["first_name"], after["job_title"], after["phone"], after["company_name"]) == ("Ana Remota", "Gerente", "+5511987654321", "Padaria São João")
    [decision] = ConflictLedger(store.engine).list(include_resolved=True)
    assert decision["decision"] == "provider"


@pytest.mark.parametrize("how", ["email", "cpf"])
@pytest.mark.parametrize("local_minutes, remote_minutes, winner", [(10, 5, "local"), (5, 10, "provider")])
def test_last_modified_takes_the_newer_side(open_store, how, local_minutes, remote_minutes, winner):
    store = open_store("last_modified")
    local_id, before, _ = link_one(store, how, local_at=T0 + timedelta(minutes=local_minutes), remote_at=T0 + timedelta(minutes=remote_minutes))
    assert local_fields(store, local_id) == expected(how, before, winner)


@pytest.mark.parametrize("how", ["email", "cpf"])
def test_manual_keeps_local_and_waits_for_someone(open_store, how):
    store = open_store("manual")
    provider, _, remote, disputed = CASES[how]
    local_id, before, outcome = link_one(store, how)
    assert local_fields(store, local_id) == expected(how, before, "local")
    assert outcome.conflicts == 1
    assert list(store.export_candidates(provider, "contacts")) == []  # held back until resolved
    ledger = ConflictLedger(store.engine)
    [waiting] = ledger.list()
    assert waiting["strategy"] == "manual" and waiting["decision"] is None
    assert all(waiting["remote_fields"][name] == remote[name] for name in disputed)

    ledger.resolve(waiting["id"], "provider")
    # Taking the provider's side takes its disputed values; nothing else is erased.
    assert local_fields(store, local_id) == expected(how, before, "provider")


def test_an_integration_setting_overrides_the_policy(open_store):
    store = open_store("provider_wins")
    integration = store.integrations.default_for("hubspot")
    store.integrations.update(integration, settings={"conflict_strategies": {"contacts": "local_wins"}})
    local_id, before, _ = link_one(store, "email")
    assert local_fields(store, local_id)["first_name"] == "Ana Local"


def test_same_values_link_without_a_conflict(open_store):
    store = open_store("manual")
    with store.engine.begin() as conn:
        conn.execute(insert(contacts).values(email="bia@x.com", first_name="Bia", job_title="CEO", created_at=T0, updated_at=T0))
    outcome = store.apply_remote("hubspot", "contacts", [RemoteRecord("1", T0, {"email": "bia@x.com", "first_name": "Bia", "last_name": "Lima"})])
    assert (outcome.linked, outcome.conflicts) == (1, 0)
    [row] = store.linked_records("hubspot", "contacts").values()
    assert (row["first_name"], row["last_name"], row["job_title"]) == ("Bia", "Lima", "CEO")


def test_a_phone_written_another_way_is_the_same_phone(open_store):
    store = open_store("manual")
    with store.engine.begin() as conn:
        conn.execute(insert(contacts).values(email="caio@x.com", phone="(11) 98765-4321", created_at=T0, updated_at=T0))
    outcome = store.apply_remote("hubspot", "contacts", [RemoteRecord("2", T0, {"email": "caio@x.com", "phone": "+5511987654321"})])
    assert (outcome.linked, outcome.conflicts) == (1, 0)
    [row] = store.linked_records("hubspot", "contacts").values()
    assert row["phone"] == "(11) 98765-4321"  # kept as written; it is the provider's number
    assert list(store.export_candidates("hubspot", "contacts")) == []
