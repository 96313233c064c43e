"""GestaoClick import against the simulator over real HTTP: full scans, deletions, limits, faults."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_pipelines.core.errors import ProviderError, QuotaExhausted
from crm_pipelines.core.normalize import normalize_phone
from crm_pipelines.providers.gestaoclick.reader import GestaoClickChangeReader
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines_tests.providers.gestaoclick.conftest import ACCESS, SECRET, gc_client

UTC = timezone.utc


def full_window() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(days=400), now, None, now + timedelta(seconds=5), "test: full")


def partition_window() -> ImportWindow:
    """A later 30-minute partition: GestaoClick still reads everything."""
    now = datetime.now(UTC)
    return ImportWindow(now - timedelta(minutes=30), now, now - timedelta(minutes=35), now, "test: partition")


def import_entity(sim, store, entity, window=None, **client_kw):
    with gc_client(sim, **client_kw) as client:
        return run_import(GestaoClickChangeReader(client), store, "gestaoclick", entity, window or full_window(), stats=client.stats)


def digits(value):
    return re.sub(r"\D", "", value) if value else None


def expected_fields(entity: str, record: dict) -> dict:
    """What the local row must hold for a simulator record (written independently of the mapping)."""
    blank = lambda v: v if v not in (None, "") else None  # noqa: E731
    if entity == "contacts":
        first, _, rest = (record["nome"] or "").partition(" ")
        return {"email": blank(record["email"]) and record["email"].lower(), "first_name": blank(first), "last_name": blank(rest),
                "phone": normalize_phone(blank(record["telefone"]) or blank(record["celular"])), "document": digits(record["cpf"])}
    if entity == "companies":
        address = record["enderecos"][0]["endereco"] if record["enderecos"] else {}
        return {"name": record["nome"], "document": digits(record["cnpj"]), "city": blank(address.get("nome_cidade"))}
    return {"amount": Decimal(str(record["valor_total"])), "stage": record["nome_situacao"], "currency": "BRL",
            "close_date": datetime.fromisoformat(record["data"]).replace(tzinfo=UTC), "name": blank(record["observacoes"])}


def assert_reconciled(sim, store, entity):
    remote = sim.records(entity)
    local = store.linked_records("gestaoclick", entity)
    assert set(local) == set(remote), f"{entity}: missing {sorted(set(remote) - set(local))[:5]}, extra {sorted(set(local) - set(remote))[:5]}"
    assert store.count(entity) == len(remote), f"{entity}: local table has duplicates or strays"
    for external_id, record in remote.items():
        row = local[external_id]
        for name, value in expected_fields(entity, record).items():
            assert row[name] == value, f"{entity} {external_id}.{name}: local {row[name]!r} != simulator {value!r}"


@pytest.mark.parametrize("entity", ["companies", "deals"])
def test_companies_and_deals_reconcile(start_gestaoclick_sim, store, entity):
    sim = start_gestaoclick_sim(contacts=50, companies=120, deals=150, rate_limits_enabled=False)
    result = import_entity(sim, store, entity)
    assert result.outcome.created == sim.count(entity) and result.failed == 0
    assert_reconciled(sim, store, entity)
    again = import_entity(sim, store, entity, partition_window())
    assert again.outcome.unchanged == sim.count(entity) and again.outcome.updated == again.outcome.created == 0


def test_accents_survive_end_to_end(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=5, companies=0, deals=0, rate_limits_enabled=False)
    ids = sorted(sim.records("contacts"), key=int)
    sim.set_fields("contacts", ids[0], nome="João da Conceição", email="joao@exemplo.com.br")
    sim.set_fields("contacts", ids[1], nome="Conceição Gonçalves", enderecos=[{"nome_cidade": "São Paulo", "pais": "Brasil"}])
    import_entity(sim, store, "contacts")
    local = store.linked_records("gestaoclick", "contacts")
    assert (local[ids[0]]["first_name"], local[ids[0]]["last_name"]) == ("João", "da Conceição")
    assert local[ids[1]]["first_name"] == "Conceição" and local[ids[1]]["last_name"] == "Gonçalves"


def test_records_sharing_one_modification_timestamp_are_not_missed(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=400, companies=0, deals=0, record_timestamps=True, rate_limits_enabled=False)
    import_entity(sim, store, "contacts")
    changed = sim.modify("contacts", 150, same_timestamp=True)
    result = import_entity(sim, store, "contacts", partition_window())
    assert result.outcome.updated == len(changed) == 150
    assert_reconciled(sim, store, "contacts")
    # modificado_em (São Paulo local time) became the records' modification time, in UTC.
    stamp = datetime.strptime(sim.records("contacts")[changed[0]]["modificado_em"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("America/Sao_Paulo"))
    assert store.sync_state("gestaoclick", "contacts").last_remote_update == stamp


def test_meta_variants_numbers_and_ignored_filters_are_tolerated(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=130, companies=45, deals=0, meta_page_count_key="total_da_pagina", meta_total_paginas=False,
                                numbers_as_strings=False, honour_tipo_pessoa_filter=False, honour_sorting=False, rate_limits_enabled=False)
    for entity in ("contacts", "companies"):
        result = import_entity(sim, store, entity)
        assert result.failed == 0
        assert_reconciled(sim, store, entity)


def test_invalid_documents_and_emails_go_to_the_reject_ledger(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=80, companies=10, deals=0, rate_limits_enabled=False)
    ids = sorted(sim.records("contacts"), key=int)
    sim.set_fields("contacts", ids[0], cpf="529.982.247-24")
    sim.set_fields("contacts", ids[1], email="sem-arroba.example.com")
    company = sorted(sim.records("companies"), key=int)[0]
    sim.set_fields("companies", company, cnpj="11.222.333/0001-80")
    result = import_entity(sim, store, "contacts")
    assert (result.failed, result.outcome.created) == (2, 78)
    rejects = {r["record_ref"]: r for r in store.open_rejects("gestaoclick", "contacts", "import")}
    assert set(rejects) == {ids[0], ids[1]}
    assert "CPF" in rejects[ids[0]]["message"] and "check digits" in rejects[ids[0]]["message"]
    assert "invalid email" in rejects[ids[1]]["message"]
    result = import_entity(sim, store, "companies")
    [reject] = store.open_rejects("gestaoclick", "companies", "import")
    assert reject["record_ref"] == company and "CNPJ" in reject["message"]

    # Rejected records still exist: they are not taken for deletions; once fixed, they import.
    sim.set_fields("contacts", ids[0], cpf="529.982.247-25")
    again = import_entity(sim, store, "contacts", partition_window())
    assert again.outcome.deleted == 0 and again.outcome.created == 1
    assert store.linked_records("gestaoclick", "contacts")[ids[0]]["document"] == "52998224725"
    assert [r["record_ref"] for r in store.open_rejects("gestaoclick", "contacts", "import")] == [ids[1]]


def test_failed_scan_never_deletes_and_a_retried_page_does_not_duplicate(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=300, companies=0, deals=0, rate_limits_enabled=False)
    import_entity(sim, store, "contacts")
    sim.delete("contacts", 10)
    # Every attempt at page 2 fails: the run fails, nothing is deleted locally.
    with gc_client(sim, max_attempts=2) as client:
        reader = GestaoClickChangeReader(client)
        pages = reader.changes("contacts", None, None)
        first = next(pages)
        assert len(first.records) == 20
        sim.fail_next(5, 503)
        with pytest.raises(ProviderError):
            run_import(_Replaying(first, pages), store, "gestaoclick", "contacts", full_window(), stats=client.stats)
    assert store.count("contacts") == 300  # the deletions were not applied from a partial scan
    assert store.sync_state("gestaoclick", "contacts").last_status == "failed"

    # With faults on every few requests the retry goes on from page 1 (listed again: records may have
    # moved onto it; those already read are not returned twice) and creates no duplicate; it did not
    # read the list in one go, so the next complete scan applies the deletions.
    sim.faults.rate_5xx = 0.1
    sim.faults.rate_truncated = 0.05
    result = import_entity(sim, store, "contacts")
    assert result.api["retries"] > 0
    assert result.fetched < 290 and result.outcome.deleted == 0 and result.outcome.created == 0
    result = import_entity(sim, store, "contacts")
    assert result.outcome.deleted == 10 and result.outcome.created == 0
    sim.faults.rate_5xx = sim.faults.rate_truncated = 0.0
    assert_reconciled(sim, store, "contacts")


class _Replaying:
    """A reader whose pages are already partly read (to fail mid-scan deterministically)."""

    complete_snapshot = True

    def __init__(self, first, rest):
        self._first, self._rest = first, rest

    def changes(self, entity, lower, upper):
        yield self._first
        yield from self._rest

    def by_ids(self, entity, ids):  # pragma: no cover - never reached on a failed scan
        raise AssertionError("by_ids must not run after a failed scan")


def test_record_skipped_by_a_shift_mid_scan_is_not_deleted(start_gestaoclick_sim, store):
    """Page-number paging: a deletion during the scan shifts a record past us; it is re-read, not deleted."""
    sim = start_gestaoclick_sim(contacts=100, companies=0, deals=0, rate_limits_enabled=False)
    import_entity(sim, store, "contacts")
    ids = sorted(sim.records("contacts"), key=int)
    with gc_client(sim) as client:
        reader = GestaoClickChangeReader(client)
        original = reader.changes

        def changes(entity, lower, upper):
            for number, page in enumerate(original(entity, lower, upper)):
                yield page
                if number == 0:
                    sim.delete("contacts", [ids[0]])  # already read; every later record moves up one place

        reader.changes = changes
        result = run_import(reader, store, "gestaoclick", "contacts", partition_window(), stats=client.stats)
    # ids[20] moved onto page 1 after that page was read: absent from the scan, read again by id, kept.
    assert result.api["by_kind"]["get"] == 1
    assert result.outcome.deleted == 0 and result.outcome.unchanged == 100
    assert ids[20] in store.linked_records("gestaoclick", "contacts")
    # ids[0] was read alive before it was deleted: the next run finds it gone.
    again = import_entity(sim, store, "contacts", partition_window())
    assert again.outcome.deleted == 1
    assert_reconciled(sim, store, "contacts")


def test_real_limits_pace_at_three_per_second_and_any_429_is_retried(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=150, companies=0, deals=0)  # 8 PF pages + 1 ES page at 3/s
    result = import_entity(sim, store, "contacts", per_second=3)
    assert result.api["calls"] - result.api["retries"] == 9
    assert sim.stats["rate_limited_total"] <= result.api["retries"]  # 429 counts are for benchmarks/gestaoclick.py
    assert_reconciled(sim, store, "contacts")


def test_injected_429s_back_off_at_least_a_second(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=100, companies=0, deals=0, rate_limits_enabled=False, retry_after_on_429=False)
    sim.fail_next(2, 429)
    result = import_entity(sim, store, "contacts")
    assert result.api["rate_limited"] == 2 and result.api["retries"] == 2
    # Each 429 held the account's limiter for at least one second: the simulator saw the retries
    # of the first page (429, 429, then answered) at least a second apart, however busy the machine
    # (the client's own wait figure shrinks when its back-off sleep or a slow step eats the hold).
    first, second, third = sim.stats_recorder.arrival_times()[:3]
    assert second - first >= 1.0 and third - second >= 1.0
    assert_reconciled(sim, store, "contacts")


def test_daily_limit_stops_cleanly(start_gestaoclick_sim, store):
    # The server's daily 429 (its message says "diário") stops the run without retries.
    sim = start_gestaoclick_sim(contacts=200, companies=0, deals=0, daily_limit=3, per_second=100)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(sim, store, "contacts")
    assert "daily" in str(info.value).lower() and ACCESS not in str(info.value) and SECRET not in str(info.value)
    assert sim.stats["rate_limited"]["DAILY"] == 1
    state = store.sync_state("gestaoclick", "contacts")
    assert state.last_status == "failed" and state.synced_through is None
    assert store.count("contacts") == 60  # three pages applied, nothing deleted

    # The client's own count stops before the server has to refuse.
    fresh = start_gestaoclick_sim(contacts=200, companies=0, deals=0, per_second=100)
    with pytest.raises(QuotaExhausted) as info:
        import_entity(fresh, store, "contacts", daily_limit=4)
    assert "daily allowance of 4 requests" in str(info.value)
    assert fresh.stats["total_requests"] == 4 and fresh.stats["rate_limited_total"] == 0


def test_wrong_tokens_fail_at_once_without_leaking_them(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=10, companies=0, deals=0)
    with pytest.raises(ProviderError) as info:
        import_entity(sim, store, "contacts", secret="not-the-secret")
    assert info.value.status == 401 and "Token de acesso" in str(info.value)
    assert "not-the-secret" not in str(info.value) and ACCESS not in str(info.value)
    assert sim.stats["total_requests"] == 1


def test_total_counts_each_entity(start_gestaoclick_sim):
    sim = start_gestaoclick_sim(contacts=33, companies=7, deals=12, rate_limits_enabled=False)
    with gc_client(sim) as client:
        reader = GestaoClickChangeReader(client)
        assert [reader.total(e) for e in ("contacts", "companies", "deals")] == [33, 7, 12]
