"""Export then import with nothing changed is the identity: Unicode, line breaks and compound names intact."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select

from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now
from crm_pipelines_tests.faults.harness import provider_env, start

ROWS = [
    {"email": "joao.pedro@exemplo.com.br", "first_name": "João Pedro", "last_name": "Gonçalves"},
    {"email": "familia@exemplo.com.br", "first_name": "Família", "last_name": "Souza 👩\u200d👩\u200d👧 🫨", "job_title": "Linha 1\nLinha 2"},
    {"email": "zwj@exemplo.com.br", "first_name": "Zoë", "last_name": "Ünal 🏳️\u200d🌈", "company_name": "Açaí & Cia\tLtda"},
]


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive", "bling", "gestaoclick"])
def test_export_then_import_changes_nothing(provider, sqlite_url):
    sim = start(provider, (0, 0, 0))
    store = LocalStore.open(sqlite_url)
    try:
        now = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(contacts), [row | {"created_at": now, "updated_at": now} for row in ROWS])
        columns = [contacts.c[name] for name in ("id", "email", "first_name", "last_name", "job_title", "company_name")]
        with store.engine.connect() as conn:
            before = conn.execute(select(*columns).order_by(contacts.c.id)).all()
        with provider_env(provider, sim):
            assert export_now(provider, "contacts", store, shared=False).created == 3
            result = import_now(provider, "contacts", store, full=True, shared=False)
        assert result.outcome.created == 0 and result.outcome.updated == 0 and result.failed == 0
        with store.engine.connect() as conn:
            assert conn.execute(select(*columns).order_by(contacts.c.id)).all() == before
    finally:
        store.dispose()
        sim.stop()
