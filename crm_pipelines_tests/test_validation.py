"""Values the database cannot hold go to the reject ledger; the rest of the page or batch goes through."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import insert, text

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.providers.hubspot.writer import HubSpotWriter
from crm_pipelines.storage.schema import deals
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.storage.validate import problems
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import ImportWindow, run_import

TOKEN = "validation-token"
UTC = timezone.utc


def window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def import_entity(sim, store, entity):
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url) as client:
        return run_import(HubSpotChangeReader(client), store, "hubspot", entity, window(), stats=client.stats)


def test_values_over_the_columns_limits_are_rejected_and_the_page_goes_through(start_hubspot_sim, store):
    sim = start_hubspot_sim(seed=8, contacts=40, companies=20, deals=0, tokens=(TOKEN,))
    ids = sorted(sim.records("contacts"), key=int)
    long_email = "a" * 64 + "@" + ("b" * 60 + ".") * 5 + "com.br"  # 376 characters: passes the e-mail check, not the column
    sim.modify("contacts", ids=ids[:2], changes={"email": long_email})
    company = sorted(sim.records("companies"), key=int)[0]
    sim.modify("companies", ids=[company], changes={"domain": ("c" * 60 + ".") * 5 + "com.br"})
    result = import_entity(sim, store, "contacts")
    assert result.failed == 2 and store.linked_count("hubspot", "contacts") == 38
    rejects = {r["record_ref"]: r["message"] for r in store.open_rejects("hubspot", "contacts", "import")}
    assert rejects == {ids[0]: "email: 376 characters, the column holds 320", ids[1]: "email: 376 characters, the column holds 320"}
    assert import_entity(sim, store, "companies").failed == 1 and store.linked_count("hubspot", "companies") == 19
    [domain_reject] = store.open_rejects("hubspot", "companies", "import")
    assert domain_reject["message"] == "domain: 311 characters, the column holds 255"
    # later changes keep arriving; a fixed record goes through and leaves the ledger
    sim.modify("contacts", ids=[ids[1], ids[5]], changes={"email": "corrigido@exemplo.com.br"})
    import_entity(sim, store, "contacts")
    assert store.linked_count("hubspot", "contacts") == 39
    assert [r["record_ref"] for r in store.open_rejects("hubspot", "contacts", "import")] == [ids[0]]


def test_over_long_provider_text_is_stored_as_sent_or_rejected_never_cut(start_hubspot_sim, store):
    """A 100,000-character last name and a 256-character company go to the ledger; 255 characters are stored whole."""
    sim = start_hubspot_sim(seed=9, contacts=12, companies=0, deals=0, tokens=(TOKEN,))
    ids = sorted(sim.records("contacts"), key=int)
    at_limit = "Ç" * 254 + "🫨"  # 255 characters (the emoji is one), more bytes than that in UTF-8
    sim.modify("contacts", ids=[ids[0]], changes={"lastname": "Gonçalves " * 10_000})
    sim.modify("contacts", ids=[ids[1]], changes={"company": "E" * 256})
    sim.modify("contacts", ids=[ids[2]], changes={"jobtitle": at_limit, "firstname": "João Pedro\u200d"})
    result = import_entity(sim, store, "contacts")
    assert result.failed == 2 and store.linked_count("hubspot", "contacts") == 10
    rejects = {r["record_ref"]: r["message"] for r in store.open_rejects("hubspot", "contacts", "import")}
    assert rejects == {ids[0]: "last_name: 99999 characters, the column holds 255", ids[1]: "company_name: 256 characters, the column holds 255"}
    stored = store.linked_records("hubspot", "contacts")[ids[2]]
    assert (stored["job_title"], stored["first_name"]) == (at_limit, "João Pedro\u200d")
    with store.engine.connect() as conn:
        longest = conn.execute(text("SELECT max(length(last_name)), max(length(company_name)) FROM contacts")).one()
    assert max(longest) < 255  # nothing cut to the column's length


def test_unreadable_local_values_are_rejected_and_the_batch_is_exported(start_hubspot_sim, sqlite_url):
    """Another application wrote '1.234,56' and '31/12/2026' into SQLite: those two deals wait in the ledger."""
    sim = start_hubspot_sim(seed=9, contacts=0, companies=0, deals=0, tokens=(TOKEN,))
    sqlite_store = LocalStore.open(sqlite_url)
    now = datetime.now(UTC)
    with sqlite_store.engine.begin() as conn:
        conn.execute(insert(deals), [{"name": f"Pedido {i}", "amount": 100 + i, "currency": "BRL", "stage": "closedwon", "pipeline": "default", "created_at": now, "updated_at": now} for i in range(10)])
        conn.execute(text("UPDATE deals SET amount = '1.234,56' WHERE id = 3"))
        conn.execute(text("UPDATE deals SET close_date = '31/12/2026' WHERE id = 7"))
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url) as client:
        result = export_entity(HubSpotWriter(client), sqlite_store, "hubspot", "deals", stats=client.stats)
    assert result.created == 8 and result.rejected == 2
    assert sim.count("deals") == 8
    rejects = {r["record_ref"]: r["message"] for r in sqlite_store.open_rejects("hubspot", "deals", "export")}
    assert "'1.234,56' cannot be read" in rejects["3"] and "'31/12/2026' cannot be read" in rejects["7"]
    sqlite_store.dispose()


def test_problems_name_each_limit():
    assert problems("deals", {"amount": "1.234,56", "close_date": "31/12/2026", "name": "ok"}) == [
        "amount: '1.234,56' is not a number (expected digits with a '.' decimal point, e.g. 1234.56)",
        "close_date: '31/12/2026' is not a date and time (expected ISO 8601, e.g. 2026-12-31T00:00:00Z)",
    ]
    assert problems("deals", {"amount": 10**17}) == ["amount: 100000000000000000 is outside the amounts the database holds (|amount| < 10^16)"]
    assert problems("contacts", {"document": "1" * 15}) == ["document: 15 characters, the column holds 14"]
    assert problems("contacts", {"first_name": "João Pedro 👩‍👩‍👧"}) == []


def test_a_hubspot_amount_with_a_decimal_comma_is_refused_not_misread():
    from crm_pipelines.core.model import RecordError
    from crm_pipelines.providers.hubspot.mapping import to_remote_record as to_remote

    deal = {"id": "77", "updatedAt": "2026-11-30T10:00:00Z", "properties": {"dealname": "Pedido", "amount": "1.234,56"}}
    error = to_remote("deals", deal)
    assert isinstance(error, RecordError) and "'1.234,56' is not a number" in error.message
    assert to_remote("deals", deal | {"properties": {"dealname": "Pedido", "amount": "1,234.56"}}).fields["amount"] == Decimal("1234.56")
