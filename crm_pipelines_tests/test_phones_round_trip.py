"""10,000 messy phones in the local database leave for HubSpot in E.164 and come back unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.providers.hubspot.writer import HubSpotWriter
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines_tests.helpers.phones import add_messy_contacts

TOKEN = "pat-na1-phones"


@pytest.mark.slow
def test_10000_messy_phones_export_in_e164_and_reimport_unchanged(start_hubspot_sim, sqlite_url):
    store = LocalStore.open(sqlite_url)
    sim = start_hubspot_sim(seed=16, contacts=0, companies=0, deals=0, tokens=(TOKEN,), burst_limit=1000)
    messy = add_messy_contacts(store, 10_000)
    assert 300 < len(messy.invalid) < 700

    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=1000) as client:
        sent = export_entity(HubSpotWriter(client), store, "hubspot", "contacts", stats=client.stats)
    assert (sent.created, sent.rejected) == (len(messy.valid), len(messy.invalid))
    links = store.linked_records("hubspot", "contacts")
    remote = sim.records("contacts")
    by_local = {row["id"]: remote[ext]["properties"] for ext, row in links.items()}
    assert {local_id: props["phone"] for local_id, props in by_local.items()} == {i: messy.e164[i] for i in messy.valid}
    assert all(props["firstname"] in ("Ana", "João", "Conceição", "Zé") and props["lastname"].startswith("Souza Lima") for props in by_local.values())
    # What is not a number stays as written locally and waits in the ledger with its value.
    ledger = {int(r["record_ref"]): r["message"] for r in store.open_rejects("hubspot", "contacts", "export")}
    assert set(ledger) == messy.invalid
    phones = local_phones(store)
    assert all(f"invalid phone {phones[i]!r}" in ledger[i] for i in messy.invalid)

    now = datetime.now(timezone.utc)
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url, burst_limit=1000) as client:
        back = run_import(HubSpotChangeReader(client), store, "hubspot", "contacts",
                          ImportWindow(now - timedelta(days=1), now, None, now + timedelta(seconds=5), "test: full"), stats=client.stats)
    assert (back.outcome.created, back.outcome.updated, back.outcome.conflicts, back.failed) == (0, 0, 0, 0)
    assert back.outcome.unchanged == len(messy.valid)
    # Zero field differences: nothing left to send but the records whose phone is not a number.
    assert not list(store.export_candidates("hubspot", "contacts"))  # the rejected wait in the ledger for a change
    assert {c.local_id for c in store.export_candidates("hubspot", "contacts", retry_rejected=True)} == messy.invalid
    store.dispose()


def local_phones(store) -> dict[int, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(contacts.c.id, contacts.c.phone)).all())
