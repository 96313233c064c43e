"""Reading GestaoClick clientes and vendas: a full scan every run.

GestaoClick offers no modification-date filter (none is known for ``/clientes`` or ``/vendas``),
so every import pages through the whole list, ordered by id, and the local store applies only
what changed: a record whose content hash equals the stored one is counted as unchanged and not
rewritten. When records carry ``modificado_em`` it is used as their modification time, otherwise
the hash alone decides.

Because every successful run reads everything, it is a complete snapshot: ``complete_snapshot``
tells the importer that linked records missing from the scan may have been deleted. Page-number
paging can skip a record when another is deleted mid-scan (the rest shift one place), so the
importer reads the missing ids again with :meth:`by_ids` before deleting anything: a 404 (or a
cliente that became the other ``tipo_pessoa``) is a deletion, a record that answers is applied.

``vendas`` could be windowed on the sale date (``data_inicio``/``data_fim``), but a sale edited
today may carry any date, so the full scan is the only read that sees every change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.providers.gestaoclick.api import RESOURCES, GestaoClickClient, as_int
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.gestaoclick.mapping import belongs_to, to_remote_record
from crm_pipelines.sync.progress import ReadProgress

log = logging.getLogger(__name__)

STRATEGY = "full scan (no modification filter)"
STRATEGIES = ("auto", "list", "scan")




class GestaoClickChangeReader:
    """Yields every record of an entity, page by page (the window does not narrow the read)."""

    #: Every successful ``changes`` call read every record: absent linked records may be deleted.
    complete_snapshot = True

    def __init__(self, client: GestaoClickClient, *, strategy: str = "auto", logger: logging.Logger | Any = None, progress_every: int = 50,
                 mapping: CompiledMapping | None = None) -> None:
        self.mapping = mapping
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r} (GestaoClick is always read by a full scan)")
        self.client = client
        self.log = logger or log
        self.progress_every = progress_every
        self.progress = ReadProgress(strategy=STRATEGY)

    def _queries(self, entity: str) -> list[dict[str, str]]:
        spec = RESOURCES[entity]
        order = {"ordenacao": "id", "direcao": "asc"}
        return [dict(order, tipo_pessoa=tipo) for tipo in spec.tipos] or [order]

    def changes(self, entity: str, lower: datetime | None, upper: datetime | None, resume: Any = None) -> Iterator[Page]:
        """Every record of ``entity`` as it is now (``lower``/``upper`` cannot be applied: no such filter).

        Pages carry ``resume`` (the list, the page just read and its ids): a scan given it lists
        that page again (records that moved up onto it when earlier ones were deleted are not
        skipped) and goes on, returning only ids it lacks.
        """
        self.progress = ReadProgress(strategy=STRATEGY, started=time.monotonic())
        spec = RESOURCES[entity]
        seen: set[str] = set(map(str, (resume or {}).get("ids") or ()))
        first_query, first_page = (int(resume["query"]), int(resume["page"])) if resume else (0, 1)
        queries = self._queries(entity)
        for number, params in enumerate(queries):
            if number < first_query:
                continue
            current = first_page if number == first_query else 1
            for records, meta, following in self.client.iter_pages_from(spec.path, params, start=current):
                total = as_int(meta.get("total_registros"))
                if total is not None and self.progress.pages == 0:
                    self.progress.expected = total
                page = Page(resume={"query": number, "page": current, "ids": [str(record.get("id") or "").strip() for record in records]})
                current = following or current
                for record in records:
                    if not belongs_to(entity, record):
                        continue  # the tipo_pessoa filter was not applied: the other entity's record
                    mapped = to_remote_record(entity, record, self.mapping)
                    external_id = mapped.external_id
                    if external_id in seen:
                        continue  # paging shifted while reading: already taken
                    seen.add(external_id)
                    (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
                self._tick(len(records))
                yield page

    def archived(self, entity: str) -> Iterator[Page]:
        """Nothing: GestaoClick deletes records outright; the complete snapshot finds them instead."""
        return iter(())

    def by_ids(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """The current state of specific records (one GET each); gone ones come back as deletions."""
        spec = RESOURCES[entity]
        page = Page()
        for record_id in ids:
            record = self.client.get(spec.path, record_id)
            if record is None or not belongs_to(entity, record):
                page.records.append(RemoteRecord(str(record_id), None, {}, archived=True))
            else:
                mapped = to_remote_record(entity, record, self.mapping)
                (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
            if len(page.records) + len(page.errors) >= 100:
                yield page
                page = Page()
        if page.records or page.errors:
            yield page

    def total(self, entity: str) -> int:
        """How many records GestaoClick holds for ``entity`` (``meta.total_registros``, else by counting)."""
        spec = RESOURCES[entity]
        count = 0
        for params in self._queries(entity):
            pages = self.client.iter_pages(spec.path, params, kind="count")
            records, meta = next(pages)
            total = as_int(meta.get("total_registros"))
            if total is not None and all(belongs_to(entity, r) for r in records):
                count += total
                pages.close()
                continue
            count += sum(1 for r in records if belongs_to(entity, r))
            count += sum(sum(1 for r in rs if belongs_to(entity, r)) for rs, _ in pages)
        return count

    def _tick(self, count: int) -> None:
        self.progress.tick(count, self.log, self.progress_every)
