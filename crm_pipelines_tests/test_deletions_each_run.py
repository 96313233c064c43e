"""A record deleted at the provider is deleted locally by the next incremental run, not a day later."""

from __future__ import annotations

import pytest

from crm_pipelines.cli.demo import start_simulator
from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import import_now


@pytest.mark.parametrize("provider, entity", [("salesforce", "contacts"), ("shopify", "contacts"), ("pipedrive", "deals"), ("hubspot", "companies")])
def test_deletions_arrive_with_the_next_incremental_run(provider, entity, sqlite_url, monkeypatch):
    sim = start_simulator(provider, sizes=(40, 10, 12), extra=None)
    try:
        for key, value in plugin(provider).simulator_env(sim).items():
            monkeypatch.setenv(key, value)
        store = LocalStore.open(sqlite_url)
        first = import_now(provider, entity, store, shared=False)
        assert first.outcome.created == len(sim.records(entity))
        delete = getattr(sim, "delete", None) or sim.archive
        gone = delete(entity, 2)
        result = import_now(provider, entity, store, shared=False)
        assert not result.sweep_archived  # the regular incremental run, not the daily sweep
        assert result.outcome.deleted == len(gone) == 2
        assert set(store.linked_records(provider, entity)) == set(sim.records(entity))
        store.dispose()
    finally:
        sim.stop()
