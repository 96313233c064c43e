"""A database written by the single-account release upgrades in place to stores and integrations, losing nothing."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from crm_pipelines.core.model import FIELDS, RemoteRecord, content_hash
from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.migrate import upgrade
from crm_pipelines.storage.store import LocalStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def write_single_account_data(engine) -> None:
    """Rows as the previous release wrote them: everything keyed by provider name."""
    fields = {"email": "ana@exemplo.com.br", "first_name": "Ana", "last_name": "Souza"}
    digest = content_hash("contacts", fields, FIELDS["contacts"])
    with engine.begin() as conn:
        for i in range(1, 4):
            conn.execute(text("INSERT INTO contacts (id, email, first_name, last_name, created_at, updated_at) VALUES (:i, :e, 'Ana', 'Souza', :t, :t)"),
                         {"i": i, "e": f"ana{i}@exemplo.com.br" if i > 1 else "ana@exemplo.com.br", "t": T0})
        conn.execute(text("INSERT INTO companies (id, name, domain, created_at, updated_at) VALUES (1, 'Loja', 'loja.com.br', :t, :t)"), {"t": T0})
        conn.execute(text("INSERT INTO external_links (provider, entity, local_id, external_id, remote_updated_at, remote_hash, exported_hash, linked_at, last_seen_at) "
                          "VALUES ('hubspot', 'contacts', 1, '501', :t, :h, :h, :t, :t), ('bling', 'contacts', 2, '9', :t, NULL, NULL, :t, :t), "
                          "('hubspot', 'companies', 1, '77', :t, NULL, NULL, :t, :t)"), {"t": T0, "h": digest})
        conn.execute(text("INSERT INTO sync_state (provider, entity, synced_through, last_status) VALUES ('hubspot', 'contacts', :t, 'success'), ('bling', 'contacts', :t, 'success')"), {"t": T0})
        conn.execute(text("INSERT INTO rejects (provider, entity, direction, record_ref, category, message, attempts, first_seen_at, last_seen_at) "
                          "VALUES ('hubspot', 'contacts', 'export', '3', 'INVALID_EMAIL', 'bad', 1, :t, :t)"), {"t": T0})
        conn.execute(text("INSERT INTO export_intents (provider, entity, local_id, idempotency_key, content_hash, created_at) VALUES ('bling', 'contacts', 3, 'contacts:3', 'h', :t)"), {"t": T0})
        conn.execute(text("INSERT INTO webhooks (provider, event_id, object_type, object_id, received_at, raw_body) VALUES ('hubspot', 'e1', 'contact', '501', :t, '[]')"), {"t": T0})
        conn.execute(text("INSERT INTO conflicts (provider, entity, local_id, external_id, strategy, local_fields, remote_fields, detected_at) "
                          "VALUES ('hubspot', 'contacts', 1, '501', 'manual', '{}', '{}', :t)"), {"t": T0})
        conn.execute(text("INSERT INTO merges (entity, survivor_id, merged_id, policy, merged_fields, merged_at) VALUES ('contacts', 1, 4, 'manual', '{}', :t)"), {"t": T0})


def counts(engine) -> dict[str, int]:
    tables = ("contacts", "companies", "external_links", "sync_state", "rejects", "export_intents", "webhooks", "conflicts", "merges")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def test_single_account_database_becomes_the_default_store(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0007")
    write_single_account_data(engine)
    before = counts(engine)
    upgrade(engine)
    assert counts(engine) == before  # nothing lost

    store = LocalStore(engine)
    [default_store] = store.integrations.stores()
    assert default_store.key == "default"
    found = {i.provider: i for i in store.integrations.list()}
    assert set(found) == {"hubspot", "bling"} and all(i.from_env and i.key == "default" and i.store_id == default_store.id for i in found.values())
    with engine.connect() as conn:
        for table in ("external_links", "sync_state", "rejects", "export_intents", "webhooks", "conflicts"):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE integration_id IS NULL")).scalar_one() == 0, table
        assert conn.execute(text("SELECT count(*) FROM contacts WHERE store_id <> :s"), {"s": default_store.id}).scalar_one() == 0

    # Syncs continue where they were: the watermark, links, hashes, rejects and intents are the default integration's.
    assert store.sync_state("hubspot", "contacts").synced_through == T0
    assert store.linked_records("hubspot", "contacts")["501"]["id"] == 1
    unchanged = store.apply_remote("hubspot", "contacts", [RemoteRecord("501", T0, {"email": "ana@exemplo.com.br", "first_name": "Ana", "last_name": "Souza"})])
    assert unchanged.unchanged == 1 and unchanged.created == 0
    assert [r["record_ref"] for r in store.open_rejects("hubspot", "contacts", "export")] == ["3"]
    assert store.pending_intents("bling", "contacts") == {3: "contacts:3"}
    # A new record from the same provider links to the default store's row with its e-mail.
    linked = store.apply_remote("bling", "contacts", [RemoteRecord("10", T0, {"email": "ana3@exemplo.com.br"})])
    assert linked.linked == 1
    engine.dispose()
