"""Local duplicates: found by normalized keys, merged by each policy, links moved, dry run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import RemoteRecord
from crm_pipelines.storage.dedupe import Deduplicator
from crm_pipelines.storage.schema import contacts, merges

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def add(store, **values):
    values.setdefault("created_at", T0)
    values.setdefault("updated_at", T0)
    with store.engine.begin() as conn:
        return conn.execute(insert(contacts).returning(contacts.c.id), values).scalar_one()


def live_ids(store):
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(contacts.c.id).where(contacts.c.deleted_at.is_(None))).scalars())


@pytest.fixture
def duplicated(store):
    """Three rows for João (same e-mail in two spellings, same CPF in two formats) and one unrelated."""
    a = add(store, email="Joao.Silva@Exemplo.com.br", first_name="João", updated_at=T0)
    b = add(store, email="joao.silva@exemplo.com.br ", phone="+55 11 91234-5678", updated_at=T0 + timedelta(days=2))
    c = add(store, email="outro@exemplo.com.br", document="529.982.247-25", job_title="Gerente", updated_at=T0 + timedelta(days=1))
    add(store, email="j.silva@exemplo.com.br", document="52998224725", last_name="Conceição", updated_at=T0)  # d: shares c's CPF
    add(store, email="maria@exemplo.com.br", first_name="Maria")
    # c and a/b are different people; d is c under another e-mail.
    return store, a, b, c


def test_groups_join_on_normalized_email_and_document(duplicated):
    store, a, b, c = duplicated
    groups = Deduplicator(store.engine).find("contacts")
    assert [g.ids for g in groups] == [[a, b], [c, c + 1]]
    assert groups[0].keys == {"email": "joao.silva@exemplo.com.br"}
    assert groups[1].keys == {"document": "52998224725"}


def test_dry_run_lists_and_changes_nothing(duplicated):
    store, a, b, c = duplicated
    before = live_ids(store)
    report = Deduplicator(store.engine).run("contacts", "keep_latest", dry_run=True)
    assert [r["action"] for r in report] == [f"would keep {b}, merge [{a}]", f"would keep {c}, merge [{c + 1}]"]
    assert live_ids(store) == before


def test_keep_latest_merges_fills_empty_fields_and_records_it(duplicated):
    store, a, b, c = duplicated
    Deduplicator(store.engine).run("contacts", "keep_latest")
    assert live_ids(store) == [b, c, c + 2]
    with store.engine.connect() as conn:
        survivor = conn.execute(select(contacts).where(contacts.c.id == b)).one()
        ledger = conn.execute(select(merges.c.survivor_id, merges.c.merged_id, merges.c.policy).order_by(merges.c.id)).all()
    assert (survivor.first_name, survivor.phone) == ("João", "+55 11 91234-5678")  # filled from the merged row
    assert [tuple(r) for r in ledger] == [(b, a, "keep_latest"), (c, c + 1, "keep_latest")]
    # Run again: nothing left to merge.
    assert Deduplicator(store.engine).run("contacts", "keep_latest") == []


def test_keep_provider_keeps_the_linked_row_and_moves_links(duplicated):
    store, a, b, c = duplicated
    # HubSpot's record has a's e-mail as spelled there: the import links it to a.
    store.apply_remote("hubspot", "contacts", [RemoteRecord("901", T0, {"email": "Joao.Silva@Exemplo.com.br", "first_name": "João"})])
    store.link_existing("bling", "contacts", {a: "77"})
    store.link_existing("pipedrive", "contacts", {b: "5"})
    assert store.linked_records("hubspot", "contacts")["901"]["id"] == a
    # a is linked to two providers, b (modified later) to one: keep_provider keeps a.
    Deduplicator(store.engine).run("contacts", "keep_provider")
    assert a in live_ids(store) and b not in live_ids(store)
    for provider, external_id in (("hubspot", "901"), ("bling", "77"), ("pipedrive", "5")):
        assert store.linked_records(provider, "contacts")[external_id]["id"] == a


def test_manual_lists_groups_and_merges_on_request(duplicated):
    store, a, b, c = duplicated
    dedupe = Deduplicator(store.engine)
    report = dedupe.run("contacts", "manual")
    assert [r["action"] for r in report] == ["review (manual)", "review (manual)"]
    assert len(live_ids(store)) == 5
    done = dedupe.merge("contacts", a, [b])
    assert done["merged"] == [b] and b not in live_ids(store)
    with pytest.raises(ConfigurationError, match="do not exist or were deleted"):
        dedupe.merge("contacts", a, [b])


def test_rows_linked_to_two_records_at_one_provider_are_not_merged(duplicated):
    store, a, b, c = duplicated
    store.link_existing("hubspot", "contacts", {a: "1", b: "2"})
    report = Deduplicator(store.engine).run("contacts", "keep_latest")
    assert report[0]["action"].startswith("skip: linked to 2 different records at hubspot")
    assert a in live_ids(store) and b in live_ids(store)
    with pytest.raises(ConfigurationError, match="merge them at hubspot first"):
        Deduplicator(store.engine).merge("contacts", a, [b])
