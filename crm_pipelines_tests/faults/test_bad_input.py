"""Bad input, both ways: rejected with a reason in the ledger or stored safely; the rest of the batch proceeds."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, inspect, select

from crm_pipelines.providers.registry import PROVIDERS, held_fields
from crm_pipelines.storage.schema import ENTITY_TABLES
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now
from crm_pipelines_tests.faults.harness import local_rows, provider_env, reconcile_export, reconcile_import, remote_keys, start

SQL = "Robert'); DROP TABLE contacts;--"
HTML = "<script>alert('x')</script><b>Ana</b>"
BAD_CONTACTS = {
    "invalid e-mail": {"email": "pessoa-at-nowhere", "first_name": "Inválida"},
    "invalid CPF": {"email": "cpf.errado@exemplo.com.br", "first_name": "Cpf", "document": "529.982.247-24"},
    "overlong": {"email": "longo@exemplo.com.br", "first_name": "A" * 5000, "last_name": "B" * 300},
    "control characters": {"email": "controle@exemplo.com.br", "first_name": "Jo\x00ão\x1b[31m", "last_name": "Silva\x07"},
    "looks like SQL": {"email": "sql@exemplo.com.br", "first_name": "Bobby", "last_name": SQL},
    "looks like HTML": {"email": "html@exemplo.com.br", "first_name": HTML, "job_title": HTML},
    "missing name and e-mail": {"phone": "+55 11 3333-4444"},
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_local_records_are_rejected_or_sent_safely_and_the_rest_lands(provider, sqlite_url):
    sim = start(provider, (0, 0, 0))
    store = LocalStore.open(sqlite_url)
    try:
        now = datetime.now(timezone.utc)
        good = local_rows("contacts", 4, "bom")
        with store.engine.begin() as conn:
            blank = dict.fromkeys(("email", "first_name", "last_name", "phone", "job_title", "document"))
            rows = good[:2] + [blank | row | {"created_at": now, "updated_at": now} for row in BAD_CONTACTS.values()] + good[2:]
            for row in rows:
                conn.execute(insert(ENTITY_TABLES["contacts"]), [blank | row])
        with provider_env(provider, sim):
            export_now(provider, "contacts", store, shared=False)  # must not raise
            export_now(provider, "contacts", store, shared=False)  # and again: nothing is created twice
        links = {row["id"]: ext for ext, row in store.linked_records(provider, "contacts").items()}
        rejects = {int(r["record_ref"]): r for r in store.open_rejects(provider, "contacts", "export")}
        with store.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(ENTITY_TABLES["contacts"].c.id).order_by(ENTITY_TABLES["contacts"].c.id))]
        good_ids = ids[:2] + ids[-2:]
        assert all(i in links for i in good_ids), f"good records did not land: {good_ids} vs {sorted(links)}; rejects {rejects}"
        for name, local_id in zip(BAD_CONTACTS, ids[2:-2]):
            assert local_id in links or local_id in rejects, f"{provider}: {name} record neither sent nor rejected"
            if local_id in rejects:
                assert rejects[local_id]["message"], f"{name}: reject without a reason"
        cpf_id = ids[2 + list(BAD_CONTACTS).index("invalid CPF")]
        if "document" in held_fields(provider, "contacts"):  # Shopify has no place for a CPF and never sends it
            assert cpf_id in rejects and ("CPF" in rejects[cpf_id]["message"]), rejects.get(cpf_id)
        checked, lost, duplicated, detail = reconcile_export(sim, store, provider, "contacts", 0)
        assert (lost, duplicated) == (0, 0), detail
        assert all(n == 1 for n in remote_keys(sim, "contacts").values())
        # the local values are stored as written, and the SQL did nothing
        assert "contacts" in inspect(store.engine).get_table_names()
        with store.engine.connect() as conn:
            last_names = {r[0] for r in conn.execute(select(ENTITY_TABLES["contacts"].c.last_name))}
        assert SQL in last_names
    finally:
        store.dispose()
        sim.stop()


BAD_REMOTE = {
    "bling": {"email": 12345, "numeroDocumento": "111.111.111-11", "situacao": "Z", "nome": ["não", "texto"], "tipo": "F"},
    "gestaoclick": {"email": ["a@b.com"], "cpf": "529.982.247-24", "ativo": "talvez", "nome": {"x": 1}, "tipo_pessoa": "PF"},
}
SET_FIELDS = {
    "bling": lambda sim, record_id, values: sim.modify("contacts", ids=[record_id], changes=values),
    "gestaoclick": lambda sim, record_id, values: sim.set_fields("contacts", record_id, **values),
}


@pytest.mark.parametrize("provider", sorted(BAD_REMOTE))
def test_bad_provider_records_go_to_the_ledger_and_the_rest_is_imported(provider, sqlite_url):
    sim = start(provider, (6, 1, 1))
    store = LocalStore.open(sqlite_url)
    try:
        bad_id = sorted(sim.records("contacts"))[2]
        SET_FIELDS[provider](sim, bad_id, BAD_REMOTE[provider])
        html_id = sorted(sim.records("contacts"))[3]
        SET_FIELDS[provider](sim, html_id, {"nome": HTML + " " + SQL})
        with provider_env(provider, sim):
            import_now(provider, "contacts", store, shared=False)  # must not raise
        links = store.linked_records(provider, "contacts")
        rejects = {r["record_ref"]: r for r in store.open_rejects(provider, "contacts", "import")}
        others = set(sim.records("contacts")) - {bad_id}
        assert others <= set(links), f"the rest of the batch was not imported: {others - set(links)}"
        assert bad_id in links or bad_id in rejects, "the bad record was neither stored nor rejected"
        if bad_id in rejects:
            assert rejects[bad_id]["message"]
        stored = links[html_id]
        assert HTML in " ".join(str(v) for v in stored.values() if v) or SQL in " ".join(str(v) for v in stored.values() if v)
        checked, lost, duplicated, detail = reconcile_import(sim, store, provider, "contacts")
        assert duplicated == 0 and lost == (0 if bad_id in links else 1), detail
    finally:
        store.dispose()
        sim.stop()
