"""Reading Bling changes for a time window without losing records.

Bling filters lists by ``dataAlteracaoInicial``/``dataAlteracaoFinal``: local time
(America/Sao_Paulo), whole seconds, both ends inclusive. The window sent is therefore
``[floor(lower), floor(upper)]`` in local time: a record changed in the same second as either
bound is read (perhaps twice, across two runs; the store compares by content, so the overlap
costs reads, never duplicates). Wider windows than a year are split (Bling refuses them).

Page-number paging has one hazard: when a record already passed leaves the result set while
the pages are read (it changed, so its dataAlteracao is now past the window, or it was
excluded), every later record moves one place up and the first record of each following page is
never seen. Bling's list order is not documented, so the reader does not rely on it: after the
last page it asks what changed since the scan began (one small query, plus one for excluded
contatos), and if any of those records was already seen on a page, it reads again from that
page on. Records added or changed during the scan are returned too (they are current).

List items of contatos and pedidos are summaries; fields the mapping needs that a summary lacks
(:func:`~crm_pipelines.providers.bling.mapping.detail_keys`) are read with ``GET /{path}/{id}``, one request per record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from crm_pipelines.core.jsonutil import dumps
from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.bling.api import ENTITY_SPECS, PAGE_MAX, BlingClient, to_local_text
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.bling.mapping import custom_ids, needs_detail, to_remote_record

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=365)
#: Re-reading after records left the result set mid-scan stops after this many rounds.
MAX_RESCANS = 5
#: The fingerprint of a record read from the excluded list (``criterio=2``).
EXCLUDED = -1


class BlingChangeReader:
    """Pages of canonical records changed in ``[lower, upper]`` for one entity."""

    def __init__(self, client: BlingClient, *, verify_pages: bool = True, clock_margin_s: float = 5.0, logger: logging.Logger | Any = None,
                 mapping: CompiledMapping | None = None) -> None:
        self.client = client
        self.mapping = mapping
        self._custom_ids: dict[str, dict[str, int]] = {}
        self.verify_pages = verify_pages
        self.clock_margin_s = clock_margin_s
        self.log = logger or log
        self.strategy = "list"
        self.rescans = 0
        self.detail_reads = 0

    @property
    def progress(self) -> BlingChangeReader:  # the importer reads ``progress.strategy``
        return self

    # ------------------------------------------------------------------ public

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Pages changed in ``[lower, upper]``. The full scan's pages carry their page number and ids
        as ``resume``: a full scan given it lists that page again (records that moved up onto it
        when earlier ones were excluded are not skipped) and goes on, reading only ids it lacks."""
        if lower is None:
            self.strategy = "list"
            resume = resume or {}
            yield from self._scan(entity, {}, start_page=int(resume.get("page") or 1), read=resume.get("ids") or ())
            return
        self.strategy = "delta"
        upper = upper or datetime.now(timezone.utc)
        start = lower
        while True:
            end = min(upper, start + MAX_WINDOW)
            params = {"dataAlteracaoInicial": to_local_text(start), "dataAlteracaoFinal": to_local_text(end)}
            yield from self._scan(entity, params)
            if end >= upper:
                return
            start = end  # the shared second is read twice rather than risked

    def archived(self, entity: str) -> Iterator[Page]:
        """Excluded contatos (``criterio=2``) as deletions. Deleted pedidos vanish from Bling's
        lists, so deals deletions arrive through webhooks and ``by_ids`` (404) only."""
        if not ENTITY_SPECS[entity].has_excluded:
            return
        for _, items in self.client.iter_pages(entity, {"criterio": 2}):
            yield Page(records=[RemoteRecord(str(item.get("id")), None, {}, archived=True) for item in items])

    def total(self, entity: str) -> int:
        """Live records, counted by paging (Bling's lists carry no total)."""
        return sum(len(items) for _, items in self.client.iter_pages(entity))

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """Current state of specific records. A 404, an excluded contato, or a contato of the
        other tipo (a contact event about a company) comes back as archived for this entity:
        it is not, or no longer, one of its records."""
        tipo = ENTITY_SPECS[entity].tipo
        for start in range(0, len(ids), PAGE_MAX):
            page = Page()
            for record_id in ids[start : start + PAGE_MAX]:
                obj = self.client.get_one(entity, record_id)
                if obj is None or str(obj.get("situacao") or "") == "E" or (tipo and obj.get("tipo") not in (None, tipo)):
                    page.records.append(RemoteRecord(str(record_id), None, {}, archived=True))
                    continue
                self._append(entity, obj, page)
            yield page

    # ------------------------------------------------------------------ scanning

    def _scan(self, entity: str, params: dict[str, Any], start_page: int = 1, read: Any = ()) -> Iterator[Page]:
        """Page through a list; then, as long as records read earlier changed meanwhile (page-number
        paging can then skip records), read again from the first page one of them was on.

        Bling's list items carry no modification time, so the changes since the scan began are listed
        with a few seconds of margin for the clocks: a record changed just before the scan is listed
        too. After the first check, a listed record counts only if it differs from what was read
        (or, excluded, was read live), so such records do not keep the scan re-reading.
        """
        began = datetime.now(timezone.utc) - timedelta(seconds=self.clock_margin_s)
        seen: dict[str, int] = dict.fromkeys(map(str, read), start_page)  # id -> page it was read on
        read_as: dict[str, int] = {}  # id -> fingerprint of the item as last read (EXCLUDED once seen excluded)
        for round_ in range(MAX_RESCANS + 1):
            for number, items in self.client.iter_pages(entity, params, start_page=start_page):
                fresh = []
                for item in items:
                    record_id = str(item.get("id"))
                    if record_id not in seen:
                        fresh.append(item)
                    seen[record_id] = number
                    read_as[record_id] = _fingerprint(item)
                if fresh:
                    page = self._page(entity, fresh)
                    page.resume = {"page": number, "ids": [str(item.get("id")) for item in items]}
                    yield page
            if not self.verify_pages:
                return
            since = {"dataAlteracaoInicial": to_local_text(began)}
            changed = {str(i.get("id")): i for _, items in self.client.iter_pages(entity, since) for i in items}
            now_as = {record_id: _fingerprint(item) for record_id, item in changed.items()}
            if ENTITY_SPECS[entity].has_excluded:
                for _, items in self.client.iter_pages(entity, since | {"criterio": 2}):
                    now_as.update((str(i.get("id")), EXCLUDED) for i in items)
            moved = [i for i, fingerprint in now_as.items() if i in seen and (round_ == 0 or read_as.get(i) != fingerprint)]
            read_as.update(now_as)
            unseen_changed = [item for record_id, item in changed.items() if record_id not in seen]
            if unseen_changed:
                for item in unseen_changed:
                    seen[str(item.get("id"))] = 0
                yield self._page(entity, unseen_changed)
            if not moved:
                return
            start_page = max(1, min(seen[i] for i in moved if seen[i] > 0) if any(seen[i] > 0 for i in moved) else 1)
            began = datetime.now(timezone.utc) - timedelta(seconds=self.clock_margin_s)
            self.rescans += 1
            self.log.info("bling/%s: %d records read earlier changed while the pages were read; reading again from page %d", entity, len(moved), start_page)
        self.log.warning("bling/%s: records kept changing during the scan; stopped re-reading after %d rounds (the next run covers the rest)", entity, MAX_RESCANS)

    def _page(self, entity: str, items: list[dict[str, Any]]) -> Page:
        page = Page()
        for item in items:
            if needs_detail(entity, item, self.mapping):
                self.detail_reads += 1
                full = self.client.get_one(entity, str(item.get("id")))
                if full is None:  # deleted between the list and the read
                    page.records.append(RemoteRecord(str(item.get("id")), None, {}, archived=True))
                    continue
                item = full
            self._append(entity, item, page)
        return page

    def custom_ids(self, entity: str) -> dict[str, int]:
        if entity not in self._custom_ids:
            self._custom_ids[entity] = custom_ids(self.client, entity, self.mapping)
        return self._custom_ids[entity]

    def _append(self, entity: str, obj: dict[str, Any], page: Page) -> None:
        mapped = to_remote_record(entity, obj, self.mapping, self.custom_ids(entity))
        if isinstance(mapped, RecordError):
            page.errors.append(mapped)
        else:
            page.records.append(mapped)


def _fingerprint(item: dict[str, Any]) -> int:
    """A list item's content, to tell whether a record changed since it was read."""
    return hash(dumps(item))


__all__ = ["BlingChangeReader"]
