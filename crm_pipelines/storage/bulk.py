"""Set-based statements of the local database's write path: one class per database.

:class:`~crm_pipelines.storage.store.LocalStore` decides what a chunk of records does (newer wins,
content hashes, conflicts, identity matches); the classes here run its look-ups and writes for the
whole chunk at once, with statements whose text never changes (so each is parsed and prepared
once per connection, however many records a chunk holds):

* **SQLite**: look-ups take their values as one JSON array (``IN (SELECT value FROM
  json_each(?))``); writes are one-row statements run by ``executemany``. A chunk takes the write
  lock when it starts (``BEGIN IMMEDIATE``), so what it reads stays true until it commits, and new
  rows get their ids from ``max(id)`` without ``RETURNING``.
* **PostgreSQL**: look-ups take arrays (``= ANY(%s)``); new rows and links arrive by ``COPY``, with
  ids reserved from the table's sequence first; changed rows and links are one ``UPDATE … FROM
  unnest(arrays)`` each.

Every statement is limited to a :class:`Scope`, the one place that names the key columns of a
link (integration and entity) and of an entity row (its store), and their values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from crm_pipelines.core.jsonutil import dumps
from crm_pipelines.storage.schema import external_links
from crm_pipelines.storage.types import UTCDateTime

#: Columns of a link written when a local record is first tied to a provider record.
NEW_LINK_COLUMNS = ("local_id", "external_id", "remote_updated_at", "remote_hash", "exported_hash", "linked_at", "last_seen_at")


@dataclass(frozen=True)
class Scope:
    """Whose rows a statement reads and writes: the key columns of links and of entity rows.

    ``link_keys`` scope ``external_links`` (and the rest of the per-integration bookkeeping: intents,
    rejects); ``row_keys`` scope the entity tables (new rows carry them, identity matching stays
    within them: one store never matches another's records).
    """

    integration_id: int
    provider: str
    store_id: int
    entity: str

    @classmethod
    def of(cls, integration, entity: str) -> Scope:
        return cls(integration.id, integration.provider, integration.store_id, entity)

    @property
    def link_keys(self) -> dict[str, Any]:
        return {"integration_id": self.integration_id, "provider": self.provider, "entity": self.entity}

    @property
    def row_keys(self) -> dict[str, Any]:
        return {"store_id": self.store_id}


@dataclass(frozen=True, slots=True)
class LinkState:
    """What a link says about a provider record: its local row and what was last exchanged."""

    external_id: str
    local_id: int
    remote_updated_at: datetime | None
    remote_hash: str | None
    exported_hash: str | None
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class RowState:
    """A live local row's modification time and field values (``names`` of :meth:`BulkSql.rows`)."""

    local_id: int
    updated_at: datetime | None
    values: tuple


@dataclass(frozen=True, slots=True)
class LinkChange:
    """New values for the link of one provider record."""

    external_id: str
    remote_updated_at: datetime | None
    remote_hash: str | None
    archived_at: datetime | None = None


def _sqlite_timestamp(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), faster."""
    if value.tzinfo is timezone.utc:
        value = value.replace(tzinfo=None)
    elif value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _binder(dialect: Dialect, table: Table, name: str) -> Callable[[Any], Any] | None:
    column_type = table.c[name].type
    if dialect.name == "sqlite" and isinstance(column_type, UTCDateTime):
        return _sqlite_timestamp
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _reader(table: Table, name: str) -> Callable[[Any], Any] | None:
    column_type = table.c[name].type
    if isinstance(column_type, TypeDecorator):
        return lambda value: column_type.process_result_value(value, None)
    return None


Converters = tuple[tuple[int, Callable[[Any], Any]], ...]


def _positions(found: Iterable[tuple[int, Callable[[Any], Any] | None]]) -> Converters:
    return tuple((i, fn) for i, fn in found if fn is not None)


def _convert_rows(converters: Converters, rows: Iterable[Sequence[Any]]) -> list[tuple]:
    """Rows with the converted columns converted; a value repeated from the row before (the
    chunk's ``now``) is converted once."""
    last_in: list[Any] = [None] * len(converters)
    last_out: list[Any] = [None] * len(converters)
    out = []
    for row in rows:
        row = list(row)
        for slot, (i, fn) in enumerate(converters):
            value = row[i]
            if value is None:
                continue
            if value is last_in[slot]:
                row[i] = last_out[slot]
            else:
                row[i] = last_out[slot] = fn(value)
                last_in[slot] = value
        out.append(tuple(row))
    return out


def _bare(column: str) -> str:
    """SQL: ``column`` without the punctuation phones are written with (both databases)."""
    for mark in (" ", "-", ".", "(", ")", "+"):
        column = f"REPLACE({column}, '{mark}', '')"
    return column


class BulkSql:
    """The statements both databases share; placeholders, list parameters and bulk writes differ."""

    #: The placeholder of one value.
    one = "?"

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._binders: dict[tuple[Table, tuple[str, ...]], Converters] = {}
        self._readers: dict[tuple[Table, tuple[str, ...]], Converters] = {}

    # ------------------------------------------------------------------ values

    def encode(self, table: Table, names: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> list[tuple]:
        """Rows of ``names`` values as the driver takes them (timestamps naive UTC, amounts exact)."""
        key = (table, names)
        binders = self._binders.get(key)
        if binders is None:
            binders = self._binders[key] = _positions((i, _binder(self.dialect, table, n)) for i, n in enumerate(names))
        return _convert_rows(binders, rows) if binders else [tuple(row) for row in rows]

    def decode(self, table: Table, names: tuple[str, ...], row: Sequence[Any]) -> tuple:
        """A row read from the driver as the columns' Python values (aware timestamps, decimals)."""
        key = (table, names)
        readers = self._readers.get(key)
        if readers is None:
            readers = self._readers[key] = _positions((i, _reader(table, n)) for i, n in enumerate(names))
        return _convert_rows(readers, [row])[0] if readers else tuple(row)

    # ------------------------------------------------------------------ what differs

    def values_in(self, column: str) -> str:
        """SQL: ``column`` is one of the values of one list parameter."""
        raise NotImplementedError

    def list_param(self, values: Sequence[Any]) -> Any:
        """The parameter :meth:`values_in` takes."""
        raise NotImplementedError

    def start_write(self, conn: Connection) -> None:
        """Called first in a transaction that writes."""

    def commit_unawaited(self, conn: Connection) -> None:
        """Let this transaction's commit return before it reaches the disk (an import chunk, read again if lost;
        intents of upsert creates, which cannot duplicate a record if lost)."""

    def insert_rows(self, conn: Connection, scope: Scope, table: Table, names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> list[int]:
        """Insert rows of ``names`` values (and the scope's row keys); returns their new ids, in order."""
        raise NotImplementedError

    def _insert(self, conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
        raise NotImplementedError

    def _update(self, conn: Connection, table: Table, sets: dict[str, str], by: tuple[str, ...], columns: tuple[str, ...], rows: list[tuple], keys: dict[str, Any]) -> None:
        """Per row of ``columns`` values: set ``sets`` (column -> value column) where ``by`` columns and ``keys`` match."""
        raise NotImplementedError

    # ------------------------------------------------------------------ look-ups

    def _where(self, keys: dict[str, Any], alias: str = "") -> tuple[str, list[Any]]:
        prefix = f"{alias}." if alias else ""
        return " AND ".join(f"{prefix}{name} = {self.one}" for name in keys), list(keys.values())

    def _fetch(self, conn: Connection, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return conn.exec_driver_sql(sql, tuple(params)).all()

    def links(self, conn: Connection, scope: Scope, external_ids: Sequence[str]) -> dict[str, LinkState]:
        """The links of these provider records, by external id."""
        where, params = self._where(scope.link_keys)
        names = ("external_id", "local_id", "remote_updated_at", "remote_hash", "exported_hash", "archived_at")
        sql = f"SELECT {', '.join(names)} FROM {external_links.name} WHERE {where} AND {self.values_in('external_id')}"
        found = {}
        for row in self._fetch(conn, sql, [*params, self.list_param(list(external_ids))]):
            state = LinkState(*self.decode(external_links, names, row))
            found[state.external_id] = state
        return found

    def linked_local_ids(self, conn: Connection, scope: Scope, local_ids: Sequence[int]) -> set[int]:
        """Which of these local records are linked in ``scope`` already."""
        where, params = self._where(scope.link_keys)
        sql = f"SELECT local_id FROM {external_links.name} WHERE {where} AND {self.values_in('local_id')}"
        return {row[0] for row in self._fetch(conn, sql, [*params, self.list_param(list(local_ids))])}

    def local_links(self, conn: Connection, scope: Scope, local_ids: Sequence[int]) -> dict[int, str]:
        """The provider ids these local records are linked to in ``scope``."""
        where, params = self._where(scope.link_keys)
        sql = f"SELECT local_id, external_id FROM {external_links.name} WHERE {where} AND {self.values_in('local_id')}"
        return {int(row[0]): str(row[1]) for row in self._fetch(conn, sql, [*params, self.list_param(list(local_ids))])}

    def taken_external_ids(self, conn: Connection, scope: Scope, external_ids: Sequence[str]) -> set[str]:
        """Which of these provider records are linked in ``scope`` already."""
        where, params = self._where(scope.link_keys)
        sql = f"SELECT external_id FROM {external_links.name} WHERE {where} AND {self.values_in('external_id')}"
        return {row[0] for row in self._fetch(conn, sql, [*params, self.list_param(list(external_ids))])}

    def rows(self, conn: Connection, table: Table, names: tuple[str, ...], ids: Sequence[int], *, live_only: bool = True) -> dict[int, RowState]:
        """Rows by id: their ``updated_at`` and ``names`` values (only rows not deleted with ``live_only``)."""
        columns = ("id", "updated_at", *names)
        live = " AND deleted_at IS NULL" if live_only else ""
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {self.values_in('id')}{live}"
        found = {}
        for row in self._fetch(conn, sql, [self.list_param(list(ids))]):
            values = self.decode(table, columns, row)
            found[values[0]] = RowState(values[0], values[1], values[2:])
        return found

    def unlinked_matches(self, conn: Connection, scope: Scope, table: Table, wanted: dict[str, Sequence[Any]], *,
                         punctuation_free: Sequence[str] = ()) -> dict[str, list[tuple[int, Any]]]:
        """Live rows not linked in ``scope`` whose ``key`` is one of ``wanted[key]``: per key, (id, value) by id.

        Keys in ``punctuation_free`` are compared without spaces, dashes, dots, parentheses and
        ``+`` (phones as people write them). One statement for every key (a ``UNION ALL``), so
        matching costs one round trip.
        """
        keys = [key for key, values in wanted.items() if values]
        if not keys:
            return {}
        link_where, link_params = self._where(scope.link_keys, "l")
        row_where, row_params = self._where(scope.row_keys, "t")
        parts, params = [], []
        for position, key in enumerate(keys):
            parts.append(
                f"SELECT {position} AS k, t.id, t.{key} FROM {table.name} t WHERE {self.values_in(_bare('t.' + key) if key in punctuation_free else 't.' + key)}"
                " AND t.deleted_at IS NULL"
                + (f" AND {row_where}" if row_where else "")
                + f" AND NOT EXISTS (SELECT 1 FROM {external_links.name} l WHERE {link_where} AND l.local_id = t.id)"
            )
            params += [self.list_param(list(wanted[key])), *row_params, *link_params]
        found: dict[str, list[tuple[int, Any]]] = {key: [] for key in keys}
        for position, local_id, value in self._fetch(conn, " UNION ALL ".join(parts) + " ORDER BY 1, 2", params):
            found[keys[position]].append((local_id, value))
        return found

    # ------------------------------------------------------------------ writes

    def insert(self, conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows of ``columns`` values."""
        if rows:
            self._insert(conn, table, columns, self.encode(table, columns, rows))

    def delete_in(self, conn: Connection, table: Table, keys: dict[str, Any], column: str, values: Sequence[Any]) -> None:
        """Delete the rows of ``keys`` whose ``column`` is one of ``values``."""
        if values:
            where, params = self._where(keys)
            conn.exec_driver_sql(f"DELETE FROM {table.name} WHERE {where} AND {self.values_in(column)}", (*params, self.list_param(list(values))))

    def set_in(self, conn: Connection, table: Table, keys: dict[str, Any], column: str, values: Sequence[Any], sets: dict[str, Any], *, only_if: str = "") -> int:
        """Set ``sets`` on the rows of ``keys`` whose ``column`` is one of ``values`` (and ``only_if``); returns how many."""
        if not values:
            return 0
        names = tuple(sets)
        where, params = self._where(keys)
        conditions = " AND ".join(filter(None, [where, self.values_in(column), only_if]))
        sql = f"UPDATE {table.name} SET {', '.join(f'{name} = {self.one}' for name in names)} WHERE {conditions}"
        return conn.exec_driver_sql(sql, (*self.encode(table, names, [tuple(sets.values())])[0], *params, self.list_param(list(values)))).rowcount

    def insert_links(self, conn: Connection, scope: Scope, rows: Sequence[Sequence[Any]]) -> None:
        """Insert links, each a row of :data:`NEW_LINK_COLUMNS` values."""
        if rows:
            keys = scope.link_keys
            columns = (*keys, *NEW_LINK_COLUMNS)
            self._insert(conn, external_links, columns, self.encode(external_links, columns, [(*keys.values(), *row) for row in rows]))

    def update_rows(self, conn: Connection, table: Table, names: tuple[str, ...], rows: Sequence[tuple[int, Sequence[Any]]], now: datetime) -> None:
        """Set ``names`` and ``updated_at`` on rows given as (id, values), and make them live again."""
        columns = ("id", *names, "updated_at", "deleted_at")
        values = self.encode(table, columns, [(local_id, *row, now, None) for local_id, row in rows])
        self._update(conn, table, {name: name for name in columns[1:]}, ("id",), columns, values, {})

    def archive_rows(self, conn: Connection, table: Table, ids: Sequence[int], now: datetime) -> None:
        """Mark live rows deleted (deleted at the provider)."""
        self.set_in(conn, table, {}, "id", ids, {"deleted_at": now, "updated_at": now}, only_if="deleted_at IS NULL")

    def update_links(self, conn: Connection, scope: Scope, changes: Sequence[LinkChange], now: datetime) -> None:
        """New remote time, hash and archived mark on the links of these provider records."""
        columns = ("external_id", "remote_updated_at", "remote_hash", "archived_at", "last_seen_at")
        values = self.encode(external_links, columns, [(c.external_id, c.remote_updated_at, c.remote_hash, c.archived_at, now) for c in changes])
        self._update(conn, external_links, {name: name for name in columns[1:]}, ("external_id",), columns, values, scope.link_keys)

    def update_exported(self, conn: Connection, scope: Scope, rows: Sequence[tuple[int, str, datetime | None]], now: datetime) -> None:
        """After an export: per (local id, hash sent, provider's modification time), the link's state."""
        columns = ("local_id", "exported_hash", "remote_updated_at", "last_seen_at")
        values = self.encode(external_links, columns, [(local_id, digest, rua, now) for local_id, digest, rua in rows])
        sets = {"exported_hash": "exported_hash", "remote_hash": "exported_hash", "remote_updated_at": "remote_updated_at", "last_seen_at": "last_seen_at"}
        self._update(conn, external_links, sets, ("local_id",), columns, values, scope.link_keys)


class SqliteBulk(BulkSql):
    one = "?"

    def values_in(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def list_param(self, values: Sequence[Any]) -> Any:
        return dumps(values).decode()

    def start_write(self, conn: Connection) -> None:
        # The write lock from the start: what the chunk reads stays true until it commits, and
        # max(id) is the chunk's to extend.
        if not conn.connection.driver_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def insert_rows(self, conn, scope, table, names, rows):
        if not rows:
            return []
        keys = scope.row_keys
        columns = ("id", *names, *keys)
        first = (conn.exec_driver_sql(f"SELECT max(id) FROM {table.name}").scalar() or 0) + 1
        ids = list(range(first, first + len(rows)))
        self._insert(conn, table, columns, self.encode(table, columns, [(i, *row, *keys.values()) for i, row in zip(ids, rows)]))
        return ids

    def _insert(self, conn, table, columns, rows):
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)

    def _update(self, conn, table, sets, by, columns, rows, keys):
        if not rows:
            return
        where, params = self._where({name: None for name in by} | keys)
        order = [columns.index(value) for value in sets.values()] + [columns.index(name) for name in by]
        sql = f"UPDATE {table.name} SET {', '.join(f'{target} = ?' for target in sets)} WHERE {where}"
        conn.exec_driver_sql(sql, [tuple(row[i] for i in order) + tuple(params[len(by):]) for row in rows])


class PostgresBulk(BulkSql):
    one = "%s"

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._array_types: dict[tuple[Table, str], str] = {}

    def values_in(self, column: str) -> str:
        return f"{column} = ANY(%s)"

    def commit_unawaited(self, conn: Connection) -> None:
        # The commit returns without waiting for the disk, like SQLite's WAL with synchronous=NORMAL:
        # a server crash may lose the last chunks, whole, never half of one; the sync state saved
        # after them waits for the disk, and with it for every chunk before it, so a chunk lost
        # that way is read again by the next run.
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

    def list_param(self, values: Sequence[Any]) -> Any:
        return list(values)

    def insert_rows(self, conn, scope, table, names, rows):
        if not rows:
            return []
        keys = scope.row_keys
        columns = ("id", *names, *keys)
        # Ids from the table's own sequence, reserved first: COPY then needs no RETURNING.
        reserved = conn.exec_driver_sql("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table.name, len(rows)))
        ids = [row[0] for row in reserved]
        self._insert(conn, table, columns, self.encode(table, columns, [(i, *row, *keys.values()) for i, row in zip(ids, rows)]))
        return ids

    def _insert(self, conn, table, columns, rows):
        """``COPY`` on the transaction's own connection; errors become SQLAlchemy's, like every other statement's."""
        import psycopg

        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            if driver.broken or driver.closed:
                conn.invalidate(exc)
            raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc

    def _array_type(self, table: Table, name: str) -> str:
        key = (table, name)
        if key not in self._array_types:
            self._array_types[key] = table.c[name].type.dialect_impl(self.dialect).compile(dialect=self.dialect) + "[]"
        return self._array_types[key]

    def _update(self, conn, table, sets, by, columns, rows, keys):
        if not rows:
            return
        arrays = [list(column) for column in zip(*rows)]
        unnest = ", ".join(f"%s::{self._array_type(table, name)}" for name in columns)
        assignments = ", ".join(f"{target} = s.{value}" for target, value in sets.items())
        where, params = self._where(keys, "t")
        match = " AND ".join(f"t.{name} = s.{name}" for name in by) + (f" AND {where}" if where else "")
        sql = f"UPDATE {table.name} AS t SET {assignments} FROM unnest({unnest}) AS s({', '.join(columns)}) WHERE {match}"
        conn.exec_driver_sql(sql, (*arrays, *params))


def bulk_for(dialect: Dialect) -> BulkSql:
    """The statements for this database."""
    return PostgresBulk(dialect) if dialect.name == "postgresql" else SqliteBulk(dialect)


__all__ = ["BulkSql", "LinkChange", "LinkState", "NEW_LINK_COLUMNS", "RowState", "Scope", "bulk_for"]
