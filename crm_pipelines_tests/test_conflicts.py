"""Conflicts: a record changed locally and at the provider since its last sync."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import RemoteRecord
from crm_pipelines.storage.conflicts import ConflictLedger, ConflictPolicy
from crm_pipelines.storage.schema import contacts

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def remote(first_name, last_name="Silva", at=T0):
    return RemoteRecord("501", at, {"email": "joao@exemplo.com.br", "first_name": first_name, "last_name": last_name})


def edit_locally(store, local_id, at, **values):
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == local_id).values(**values, updated_at=at))


def local_row(store, local_id):
    with store.engine.connect() as conn:
        return conn.execute(select(contacts).where(contacts.c.id == local_id)).one()


def both_sides_changed(store, *, local_at, remote_at):
    store.apply_remote("hubspot", "contacts", [remote("João")])
    local_id = store.linked_records("hubspot", "contacts")["501"]["id"]
    edit_locally(store, local_id, local_at, first_name="João Local")
    outcome = store.apply_remote("hubspot", "contacts", [remote("João Remoto", at=remote_at)])
    return local_id, outcome


def exported_ids(store):
    return [c.local_id for c in store.export_candidates("hubspot", "contacts")]


def test_provider_wins(open_store):
    store = open_store("provider_wins")
    local_id, outcome = both_sides_changed(store, local_at=T0 + timedelta(minutes=5), remote_at=T0 + timedelta(minutes=1))
    assert outcome.conflicts == 1 and outcome.updated == 1
    assert local_row(store, local_id).first_name == "João Remoto"
    assert exported_ids(store) == []
    [decision] = ConflictLedger(store.engine).list(include_resolved=True)
    assert (decision["decision"], decision["resolved_by"]) == ("provider", "auto:provider_wins")
    assert decision["local_fields"]["first_name"] == "João Local" and decision["remote_fields"]["first_name"] == "João Remoto"


def test_local_wins_and_goes_out_with_the_next_export(open_store):
    store = open_store("hubspot=local_wins")
    local_id, outcome = both_sides_changed(store, local_at=T0, remote_at=T0 + timedelta(minutes=1))
    assert outcome.conflicts == 1 and outcome.updated == 0
    assert local_row(store, local_id).first_name == "João Local"
    assert exported_ids(store) == [local_id]
    assert ConflictLedger(store.engine).list(include_resolved=True)[0]["decision"] == "local"


@pytest.mark.parametrize("local_minutes, remote_minutes, winner", [(10, 5, "João Local"), (5, 10, "João Remoto")])
def test_last_modified(open_store, local_minutes, remote_minutes, winner):
    store = open_store("*=last_modified")
    local_id, _ = both_sides_changed(store, local_at=T0 + timedelta(minutes=local_minutes), remote_at=T0 + timedelta(minutes=remote_minutes))
    assert local_row(store, local_id).first_name == winner


def test_manual_review_keeps_local_and_holds_the_export_until_resolved(open_store):
    store = open_store("hubspot.contacts=manual,*=provider_wins")
    local_id, outcome = both_sides_changed(store, local_at=T0, remote_at=T0 + timedelta(minutes=1))
    assert outcome.conflicts == 1
    assert local_row(store, local_id).first_name == "João Local"
    assert exported_ids(store) == []  # neither side is sent while someone has to decide
    ledger = ConflictLedger(store.engine)
    [waiting] = ledger.list()
    assert waiting["decision"] is None and waiting["strategy"] == "manual"

    # The provider changes it again before anyone looked: still one open conflict, newest version.
    store.apply_remote("hubspot", "contacts", [remote("João Remoto 2", last_name="Souza", at=T0 + timedelta(minutes=2))])
    [waiting] = ledger.list()
    assert waiting["remote_fields"]["first_name"] == "João Remoto 2"

    result = ledger.resolve(waiting["id"], "provider")
    assert result["decision"] == "provider"
    assert (local_row(store, local_id).first_name, local_row(store, local_id).last_name) == ("João Remoto 2", "Souza")
    assert exported_ids(store) == []  # the provider already has it
    assert ledger.list() == []
    with pytest.raises(ConfigurationError, match="already resolved"):
        ledger.resolve(waiting["id"], "local")


def test_manual_merge_field_by_field_is_exported(open_store):
    store = open_store("manual")
    local_id, _ = both_sides_changed(store, local_at=T0, remote_at=T0 + timedelta(minutes=1))
    store.apply_remote("hubspot", "contacts", [remote("João Remoto", last_name="Souza", at=T0 + timedelta(minutes=2))])
    ledger = ConflictLedger(store.engine)
    [waiting] = ledger.list()
    with pytest.raises(ConfigurationError, match="merge choices"):
        ledger.resolve(waiting["id"], "merge", fields={"first_name": "mine"})
    ledger.resolve(waiting["id"], "merge", fields={"first_name": "local", "last_name": "provider"})
    row = local_row(store, local_id)
    assert (row.first_name, row.last_name) == ("João Local", "Souza")
    [change] = list(store.export_candidates("hubspot", "contacts"))
    assert change.local_id == local_id and change.fields["first_name"] == "João Local"
    assert ledger.list(include_resolved=True)[0]["merge_choices"] == {"first_name": "local", "last_name": "provider"}


def test_no_conflict_when_only_one_side_changed(open_store):
    store = open_store("manual")
    store.apply_remote("hubspot", "contacts", [remote("João")])
    outcome = store.apply_remote("hubspot", "contacts", [remote("João Remoto", at=T0 + timedelta(minutes=1))])
    assert (outcome.conflicts, outcome.updated) == (0, 1)
    local_id = store.linked_records("hubspot", "contacts")["501"]["id"]
    edit_locally(store, local_id, T0 + timedelta(minutes=2), first_name="João Local")
    assert exported_ids(store) == [local_id]
    assert ConflictLedger(store.engine).list(include_resolved=True) == []


def test_policy_takes_the_most_specific_rule():
    policy = ConflictPolicy.parse("hubspot.contacts=manual, hubspot=local_wins, *=last_modified")
    assert policy.strategy_for("hubspot", "contacts") == "manual"
    assert policy.strategy_for("hubspot", "deals") == "local_wins"
    assert policy.strategy_for("bling", "deals") == "last_modified"
    assert ConflictPolicy.parse("").strategy_for("bling", "deals") == "provider_wins"
    with pytest.raises(ConfigurationError, match="unknown conflict strategy 'newest'"):
        ConflictPolicy.parse("hubspot=newest")


CUSTOM_MAPPING = """version: 1
provider: hubspot
entities:
  contacts:
    - {remote: loyalty_tier, local: custom.loyalty_tier}
    - {remote: favorite_color, local: custom.favorite_color}
