"""The record store every simulator keeps its objects in.

A :class:`Record` holds its id, creation and modification times, deletion time (soft deletes) and
a dict of values; times are numbers in whatever unit the provider uses (ms or s). The store keeps
the live ids in order (ids are allocated increasing), the soft-deleted ids, an index of live
records by ``(modified, id)`` for delta windows, and lazily built indexes of values (lower-cased,
for e-mails and external ids). ``on_change(action, record, previous)`` is told of every
``create``, ``update`` (``previous`` holds the old values of what changed; providers report a
write that changed nothing too) and ``delete``.

Not thread-safe by itself; the simulator holds its lock around API handlers and test helpers.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

Values = dict[str, Any]
Indexer = Callable[["Record", str], Any]


class Record:
    __slots__ = ("id", "created", "updated", "deleted", "values")

    def __init__(self, id_: Any, created: int, updated: int, values: Values) -> None:
        self.id = id_
        self.created = created
        self.updated = updated
        self.deleted: int | None = None
        self.values = values

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def _values_of(record: Record, name: str) -> Any:
    return record.values.get(name)


class RecordStore:
    """Records of one object type. Ids come from ``first_id`` upwards (with seeded gaps of up to
    two when ``gaps`` is an RNG), shaped by ``format_id``; ``indexed`` names the values that can
    be looked up (``indexer`` reads them from a record; lists index every element)."""

    def __init__(self, name: str, *, first_id: int = 1, gaps: random.Random | None = None, format_id: Callable[[int], Any] | None = None,
                 indexed: Iterable[str] = (), indexer: Indexer = _values_of) -> None:
        self.name = name
        self.rows: dict[Any, Record] = {}
        self.live_ids: list[Any] = []
        self.deleted_ids: list[Any] = []
        self.delta: list[tuple[int, Any]] = []
        self.on_change: Callable[[str, Record, Mapping[str, Any]], None] | None = None
        self.next_number, self._gaps, self._format = first_id, gaps, format_id
        self._indexer = indexer
        self._indexes: dict[str, dict[str, Any] | None] = dict.fromkeys(indexed)

    def allocate_id(self) -> Any:
        value = self.next_number
        self.next_number += 1 + (int(self._gaps.random() * 3) if self._gaps is not None else 0)
        return self._format(value) if self._format else value

    def get(self, record_id: Any) -> Record | None:
        return self.rows.get(record_id)

    def live(self, record_id: Any) -> Record | None:
        record = self.rows.get(record_id)
        return record if record is not None and record.deleted is None else None

    def select(self, deleted: bool = False) -> Iterator[Record]:
        """Live (or soft-deleted) records in id order."""
        return map(self.rows.__getitem__, self.deleted_ids if deleted else self.live_ids)

    def count(self, deleted: bool = False) -> int:
        return len(self.deleted_ids if deleted else self.live_ids)

    def page_after(self, after: Any, limit: int, deleted: bool = False) -> tuple[list[Record], Any]:
        """Up to ``limit`` records with id >= ``after``, and the id that starts the next page."""
        ids = self.deleted_ids if deleted else self.live_ids
        start = bisect.bisect_left(ids, after)
        following = ids[start + limit] if start + limit < len(ids) else None
        return [self.rows[i] for i in ids[start : start + limit]], following

    def delta_bounds(self, low: int, high: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` in :attr:`delta` of live records modified in ``[low, high]``."""
        return bisect.bisect_left(self.delta, (low,)), bisect.bisect_left(self.delta, (high + 1,))

    def between(self, low: int, high: int) -> list[Record]:
        """Live records modified in ``[low, high]``, ordered by (modified, id)."""
        start, stop = self.delta_bounds(low, high)
        return [self.rows[i] for _, i in self.delta[start:stop]]

    def find_all(self, name: str, value: Any) -> tuple[Any, ...]:
        """Ids of live records whose ``name`` equals ``value`` (case-insensitive)."""
        found = self._index(name).get(str(value).casefold())
        return () if found is None else tuple(sorted(found)) if isinstance(found, set) else (found,)

    def find(self, name: str, value: Any) -> Record | None:
        ids = self.find_all(name, value)
        return self.rows[ids[0]] if ids else None

    def sample(self, rng: random.Random, n: int) -> list[Record]:
        return [self.rows[i] for i in rng.sample(self.live_ids, min(n, len(self.live_ids)))]

    def seed(self, records: Iterable[Record]) -> None:
        """Add generated records in bulk (no change notifications)."""
        for record in records:
            self.rows[record.id] = record
            self.live_ids.append(record.id)
            self.delta.append((record.updated, record.id))
        self.live_ids.sort()
        self.delta.sort()

    def insert(self, values: Values, created: int, updated: int | None = None, *, record_id: Any = None) -> Record:
        record = Record(self.allocate_id() if record_id is None else record_id, created, created if updated is None else updated, values)
        self.rows[record.id] = record
        if not self.live_ids or record.id > self.live_ids[-1]:
            self.live_ids.append(record.id)
        else:
            bisect.insort(self.live_ids, record.id)
        bisect.insort(self.delta, (record.updated, record.id))
        self._reindex(record, add=True)
        self._notify("create", record, {})
        return record

    def update(self, record: Record, changes: Mapping[str, Any], now: int | None) -> dict[str, Any]:
        """Apply ``changes`` (and move the record to ``now`` unless ``None``); returns the old values of what changed."""
        previous = {name: record.values.get(name) for name, value in changes.items() if record.values.get(name) != value}
        self._reindex(record, add=False)
        record.values.update(changes)
        self._reindex(record, add=True)
        if now is not None:
            self.touch(record, now)
        self._notify("update", record, previous)
        return previous

    def touch(self, record: Record, now: int) -> None:
        """Set the modification time, keeping the delta index in order."""
        if record.deleted is None:
            self._drop(self.delta, (record.updated, record.id))
            bisect.insort(self.delta, (now, record.id))
        record.updated = now

    def delete(self, record: Record, now: int, *, hard: bool = False) -> None:
        """Soft-delete (kept, listed as deleted) or remove ``record``."""
        if record.deleted is not None and not hard:
            return
        if record.deleted is None:
            self._reindex(record, add=False)
            self._drop(self.delta, (record.updated, record.id))
            self._drop(self.live_ids, record.id)
        else:
            self._drop(self.deleted_ids, record.id)
        if hard:
            del self.rows[record.id]
        else:
            record.deleted = now
            bisect.insort(self.deleted_ids, record.id)
        self._notify("delete", record, {})

    def _notify(self, action: str, record: Record, previous: Mapping[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(action, record, previous)

    @staticmethod
    def _drop(ordered: list, item: Any) -> None:
        position = bisect.bisect_left(ordered, item)
        if position < len(ordered) and ordered[position] == item:
            del ordered[position]

    def _keys(self, record: Record, name: str) -> list[str]:
        value = self._indexer(record, name)
        return [str(v).casefold() for v in (value if isinstance(value, (list, tuple, set)) else (value,)) if v not in (None, "")]

    def _index(self, name: str) -> dict[str, Any]:
        index = self._indexes[name]
        if index is None:
            index = self._indexes[name] = {}
            for record_id in self.live_ids:
                for key in self._keys(self.rows[record_id], name):
                    self._put(index, key, record_id)
        return index

    @staticmethod
    def _put(index: dict[str, Any], key: str, record_id: Any) -> None:
        held = index.get(key)
        if held is None:
            index[key] = record_id
        elif isinstance(held, set):
            held.add(record_id)
        elif held != record_id:
            index[key] = {held, record_id}

    def _reindex(self, record: Record, *, add: bool) -> None:
        for name, index in self._indexes.items():
            if index is None:
                continue
            for key in self._keys(record, name):
                if add:
                    self._put(index, key, record.id)
                    continue
                held = index.get(key)
                if isinstance(held, set):
                    held.discard(record.id)
                    if len(held) == 1:
                        index[key] = held.pop()
                elif held == record.id:
                    del index[key]
