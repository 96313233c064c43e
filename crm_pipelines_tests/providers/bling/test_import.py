"""Import from Bling over real HTTP: full reads reconcile exactly, deltas, equal seconds, paging hazards, OAuth."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import pytest

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.core.normalize import normalize_phone
from crm_pipelines.providers.bling.api import BlingAuth
from crm_pipelines.providers.bling.reader import BlingChangeReader
from crm_pipelines.sync.importer import ImportWindow, run_import

UTC = timezone.utc


def full_window():
    now = datetime.now(UTC)
    return ImportWindow(now, now, None, now, "test")


def delta_window(lower):
    now = datetime.now(UTC) + timedelta(seconds=2)
    return ImportWindow(lower, now, lower, now, "test")


def run(client, store, entity, window, **kw):
    return run_import(BlingChangeReader(client, **kw), store, "bling", entity, window, stats=client.stats)


def assert_reconciled(sim, store, entity="contacts"):
    remote = sim.records(entity)
    local = store.linked_records("bling", entity)
    assert set(local) == set(remote)
    for rid, body in remote.items():
        row = local[rid]
        first, _, rest = body["nome"].partition(" ")
        if entity == "contacts":
            assert (row["first_name"], row["last_name"] or "") == (first, rest)
            assert row["email"] == (body["email"].lower() or None)
        assert row["document"] == (re.sub(r"\D", "", body["numeroDocumento"]) or None)
        assert row["phone"] == normalize_phone(body["telefone"])


@pytest.mark.slow
def test_initial_import_of_10000_contacts_reconciles_exactly(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=10_000, companies=3, deals=0, list_shape="full")
    result = run(client_for(sim), store, "contacts", full_window())
    assert result.outcome.created == 10_000 and result.failed == 0
    # 100 full pages and an empty 101st, 2 page-stability checks, 1 page of excluded contatos
    assert result.api["by_kind"]["list"] == 104
    assert_reconciled(sim, store)
    assert any("ã" in r["first_name"] + (r["last_name"] or "") or "ç" in r["first_name"] + (r["last_name"] or "") for r in store.linked_records("bling", "contacts").values())


def test_summary_lists_are_completed_by_reading_records_by_id(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=120, companies=15, deals=0)
    client = client_for(sim)
    assert run(client, store, "contacts", full_window()).outcome.created == 120
    assert run(client, store, "companies", full_window()).outcome.created == 15
    assert client.stats.snapshot()["by_kind"]["get"] == 135
    assert_reconciled(sim, store)
    assert_reconciled(sim, store, "companies")
    cities = {r["city"] for r in store.linked_records("bling", "companies").values()}
    assert cities - {None}


def test_incremental_import_after_creates_updates_and_deletes(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=300, companies=0, deals=0)
    client = client_for(sim)
    run(client, store, "contacts", full_window())
    before = datetime.now(UTC) - timedelta(seconds=1)
    sim.create("contacts", 4)
    sim.modify("contacts", 6, changes={"nome": "Conceição Antônio", "telefone": "(11) 3333-4444"})
    gone = sim.modify("contacts", 2)
    sim.delete("contacts", gone)
    result = run(client, store, "contacts", delta_window(before))
    assert result.outcome.created == 4 and result.outcome.updated >= 6
    sweep = run_import(BlingChangeReader(client), store, "bling", "contacts", delta_window(before), stats=client.stats, sweep_archived=True)
    assert sweep.outcome.deleted == 2
    assert_reconciled(sim, store)


def test_records_sharing_one_second_across_pages_are_all_read(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=600, companies=0, deals=0, list_shape="full")
    client = client_for(sim)
    run(client, store, "contacts", full_window())
    moment = datetime.now(UTC).replace(microsecond=0)
    ids = sim.modify("contacts", 250, changes={"telefone": "(21) 2222-0000"}, at=moment)
    result = run(client, store, "contacts", delta_window(moment))
    assert result.outcome.updated == 250
    assert all(store.linked_records("bling", "contacts")[i]["phone"] == "+552122220000" for i in ids)


@pytest.mark.parametrize("order", ["id", "updated"])
def test_a_record_changing_while_pages_are_read_skips_nothing(start_bling_sim, client_for, store, order):
    sim = start_bling_sim(contacts=350, companies=0, deals=0, list_shape="full", list_order=order, history_days=0.03)
    client = client_for(sim)
    lower = datetime.now(UTC) - timedelta(hours=2)

    def read(verify):
        reader = BlingChangeReader(client, verify_pages=verify)
        original, calls = client.list_page, {"n": 0}

        def list_page(entity, page, params=None, **kw):
            items = original(entity, page, params, **kw)
            calls["n"] += 1
            if calls["n"] == 2:  # while page 2 is in hand, a record of page 1 changes
                sim.modify("contacts", ids=[str(original(entity, 1, params)[3]["id"])], changes={"telefone": "(31) 9999-0000"}, at=datetime.now(UTC) + timedelta(minutes=1))
            return items

        client.list_page = list_page
        try:
            return {r.external_id for p in reader.changes("contacts", lower, datetime.now(UTC)) for r in p.records}
        finally:
            client.list_page = original

    unchecked = read(verify=False)
    assert len(unchecked) < 350  # page-number paging alone loses a record
    assert read(verify=True) >= set(sim.records("contacts"))


def test_invalid_documents_are_rejects_with_a_clear_message_not_failures(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=40, companies=10, deals=0, invalid_documents=3)
    client = client_for(sim)
    a = run(client, store, "contacts", full_window())
    b = run(client, store, "companies", full_window())
    assert a.failed + b.failed == 3 and a.outcome.created + b.outcome.created == 47
    messages = [r["message"] for r in store.open_rejects("bling", None, "import")]
    assert all(re.search(r"(CPF|CNPJ) [\d./-]+ has invalid check digits", m) for m in messages), messages


def test_retrying_a_page_after_a_fault_does_not_duplicate(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=250, companies=0, deals=0, list_shape="full")
    sim.fail_next(2, 503)
    result = run(client_for(sim), store, "contacts", full_window())
    assert result.outcome.created == 250 and result.api["retries"] >= 2
    assert_reconciled(sim, store)


def test_by_ids_sees_deletions_and_other_tipo_as_archived(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=5, companies=2, deals=2)
    client = client_for(sim)
    reader = BlingChangeReader(client)
    person, company = list(sim.records("contacts"))[0], list(sim.records("companies"))[0]
    sim.delete("contacts", [list(sim.records("contacts"))[1]])
    deleted = list(sim.records("contacts", deleted=True))[0]
    pages = list(reader.by_ids("contacts", [person, company, deleted, "999"]))
    by_id = {r.external_id: r for p in pages for r in p.records}
    assert not by_id[person].archived and by_id[company].archived and by_id[deleted].archived and by_id["999"].archived
    assert not [r for p in reader.by_ids("companies", [company]) for r in p.records][0].archived
    assert reader.total("contacts") == 4 and reader.total("deals") == 2


def test_expired_token_is_refreshed_once_and_the_new_refresh_token_kept(start_bling_sim, client_for, store, monkeypatch):
    monkeypatch.setattr(BlingAuth, "min_refresh_interval_s", 0.0)
    sim = start_bling_sim(contacts=120, companies=0, deals=0, list_shape="full")
    client = client_for(sim)
    run(client, store, "contacts", full_window())
    assert sim.token_refreshes == 1
    sim.expire_access_tokens()
    other = client_for(sim)  # a second client of the same app shares the rotated tokens
    assert BlingChangeReader(other).total("contacts") == 120
    assert sim.token_refreshes == 2 and client.auth.refresh_token in sim.current_refresh_tokens


def test_failed_refresh_and_spent_daily_allowance_stop_with_clear_messages(start_bling_sim, client_for, store):
    sim = start_bling_sim(contacts=10, companies=0, deals=0)
    with pytest.raises(ProviderError, match="token refresh failed .*BLING_REFRESH_TOKEN"):
        BlingChangeReader(client_for(sim, refresh_token="revoked")).total("contacts")
    BlingAuth._REGISTRY.clear()
    sim2 = start_bling_sim(contacts=500, companies=0, deals=0, daily_limit=3, list_shape="full")
    with pytest.raises(QuotaExhausted, match="daily allowance"):
        run(client_for(sim2), store, "contacts", full_window())
    assert "sim-bling-secret" not in str(client_for(sim2).auth) + repr(client_for(sim2))


def test_records_changed_just_before_a_scan_do_not_keep_it_re_reading(start_bling_sim, client_for, caplog):
    # Changed within the clock margin before the scan began: listed as "changed since" by every check.
    sim = start_bling_sim(contacts=250, companies=0, deals=0)
    client = client_for(sim)
    sim.modify("contacts", 3, changes={"telefone": "(31) 9999-0000"})
    reader = BlingChangeReader(client)
    with caplog.at_level(logging.WARNING):
        read = {r.external_id for p in reader.changes("contacts", None, None) for r in p.records}
    assert read == set(sim.records("contacts"))
    assert reader.rescans <= 1
    assert "kept changing" not in caplog.text
