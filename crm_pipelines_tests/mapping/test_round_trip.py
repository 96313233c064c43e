"""A mapping with two custom fields, a default, a constant and a value map round-trips 1,000 contacts
against each provider's simulator: local -> export -> provider -> import into another database ->
nothing left to export, with zero field differences (the default filling the blanks it should)."""

from __future__ import annotations

import pytest

from crm_pipelines.providers.registry import plugin
from crm_pipelines_tests.mapping.round_trip import FIELDS_OF, round_trip, simulator

COUNT = 1_000


def _provider_values(sim, provider: str) -> list[dict]:
    records = sim.records("persons" if provider == "pipedrive" else "contacts")
    return [r.get("properties", r) for r in records.values()]


def _constants(sim, provider: str, held: list[dict]) -> set:
    """The values the provider holds in the field the test mapping sends a constant to."""
    remote = FIELDS_OF[provider].constant
    if provider == "gestaoclick":
        from crm_pipelines.providers.gestaoclick.mapping import split_notes

        return {split_notes(r.get("observacoes"))[1].get("lead_channel") for r in held}
    if provider == "shopify":
        return {next((m["value"] for m in r["metafields"] if f"metafields.{m['namespace']}.{m['key']}" == remote), None) for r in held}
    if provider == "bling":
        return {next((v["valor"] for v in r.get("camposCustomizados") or [] if v["idCampoCustomizado"] == 103), None) for r in held}
    if provider != "pipedrive":
        return {r.get(remote) for r in held}
    from crm_pipelines.providers.pipedrive.api import PipedriveClient

    client = PipedriveClient(api_token=sim.config.tokens[0], base_url=sim.base_url)
    try:
        key = client.field_keys("contacts")[remote.removeprefix("custom_fields.").casefold()]
    finally:
        client.close()
    return {r["custom_fields"].get(key) for r in held}


@pytest.mark.parametrize("provider, database", [
    ("hubspot", "sqlite"), ("salesforce", "sqlite"), ("pipedrive", "sqlite"), ("bling", "sqlite"), ("gestaoclick", "sqlite"), ("shopify", "sqlite"),
    # The custom column on PostgreSQL (COPY and the unnest updates) once: the provider side is the same.
    pytest.param("hubspot", "postgres", marks=pytest.mark.postgres),
])
def test_a_custom_mapping_round_trips_1000_contacts_with_zero_differences(provider, database, request, tmp_path, monkeypatch):
    db_url = request.getfixturevalue(f"{database}_url")
    sim, limits = simulator(provider)
    sim.start()
    try:
        for name, value in {**plugin(provider).simulator_env(sim), **limits}.items():
            monkeypatch.setenv(name, value)
        trip = round_trip(provider, COUNT, tmp_path, db_url)
        assert (trip.sent.created, trip.sent.rejected) == (COUNT, 0)
        held = _provider_values(sim, provider)
        assert len(held) == COUNT
        assert _constants(sim, provider, held) == {"crm_pipelines"}
        assert (trip.got.outcome.created, trip.got.failed) == (COUNT, 0)
        assert trip.differences == []
        # What was imported is what the provider holds: nothing to send back.
        assert list(trip.target.export_candidates(provider, "contacts")) == []
        trip.dispose()
    finally:
        sim.stop()
