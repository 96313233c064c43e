"""``crm-pipelines mapping``: files checked with the line and field at fault, one real record shown both
ways, custom fields listed from each provider's field-description endpoint."""

from __future__ import annotations

import pytest

from crm_pipelines.cli import main
from crm_pipelines.mapping import MappingError, load
from crm_pipelines.providers.registry import plugin
from crm_pipelines_tests.mapping.round_trip import FIELDS_OF, STAGES, TIERS, mapping_text, simulator


def test_errors_name_the_file_line_and_field(tmp_path):
    path = tmp_path / "hubspot.yaml"
    path.write_text("version: 1\nprovider: hubspot\nentities:\n  contacts:\n    - {remote: email, local: email}\n"
                    "    - {remote: favorite_color, local: custom.Favorite, transforms: [upper]}\n")
    with pytest.raises(MappingError) as caught:
        load("hubspot", path)
    message = str(caught.value)
    assert message.startswith(f"{path}:6: contacts field 'favorite_color': ")
    assert "transforms: unknown transform 'upper'; expected one of trim, lower" in message


@pytest.mark.parametrize("text, problem", [
    ("    - {remote: x, local: nickname}\n", "unknown local column 'nickname'"),
    ("    - {remote: x, local: email, constant: 1}\n", "a constant has no local column"),
    ("    - {remote: x, local: custom.a, transforms: [{value_map: {a: z, b: z}}]}\n", "could not be exported back"),
    ("    - {remote: x, local: custom.a}\n    - {remote: y, local: custom.a}\n", "custom.a is already imported from 'x' (line 5)"),
    ("    - {remote: x, local: custom.a, direction: sideways}\n", "direction"),
])
def test_invalid_fields_are_refused_at_load(tmp_path, text, problem):
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nprovider: hubspot\nentities:\n  contacts:\n" + text)
    line, name = (6, "y") if "already" in problem else (5, "x")
    with pytest.raises(MappingError, match=f"m.yaml:{line}: contacts field '{name}': .*" + problem.replace("(", r"\(").replace(")", r"\)")):
        load("hubspot", path)


def test_an_override_replaces_the_default_of_its_field_and_adds_the_others(tmp_path):
    path = tmp_path / "hubspot.yaml"
    path.write_text(mapping_text("hubspot"))
    contacts = {f.remote: f for f in load("hubspot", path).fields("contacts")}
    assert contacts["jobtitle"].transforms[0].name == "default"
    assert contacts["lead_channel"].direction == "export" and contacts["favorite_color"].local == "custom.favorite_color"
    assert "email" in contacts and len([f for f in contacts.values() if f.local == "job_title"]) == 1


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "pipedrive", "bling", "gestaoclick", "shopify"])
def test_cli_shows_tests_and_lists_fields(provider, tmp_path, monkeypatch, capsys):
    sim, limits = simulator(provider)
    sim.start()
    try:
        for name, value in {**plugin(provider).simulator_env(sim), **limits}.items():
            monkeypatch.setenv(name, value)
        path = tmp_path / "m.yaml"
        path.write_text(mapping_text(provider))
        database = f"sqlite:///{tmp_path / 'local.db'}"
        assert main(["mapping", "validate", provider, "--file", str(path), "--database", database]) == 0
        assert main(["mapping", "show", provider, "contacts", "--file", str(path)]) == 0
        shown = capsys.readouterr().out
        assert "custom.favorite_color" in shown and "constant(crm_pipelines)" in shown and "value_map(" in shown

        fields = FIELDS_OF[provider]
        if provider == "gestaoclick":  # no field-description endpoint: the command says where custom values go
            assert main(["mapping", "fields", provider, "contacts", "--database", database]) == 1
            assert "map any value to tag.KEY" in capsys.readouterr().err
        else:
            assert main(["mapping", "fields", provider, "contacts", "--database", database]) == 0
            listed = capsys.readouterr().out
            assert fields.color in listed and fields.tier in listed and fields.constant in listed

        # One real record: seeded by exporting a local contact with the mapping, then read back.
        from crm_pipelines.storage.store import LocalStore
        from crm_pipelines.sync.runner import export_now
        from crm_pipelines_tests.mapping.round_trip import add_contacts

        store = LocalStore.open(database)
        store.integrations.update(store.integrations.default_for(provider), settings={"mapping_file": str(path)})
        add_contacts(store, 3, fields.defaulted[1])
        assert export_now(provider, "contacts", store, shared=False).created == 3
        record_id = next(iter(store.linked_records(provider, "contacts")))
        store.dispose()
        assert main(["mapping", "test", provider, "contacts", "--record", record_id, "--database", database]) == 0
        out = capsys.readouterr().out
        assert "person0@example.com" in out and "Unknown" in out and "crm_pipelines" in out and "blue" in out
        assert fields.stages[0] in out and (STAGES if fields.lifecycle else TIERS)[0] in out  # the value map, both ways
    finally:
        sim.stop()


def test_integrations_set_refuses_a_file_that_cannot_be_used_and_keeps_a_good_one(tmp_path, capsys):
    from crm_pipelines.storage.store import LocalStore

    database = f"sqlite:///{tmp_path / 'local.db'}"
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("version: 1\nprovider: hubspot\nentities:\n  contacts:\n    - {remote: x, local: nickname}\n")
    good.write_text(mapping_text("hubspot"))
    assert main(["integrations", "set", "hubspot", "default", "--mapping-file", str(bad), "--database", database]) == 1
    assert f"{bad}:5: contacts field 'x': unknown local column 'nickname'" in capsys.readouterr().err
    assert main(["integrations", "set", "hubspot", "default", "--mapping-file", str(good), "--match-by-phone", "on", "--database", database]) == 0
    store = LocalStore.open(database)
    settings = store.integrations.default_for("hubspot").settings
    assert (settings.mapping_file, settings.match_by_phone) == (str(good), True)
    store.dispose()