"""


def test_resolving_writes_the_custom_fields_the_mapping_imports(db_url, tmp_path, capsys):
    """``conflicts resolve`` settles ``custom.KEY`` fields too: the chosen side lands in the custom column, other keys kept."""
    from crm_pipelines.cli import main
    from crm_pipelines.storage.store import LocalStore

    path = tmp_path / "hubspot.yaml"
    path.write_text(CUSTOM_MAPPING)
    store = LocalStore.open(db_url, conflict_policy=ConflictPolicy.parse("manual"))
    store.integrations.update(store.integrations.default_for("hubspot"), settings={"mapping_file": str(path)})

    def version(first_name, tier, color, at):
        return RemoteRecord("501", at, {"email": "joao@exemplo.com.br", "first_name": first_name, "last_name": "Silva",
                                        "custom.loyalty_tier": tier, "custom.favorite_color": color})

    store.apply_remote("hubspot", "contacts", [version("João", "bronze", "blue", T0)])
    local_id = store.linked_records("hubspot", "contacts")["501"]["id"]
    edit_locally(store, local_id, T0, first_name="João Local", custom={"loyalty_tier": "gold", "favorite_color": "green", "note": "kept"})
    store.apply_remote("hubspot", "contacts", [version("João Remoto", "silver", None, T0 + timedelta(minutes=1))])
    [waiting] = ConflictLedger(store.engine).list()
    assert waiting["local_fields"]["custom.loyalty_tier"] == "gold" and waiting["remote_fields"]["custom.loyalty_tier"] == "silver"
    store.dispose()

    assert main(["conflicts", "resolve", str(waiting["id"]), "--field", "first_name=local", "--field", "custom.loyalty_tier=provider",
                 "--field", "custom.favorite_color=provider", "--database", db_url]) == 0
    assert "resolved: merged" in capsys.readouterr().out
    store = LocalStore.open(db_url)
    row = local_row(store, local_id)
    assert row.first_name == "João Local" and row.custom == {"loyalty_tier": "silver", "note": "kept"}
    [change] = list(store.export_candidates("hubspot", "contacts"))
    assert change.fields["custom.loyalty_tier"] == "silver" and change.fields["custom.favorite_color"] is None
    store.dispose()
