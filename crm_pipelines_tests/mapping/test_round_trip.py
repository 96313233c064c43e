"""A mapping with two custom fields, a default, a constant and a value map round-trips 1,000 contacts
against each provider's simulator: local -> export -> provider -> import into another database ->
nothing left to export, with zero field differences (the default filling the blanks it should)."""

from __future__ import annotations

import pytest

from crm_pipelines.mapping import compiled
from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now
from crm_pipelines_tests.mapping.round_trip import FIELDS_OF, add_contacts, differences, local_contacts, mapping_text

COUNT = 1_000


def _simulator(provider: str):
    if provider == "hubspot":
        from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator

        return HubSpotSimulator(HubSpotSimConfig(seed=16, contacts=0, companies=0, deals=0, burst_limit=10_000)), {"HUBSPOT_BURST_LIMIT": "10000"}
    if provider == "salesforce":
        from crm_pipelines.providers.salesforce.simulator import SalesforceSimConfig, SalesforceSimulator

        return SalesforceSimulator(SalesforceSimConfig(seed=16, contacts=0, companies=0, deals=0)), {}
    from crm_pipelines.providers.pipedrive.simulator import PipedriveSimConfig, PipedriveSimulator

    return PipedriveSimulator(PipedriveSimConfig(seed=16, persons=0, organizations=0, deals=0, burst_limit=100_000, search_burst_limit=100_000)), \
        {"PIPEDRIVE_BURST_LIMIT": "100000"}


def _with_mapping(url: str, provider: str, path: str) -> LocalStore:
    store = LocalStore.open(url)
    integration = store.integrations.default_for(provider)
    store.integrations.update(integration, settings={"mapping_file": path})
    return store


def _provider_values(sim, provider: str) -> list[dict]:
    records = sim.records("contacts") if provider != "pipedrive" else sim.records("persons")
    return [r.get("properties", r) for r in records.values()]


def _constants(sim, provider: str, held: list[dict]) -> set:
    """The values the provider holds in the field the test mapping sends a constant to."""
    remote = FIELDS_OF[provider].constant
    if provider != "pipedrive":
        return {r.get(remote) for r in held}
    from crm_pipelines.providers.pipedrive.api import PipedriveClient

    client = PipedriveClient(api_token=sim.config.tokens[0], base_url=sim.base_url)
    try:
        key = client.field_keys("contacts")[remote.removeprefix("custom_fields.").casefold()]
    finally:
        client.close()
    return {r["custom_fields"].get(key) for r in held}


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "pipedrive"])
def test_a_custom_mapping_round_trips_1000_contacts_with_zero_differences(provider, db_url, tmp_path, monkeypatch):
    sim, limits = _simulator(provider)
    sim.start()
    try:
        for name, value in {**plugin(provider).simulator_env(sim), **limits}.items():
            monkeypatch.setenv(name, value)
        path = tmp_path / f"{provider}.yaml"
        path.write_text(mapping_text(provider))
        defaulted = FIELDS_OF[provider].defaulted[1]
        names = compiled(provider, path).local_names("contacts")
        source = _with_mapping(f"sqlite:///{tmp_path / 'source.db'}", provider, str(path))
        add_contacts(source, COUNT, defaulted)

        sent = export_now(provider, "contacts", source, shared=False)
        assert (sent.created, sent.rejected) == (COUNT, 0)
        held = _provider_values(sim, provider)
        assert len(held) == COUNT
        assert _constants(sim, provider, held) == {"crm_pipelines"}

        target = _with_mapping(db_url, provider, str(path))  # imported into SQLite and PostgreSQL
        got = import_now(provider, "contacts", target, full=True, shared=False)
        assert (got.outcome.created, got.failed) == (COUNT, 0)

        expected = local_contacts(source, names)
        for values in expected.values():
            if values[defaulted] is None:
                values[defaulted] = "Unknown"
        assert differences(expected, local_contacts(target, names)) == []
        # What was imported is what the provider holds: nothing to send back.
        assert list(target.export_candidates(provider, "contacts")) == []
        source.dispose()
        target.dispose()
    finally:
        sim.stop()
