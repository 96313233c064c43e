"""The phone as a further identity key: where an integration enables it, a provider record links to the
store's unlinked local record with the same number (E.164, however the local one was written)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert, select

from crm_pipelines.core.model import RemoteRecord
from crm_pipelines.storage.schema import contacts

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _local(store, store_id: int, phone: str, email: str | None = None) -> int:
    with store.engine.begin() as conn:
        return conn.execute(insert(contacts).values(store_id=store_id, phone=phone, email=email, first_name="Ana", job_title="Gerente",
                                                    created_at=T0, updated_at=T0).returning(contacts.c.id)).scalar_one()


def _remote(external_id: str, phone: str, email: str) -> RemoteRecord:
    return RemoteRecord(external_id, T0, {"email": email, "first_name": "Ana", "last_name": "Souza", "phone": phone})


def test_records_link_by_phone_only_where_enabled_and_only_within_the_store(store):
    registry = store.integrations
    loja_a, loja_b = registry.add_store("loja_a"), registry.add_store("loja_b")
    by_phone = registry.add("hubspot", store="loja_a", key="loja_a", connection={"access_token": {"env": "HUBSPOT_ACCESS_TOKEN"}}, settings={"match_by_phone": True})
    without = registry.add("hubspot", store="loja_b", key="loja_b", connection={"access_token": {"env": "HUBSPOT_ACCESS_TOKEN"}})
    written = {"(11) 98765-4321": "+5511987654321", "+55 11 3456-7890": "+551134567890", "11 2345 6789": "+551123456789"}
    in_a = {phone: _local(store, loja_a.id, phone) for phone in written}
    in_b = _local(store, loja_b.id, "(11) 98765-4321")
    other_email = _local(store, loja_a.id, "(21) 99876-5432", email="someone@else.com")

    records = [_remote(str(n), e164, f"p{n}@provider.com") for n, e164 in enumerate(written.values())]
    outcome = store.apply_remote(by_phone, "contacts", [*records, _remote("9", "+5521998765432", "other@provider.com")])
    assert (outcome.linked, outcome.created) == (4, 0)
    links = {ext: row["id"] for ext, row in store.linked_records(by_phone, "contacts").items()}
    assert links == {"0": in_a["(11) 98765-4321"], "1": in_a["+55 11 3456-7890"], "2": in_a["11 2345 6789"], "9": other_email}
    with store.engine.connect() as conn:
        kept = dict(conn.execute(select(contacts.c.id, contacts.c.job_title).where(contacts.c.id.in_(links.values()))).all())
    assert set(kept.values()) == {"Gerente"}  # linking only links

    # Off by default: the same number in another store's integration creates a record.
    outcome = store.apply_remote(without, "contacts", [_remote("0", "+5511987654321", "p0@provider.com")])
    assert (outcome.linked, outcome.created) == (0, 1)
    assert store.linked_records(without, "contacts")["0"]["id"] != in_b
