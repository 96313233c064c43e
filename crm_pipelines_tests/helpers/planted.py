"""A store of many contacts linked to HubSpot, with known defects planted, written in bulk.

Store ``loja_a``: ``contacts`` contacts, all linked to its HubSpot integration, with
200 invalid phones, 50 pairs sharing an e-mail, 50 pairs sharing a CPF, 30 orphans (deleted at
HubSpot, live here) and 20 stale records (changed three days ago, never sent), plus 100 phones
written in local formats (valid: not to be counted) and 10 contacts also at its Pipedrive
account, 3 of them different there. Store ``loja_b`` holds copies of 100 e-mails of ``loja_a``
(never duplicates of ``loja_a``'s records: stores are apart). Rows are written with COPY on
PostgreSQL and executemany on SQLite, so 1,000,000 contacts take seconds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from crm_pipelines.storage.store import LocalStore

INVALID_PHONES = range(101, 301)
LOCAL_FORMAT_PHONES = range(301, 401)
EMAIL_COPIES = {copy: copy + 1000 for copy in range(1001, 1051)}
CPF_COPIES = {copy: copy + 1000 for copy in range(3001, 3051)}
ORPHANS = range(5001, 5031)
STALE = range(6001, 6021)
AT_PIPEDRIVE = range(7001, 7011)
DELETED_AT_PIPEDRIVE = (7006, 7007)
BEHIND_AT_PIPEDRIVE = (7008,)
OTHER_STORE_COPIES = range(1, 101)
#: The fewest contacts that hold every planted defect (the highest planted id).
MIN_CONTACTS = max(max(INVALID_PHONES), max(EMAIL_COPIES.values()), max(CPF_COPIES.values()), max(ORPHANS), max(STALE), max(AT_PIPEDRIVE))
INVALID_FORMS = ("(11) 1234", "98765-{n}", "{n} 12", "ramal {n}", "+55 00 98765 4321", "not a phone {n}")
SYNCED_HASH = "1" * 32


@dataclass(frozen=True)
class Planted:
    contacts: int
    store: str = "loja_a"
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def linked(self) -> int:
        """Live contacts with a live HubSpot link: every one but the orphans."""
        return self.contacts - len(ORPHANS)


def cpf(number: int) -> str:
    """A valid CPF whose first nine digits are ``number``."""
    digits = [int(c) for c in f"{number:09d}"]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits[:size], range(size + 1, 1, -1)))
        digits.append(total * 10 % 11 % 10)
    return "".join(map(str, digits))


def _contact(i: int) -> dict:
    email, document = f"c{i}@example.com", cpf(100_000_000 + i)
    if i in EMAIL_COPIES:
        email = f"c{EMAIL_COPIES[i]}@example.com"
    if i in CPF_COPIES:
        document = cpf(100_000_000 + CPF_COPIES[i])
    phone = f"+55119{i:08d}"
    if i in INVALID_PHONES:
        phone = INVALID_FORMS[i % len(INVALID_FORMS)].format(n=i)
    elif i in LOCAL_FORMAT_PHONES:
        phone = f"(11) 9{i:04d}-{i % 10000:04d}"
    return {"email": email, "phone": phone, "document": document, "company_name": f"Empresa {i}" if i % 2 == 0 else None}


class _Writer:
    """Bulk rows into one table: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.postgres = store.engine.dialect.name == "postgresql"

    def _value(self, value):
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def write(self, table: str, columns: tuple[str, ...], rows) -> None:
        raw = self.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.postgres:
                buffer = io.StringIO()
                for row in rows:
                    buffer.write("\t".join("\\N" if v is None else str(self._value(v)) for v in row) + "\n")
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(buffer.getvalue())
            else:
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                                   ([self._value(v) for v in row] for row in rows))
            raw.commit()
        finally:
            raw.close()


CONTACT_COLUMNS = ("id", "store_id", "email", "first_name", "last_name", "phone", "company_name", "lifecycle_stage", "document", "created_at", "updated_at")
LINK_COLUMNS = ("integration_id", "provider", "entity", "local_id", "external_id", "remote_updated_at", "remote_hash", "linked_at", "last_seen_at", "archived_at")


def plant(store: LocalStore, contacts: int = 100_000, now: datetime | None = None) -> Planted:
    """Write the planted store (see the module's docstring) into an empty database."""
    if contacts < MIN_CONTACTS:
        raise ValueError(f"the planted store needs at least {MIN_CONTACTS:,} contacts (its defects are planted up to that id), not {contacts:,}")
    planted = Planted(contacts, now=now or datetime.now(timezone.utc))
    now = planted.now
    synced, changed, last_sync = now - timedelta(hours=1), now - timedelta(days=3), now - timedelta(days=4)
    registry = store.integrations
    registry.add_store("loja_a")
    registry.add_store("loja_b")
    hubspot = registry.add("hubspot", store="loja_a", connection={"access_token": {"env": "PLANTED_HUBSPOT_TOKEN"}})
    pipedrive = registry.add("pipedrive", store="loja_a", connection={"api_token": {"env": "PLANTED_PIPEDRIVE_TOKEN"}}, settings={"export_enabled": False})
    other = registry.add("hubspot", store="loja_b", connection={"access_token": {"env": "PLANTED_HUBSPOT_B_TOKEN"}})
    writer = _Writer(store)

    def contact_rows():
        for i in range(1, contacts + 1):
            c = _contact(i)
            updated = changed if i in STALE else synced
            yield (i, hubspot.store_id, c["email"], f"Nome{i}", f"Sobrenome{i}", c["phone"], c["company_name"], "lead", c["document"], last_sync, updated)
        for n, i in enumerate(OTHER_STORE_COPIES):
            yield (contacts + 1 + n, other.store_id, f"c{i}@example.com", "Outra", "Loja", None, None, None, None, synced, synced)

    def link_rows():
        for i in range(1, contacts + 1):
            stale = i in STALE
            yield (hubspot.id, "hubspot", "contacts", i, str(i), synced, "0" * 32 if stale else SYNCED_HASH, last_sync,
                   last_sync if stale else synced, synced if i in ORPHANS else None)
        for i in AT_PIPEDRIVE:
            behind = i in BEHIND_AT_PIPEDRIVE
            yield (pipedrive.id, "pipedrive", "contacts", i, f"p{i}", synced, "0" * 32 if behind else SYNCED_HASH, last_sync,
                   last_sync if behind else synced, synced if i in DELETED_AT_PIPEDRIVE else None)
        for n in range(len(OTHER_STORE_COPIES)):
            yield (other.id, "hubspot", "contacts", contacts + 1 + n, f"b{n}", synced, SYNCED_HASH, synced, synced, None)

    writer.write("contacts", CONTACT_COLUMNS, contact_rows())
    writer.write("external_links", LINK_COLUMNS, link_rows())
    if writer.postgres:
        with store.engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT max(id) FROM contacts))"))
            conn.execute(text("ANALYZE contacts"))
            conn.execute(text("ANALYZE external_links"))
    return planted


__all__ = ["Planted", "cpf", "plant"]
