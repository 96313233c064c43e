"""Writing local records to GestaoClick, one record per call (there is no bulk endpoint).

* **Matching** before creating: clientes by CPF/CNPJ (``cpf_cnpj`` filter), then by e-mail
  (``email`` filter); each answer is checked on our side too (a filter the server ignored must
  not link the wrong record). Deals have no identity key.
* **Creating**: ``POST /clientes`` or ``POST /vendas``. The record carries its idempotency key
  ``<entity>:<local id>`` in the ``[crm_pipelines]`` tag line of ``observacoes``, a field that
  is read back on every list. After a crash, :meth:`find_by_keys` pages through the entity newest
  first (``ordenacao=id&direcao=desc``) until every pending key is found or the list ends, so a
  create that reached GestaoClick is linked instead of sent again. (No list filter searches
  ``observacoes``; ``codigo`` is GestaoClick's own sale number, so it is not used for keys.)
  Clientes with a CPF/CNPJ or e-mail are also found again by matching on the next run.
* **Updating**: ``GET`` then ``PUT /{path}/{id}``: the record is read first so that what the
  mapping does not cover (other addresses, the user's notes, product lines that already add up)
  is sent back unchanged, whether PUT replaces or merges.

Calls are paced by the client's 3-per-second limiter. Each record's outcome is reported on its
own: a 422 names the fields GestaoClick refused and goes to the reject ledger, the rest land.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from crm_pipelines.core.errors import ProviderError, RetryableError
from crm_pipelines.core.normalize import normalize_document, normalize_email
from crm_pipelines.providers.gestaoclick.api import RESOURCES, GestaoClickClient, as_int, describe_error
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.gestaoclick.mapping import belongs_to, check_outgoing, parse_timestamp, tag_key, to_payload
from crm_pipelines.sync.writes import BatchRejected, OutgoingRecord, WriteResult, idempotency_key

_DIGITS = str.maketrans("", "", ".-/ ")


def _identity(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The match keys of a local record: (``cpf_cnpj``, digits) first, then (``email``, lower-case)."""
    keys = []
    try:
        document = normalize_document(fields.get("document"))
    except ValueError:
        document = None
    if document:
        keys.append(("cpf_cnpj", document))
    email = normalize_email(fields.get("email"))
    if email:
        keys.append(("email", email))
    return keys


def _remote_identity(record: dict[str, Any]) -> list[tuple[str, str]]:
    keys = []
    for name in ("cpf", "cnpj"):
        digits = str(record.get(name) or "").translate(_DIGITS)
        if digits:
            keys.append(("cpf_cnpj", digits))
    email = normalize_email(record.get("email"))
    if email:
        keys.append(("email", email))
    return keys


