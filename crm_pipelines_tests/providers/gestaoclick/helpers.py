"""Shared steps of the GestaoClick export tests."""

from __future__ import annotations

import collections
from datetime import datetime, timezone

from sqlalchemy import insert

from crm_pipelines.providers.gestaoclick.mapping import split_notes
from crm_pipelines.providers.gestaoclick.writer import GestaoClickWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines_tests.providers.gestaoclick.conftest import gc_client

UTC = timezone.utc


def add_contacts(store, n, *, start=0, email=True, bad_email_every=0):
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        address = f"pessoa{i}@exemplo.com.br" if email else None
        if bad_email_every and i % bad_email_every == 0:
            address = f"pessoa{i}@exemplo.com."  # passes the local check, GestaoClick answers 422
        rows.append({"email": address, "first_name": "João" if i % 2 else "Conceição", "last_name": f"Gonçalves {i}",
                     "job_title": "Diretora de Operações" if i % 3 == 0 else None, "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def export(sim, store, entity="contacts", writer_kw=None, **kw):
    with gc_client(sim, per_second=20_000) as client:
        return export_entity(GestaoClickWriter(client, **(writer_kw or {})), store, "gestaoclick", entity, stats=client.stats, **kw)


def assert_exactly_once(sim, store, entity="contacts"):
    remote = sim.records(entity)
    keys = collections.Counter(split_notes(r.get("observacoes"))[1].get("key") for r in remote.values())
    keys.pop(None, None)
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"duplicates at GestaoClick: {list(duplicated.items())[:5]}"
    links = store.linked_records("gestaoclick", entity)
    assert set(links) <= set(remote)
    assert len(links) == len({row["id"] for row in links.values()})
    return remote, links
