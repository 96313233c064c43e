"""Custom values live in the row's JSON ``custom`` column: an import writes its own keys and keeps the others."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from crm_pipelines.core.model import RemoteRecord
from crm_pipelines.storage.schema import contacts
from crm_pipelines_tests.mapping.round_trip import mapping_text

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _custom(store) -> dict:
    with store.engine.connect() as conn:
        return conn.execute(select(contacts.c.custom)).scalar_one()


def test_imports_merge_their_keys_into_the_custom_column(store, tmp_path):
    path = tmp_path / "hubspot.yaml"
    path.write_text(mapping_text("hubspot"))
    integration = store.integrations.update(store.integrations.default_for("hubspot"), settings={"mapping_file": str(path)})

    def version(minutes: int, color: str | None) -> RemoteRecord:
        return RemoteRecord("1", T0 + timedelta(minutes=minutes), {"email": "ana@exemplo.com.br", "custom.favorite_color": color, "custom.loyalty_tier": "gold"})

    assert store.apply_remote(integration, "contacts", [version(0, "blue")]).created == 1
    assert _custom(store) == {"favorite_color": "blue", "loyalty_tier": "gold"}
    with store.engine.begin() as conn:  # a key of the company's own application
        conn.execute(update(contacts).values(custom={"favorite_color": "blue", "loyalty_tier": "gold", "crm_score": 7}))
    assert store.apply_remote(integration, "contacts", [version(1, "green")]).updated == 1
    assert _custom(store) == {"favorite_color": "green", "loyalty_tier": "gold", "crm_score": 7}
    assert store.apply_remote(integration, "contacts", [version(2, None)]).updated == 1
    assert _custom(store) == {"loyalty_tier": "gold", "crm_score": 7}
    # What the provider holds now is what is stored: nothing to export.
    assert list(store.export_candidates(integration, "contacts")) == []