class GestaoClickWriter:
    """Single-record writes and look-ups for one GestaoClick account."""

    batch_size = 100
    make_record = OutgoingRecord
    Rejected = BatchRejected

    def __init__(self, client: GestaoClickClient, *, deal_cliente_id: str | None = None, deal_vendedor_id: str | None = None,
                 mapping: CompiledMapping | None = None) -> None:
        self.mapping = mapping
        self.client = client
        self.deal_cliente_id = deal_cliente_id
        self.deal_vendedor_id = deal_vendedor_id
        self._situacoes: dict[str, str] | None = None
        self._indexes: dict[str, dict[tuple[str, str], str]] = {}
        self._lookups: dict[str, int] = {}
        self._scan_costs: dict[str, int] = {}

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        return check_outgoing(entity, fields)

    # ------------------------------------------------------------------ matching

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        """GestaoClick ids of existing clientes with the same CPF/CNPJ or e-mail as these unlinked ones.

        Without a bulk look-up, each record costs one or two filtered list calls. Once the calls
        spent (plus this batch's) would exceed a scan of every cliente of that type, the clientes
        are read once into an index and the rest of the export matches against it (never more
        than about twice the cheaper of the two).
        """
        if entity == "deals":
            return {}
        spec = RESOURCES[entity]
        wanted = [(r, _identity(r.fields)) for r in records]
        wanted = [(r, keys) for r, keys in wanted if keys]
        index = self._indexes.get(entity)
        if index is None and wanted:
            spent = self._lookups.get(entity, 0)
            if spent + len(wanted) >= self._scan_cost(entity):
                index = self._indexes[entity] = self._build_index(entity)
        matches: dict[int, str] = {}
        taken: set[str] = set()
        for record, keys in wanted:
            for name, value in keys:
                if index is not None:
                    found = index.get((name, value))
                    found = None if found in taken else found
                else:
                    self._lookups[entity] = self._lookups.get(entity, 0) + 1
                    found = self._find_one(entity, spec.path, name, value, taken)
                if found:
                    matches[record.local_id] = found
                    taken.add(found)
                    break
        return matches

    def _scan_cost(self, entity: str) -> int:
        """Calls a full read of the entity's clientes takes (one call to learn it, cached)."""
        if entity not in self._scan_costs:
            spec = RESOURCES[entity]
            pages = 0
            for tipo in spec.tipos:
                body = self.client.list_page(spec.path, {"tipo_pessoa": tipo}, 1, kind="match")
                meta = body.get("meta") or {}
                total = as_int(meta.get("total_registros"))
                per_page = as_int(meta.get("limite_por_pagina")) or max(len(body.get("data") or []), 1)
                pages += math.ceil(total / per_page) if total is not None else 10**9
            self._scan_costs[entity] = pages
        return self._scan_costs[entity]

    def _build_index(self, entity: str) -> dict[tuple[str, str], str]:
        spec = RESOURCES[entity]
        index: dict[tuple[str, str], str] = {}
        for tipo in spec.tipos:
            for records, _meta in self.client.iter_pages(spec.path, {"tipo_pessoa": tipo, "ordenacao": "id", "direcao": "asc"}, kind="match"):
                for record in records:
                    if belongs_to(entity, record) and record.get("id") is not None:
                        for key in _remote_identity(record):
                            index.setdefault(key, str(record["id"]))
        return index

    def _find_one(self, entity: str, path: str, name: str, value: str, taken: set[str]) -> str | None:
        body = self.client.list_page(path, {name: value}, 1, kind="match")
        for candidate in body.get("data") or []:
            if not isinstance(candidate, dict) or not belongs_to(entity, candidate):
                continue
            if name == "cpf_cnpj":
                same = value in (str(candidate.get("cpf") or "").translate(_DIGITS), str(candidate.get("cnpj") or "").translate(_DIGITS))
            else:
                same = str(candidate.get("email") or "").strip().lower() == value
            external_id = str(candidate.get("id") or "")
            if same and external_id and external_id not in taken:
                return external_id
        return None

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """GestaoClick ids of records created under these idempotency keys (newest-first scan, stops when all are found)."""
        wanted = set(keys)
        found: dict[str, str] = {}
        if not wanted:
            return found
        spec = RESOURCES[entity]
        for params in ([{"tipo_pessoa": t} for t in spec.tipos] or [{}]):
            for records, _meta in self.client.iter_pages(spec.path, {**params, "ordenacao": "id", "direcao": "desc"}, kind="match"):
                for record in records:
                    key = tag_key(record)
                    if key in wanted and key not in found:
                        found[key] = str(record.get("id"))
                if len(found) == len(wanted):
                    return found
        return found

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        for record in records:
            self._write_one(entity, record, result, created=True)
        return result

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        for record in records:
            self._write_one(entity, record, result, created=False)
        return result

    def _write_one(self, entity: str, record: OutgoingRecord, result: WriteResult, *, created: bool) -> None:
        spec = RESOURCES[entity]
        try:
            current = None
            if not created:
                current = self.client.get(spec.path, str(record.external_id), kind="read")
                if current is None:
                    result.rejected[record.local_id] = ("NOT_FOUND", f"{spec.path}/{record.external_id} no longer exists at GestaoClick")
                    return
            payload = to_payload(entity, record.fields, key=idempotency_key(entity, record.local_id) if created else None, current=current, mapping=self.mapping)
            if entity == "deals":
                self._deal_extras(record.fields, payload, created)
            if created:
                data = self.client.write("POST", spec.path, payload)
            else:
                data = self.client.write("PUT", f"{spec.path}/{record.external_id}", payload)
        except ValueError as exc:
            result.rejected[record.local_id] = ("INVALID_FIELD", str(exc))
            return
        except RetryableError:
            raise
        except ProviderError as exc:
            if exc.status in (400, 404, 409, 422):
                result.rejected[record.local_id] = (exc.category or f"HTTP_{exc.status}", exc.provider_message)
                return
            raise
        external_id = str(data.get("id") or record.external_id or "")
        if not external_id:
            result.rejected[record.local_id] = ("NO_ID", f"GestaoClick answered without an id: {describe_error(data) or str(data)[:200]}")
            return
        try:
            modified = parse_timestamp(data.get("modificado_em"))
        except ValueError:
            modified = None
        result.written[record.local_id] = (external_id, modified, created)
        index = self._indexes.get(entity)
        if created and index is not None:
            for key in _identity(record.fields):
                index.setdefault(key, external_id)

    def _deal_extras(self, fields: dict[str, Any], payload: dict[str, Any], created: bool) -> None:
        stage = fields.get("stage")
        if stage:
            situacao = self.situacoes().get(stage.casefold())
            if situacao:
                payload["situacao_id"] = situacao
            else:
                payload["nome_situacao"] = stage
        if created:
            if self.deal_cliente_id and "cliente_id" not in payload:
                payload["cliente_id"] = self.deal_cliente_id
            if self.deal_vendedor_id:
                payload["vendedor_id"] = self.deal_vendedor_id

    def situacoes(self) -> dict[str, str]:
        """Sale statuses, name (case-folded) -> id, read once (``GET /situacoes_vendas``); empty if unavailable."""
        if self._situacoes is None:
            self._situacoes = {}
            try:
                body = self.client.api.request("GET", "/situacoes_vendas", kind="read") or {}
            except RetryableError:
                raise
            except ProviderError:
                return self._situacoes
            for item in body.get("data") or []:
                if isinstance(item, dict) and item.get("nome") and item.get("id") is not None:
                    self._situacoes[str(item["nome"]).casefold()] = str(item["id"])
        return self._situacoes


__all__ = ["GestaoClickWriter", "OutgoingRecord", "BatchRejected", "WriteResult", "idempotency_key"]
