"""2,000 messy phones in the local database leave for Bling (a Brazilian ERP) in E.164 and come back unchanged.

Bling writes one record per request (and looks each batch up first), so this round trip stays at
2,000 records; the 10,000-record round trip runs against HubSpot (test_phones_round_trip.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crm_pipelines.providers.bling.reader import BlingChangeReader
from crm_pipelines.providers.bling.writer import BlingWriter
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines_tests.helpers.phones import add_messy_contacts


def test_2000_messy_phones_export_in_e164_and_reimport_unchanged(start_bling_sim, client_for, sqlite_url):
    store = LocalStore.open(sqlite_url)
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    client = client_for(sim)
    messy = add_messy_contacts(store, 2_000)
    assert 50 < len(messy.invalid) < 150

    sent = export_entity(BlingWriter(client), store, "bling", "contacts", stats=client.stats)
    assert (sent.created, sent.rejected) == (len(messy.valid), len(messy.invalid))
    remote = sim.records("contacts")
    links = store.linked_records("bling", "contacts")
    assert {row["id"]: remote[ext]["telefone"] for ext, row in links.items()} == {i: messy.e164[i] for i in messy.valid}
    assert {body["nome"].split(" ", 1)[1].rsplit("Lima", 1)[0] for body in remote.values()} == {"Souza "}
    assert {int(r["record_ref"]) for r in store.open_rejects("bling", "contacts", "export")} == messy.invalid

    now = datetime.now(timezone.utc)
    back = run_import(BlingChangeReader(client), store, "bling", "contacts", ImportWindow(now, now, None, now, "test: full"), stats=client.stats)
    assert (back.outcome.created, back.outcome.updated, back.outcome.conflicts, back.failed) == (0, 0, 0, 0)
    assert back.outcome.unchanged == len(messy.valid)
    assert not list(store.export_candidates("bling", "contacts"))  # the rejected wait in the ledger for a change
    assert {c.local_id for c in store.export_candidates("bling", "contacts", retry_rejected=True)} == messy.invalid
    store.dispose()
