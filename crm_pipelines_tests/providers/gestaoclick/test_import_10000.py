"""The initial GestaoClick import of 10,000 contacts, then an incremental one, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from crm_pipelines.providers.gestaoclick.reader import STRATEGY
from crm_pipelines_tests.providers.gestaoclick.test_import import assert_reconciled, import_entity, partition_window


@pytest.mark.slow
def test_initial_import_of_10000_contacts_reconciles_exactly(start_gestaoclick_sim, store):
    sim = start_gestaoclick_sim(contacts=10_000, companies=300, deals=0, limite_honoured=True, rate_limits_enabled=False)
    result = import_entity(sim, store, "contacts")
    assert result.strategy == STRATEGY
    assert (result.outcome.created, result.failed, result.fetched) == (10_000, 0, 10_000)
    assert result.api["calls"] == 101  # 100 PF pages of 100, one (empty) ES page; PJ never read
    assert_reconciled(sim, store, "contacts")
    assert store.count("companies") == 0

    # Incremental run after creates, updates and deletes in GestaoClick: the full scan applies only those.
    created = sim.create("contacts", 25)
    changed = sim.modify("contacts", 40)
    deleted = sim.delete("contacts", 15)
    result = import_entity(sim, store, "contacts", partition_window())
    live_changed = set(changed) - set(deleted)
    assert result.outcome.created == len(set(created) - set(deleted))
    assert result.outcome.updated == len(live_changed - set(created))
    assert result.outcome.deleted == len(set(deleted) - set(created)) + 0
    assert result.outcome.unchanged == result.fetched - result.outcome.created - result.outcome.updated
    assert_reconciled(sim, store, "contacts")
    deleted_rows = store.linked_records("gestaoclick", "contacts", include_deleted=True)
    assert all(deleted_rows[i]["deleted_at"] is not None for i in set(deleted) - set(created))
