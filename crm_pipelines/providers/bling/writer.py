"""Writing local records to Bling, one request per record (Bling has no batch create/update).

* **Matching** before creating: contacts and companies by CPF/CNPJ, then by e-mail. Bling filters
  a list by one ``numeroDocumento`` at a time, but a list page holds 100 contatos with their
  documents: a batch reads the account's pages (an :class:`AccountIndex`, kept for the writer's
  run and continued by the next batch) instead of one look-up per record, as long as the pages
  cost no more than the per-record look-ups would. Once the index holds the whole account,
  matching a document costs nothing. What the index cannot answer (a large account not read yet,
  an e-mail, which list summaries do not carry) is looked up per record as before: the
  ``numeroDocumento`` filter, then the ``pesquisa`` text search confirmed against the e-mail.
* **Creating** carries the idempotency key ``<entity>:<local id>`` in the contato's ``codigo`` or
  the pedido's ``numeroLoja``. After a crash, :meth:`BlingWriter.find_by_keys` finds what was
  created with ``pesquisa`` (contatos; a substring search, so every page of hits is read and the
  hit's ``codigo`` must equal the key) or the
  ``numerosLojas[]`` filter (pedidos, up to 50 keys a request).
* **Updating**: Bling's PUT replaces the whole record, so the current record is read first and
  the mapped fields are laid over it (fields this project does not manage survive).
* Pedidos need a customer; orders created here use the account's "Consumidor Final" contato.

Requests are paced by the client's 3-per-second limiter; concurrency would not raise that
ceiling, so records are sent one after another. A validation error (400, with per-field messages)
rejects that record only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.providers.bling.api import PAGE_MAX, BlingClient
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.bling.mapping import KEY_FIELD, custom_ids, document, to_payload
from crm_pipelines.sync.writes import BatchRejected, OutgoingRecord, WriteResult, idempotency_key

KEYS_PER_LOOKUP = 50


@dataclass
class AccountIndex:
    """Live contatos of one tipo read from list pages: ids by document digits (and by e-mail when
    the list carries it); ``complete`` once the last page was read."""

    by_document: dict[str, str] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    #: Given up: the account has more pages than the first batch's look-ups would have cost.
    abandoned: bool = False
    #: The list pages carry e-mails (full list items), so the index answers e-mails too.
    lists_emails: bool = False
    pages_read: int = 0

    def add(self, item: dict[str, Any], *, listed: bool = True) -> None:
        if item.get("situacao") == "E":
            return
        if listed and "email" in item:
            self.lists_emails = True
        digits = re.sub(r"\D", "", str(item.get("numeroDocumento") or ""))
        if digits:
            self.by_document.setdefault(digits, str(item["id"]))
        email = str(item.get("email") or "").strip().lower()
        if email:
            self.by_email.setdefault(email, str(item["id"]))


class BlingWriter:
    """Single-record writes and look-ups for one Bling account."""

    batch_size = 25  # records saved locally after each group (one request each)
    make_record = OutgoingRecord
    Rejected = BatchRejected

    def __init__(self, client: BlingClient, *, read_before_update: bool = True, mapping: CompiledMapping | None = None) -> None:
        self.client = client
        self.mapping = mapping
        self._custom_ids: dict[str, dict[str, int]] = {}
        self.read_before_update = read_before_update
        self._consumidor_final: str | None = None
        self._indexes: dict[str, AccountIndex] = {}

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        try:
            self._payload(entity, fields, default_contato_id="1")
        except ValueError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------------ matching

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        if entity not in ("contacts", "companies"):
            return {}
        documents = {record.local_id: _digits_or_none(record.fields.get("document")) for record in records}
        index = self._index(entity, budget=sum(1 for digits in documents.values() if digits))
        matches: dict[int, str] = {}
        taken: set[str] = set()
        for record in records:
            digits = documents[record.local_id]
            if index.complete:
                found = index.by_document.get(digits) if digits else None
            else:
                found = self._by_document(entity, digits)
            if found is None and entity == "contacts":
                email = str(record.fields.get("email") or "").strip().lower()
                found = index.by_email.get(email) if index.complete and index.lists_emails else self._by_email(entity, email)
            if found is not None and found not in taken:
                matches[record.local_id] = found
                taken.add(found)
        return matches

    def _index(self, entity: str, budget: int) -> AccountIndex:
        """The account's contatos of this tipo, read by the first batch that needs look-ups if its
        pages cost no more than ``budget`` per-record look-ups (what the batch would spend without
        it); a larger account is given up for this run, so it costs at most one batch's worth."""
        index = self._indexes.setdefault(entity, AccountIndex())
        if index.complete or index.abandoned or budget == 0:
            return index
        while index.pages_read < budget:
            index.pages_read += 1
            items = self.client.list_page(entity, index.pages_read)
            for item in items:
                index.add(item)
            if len(items) < PAGE_MAX:
                index.complete = True
                return index
        index.abandoned = True
        return index

    def _by_document(self, entity: str, digits: str | None) -> str | None:
        if not digits:
            return None
        for _, items in self.client.iter_pages(entity, {"numeroDocumento": digits}):
            for item in items:
                if re.sub(r"\D", "", str(item.get("numeroDocumento") or "")) == digits and item.get("situacao") != "E":
                    return str(item["id"])
        return None

    def _by_email(self, entity: str, email: str) -> str | None:
        if not email:
            return None
        # ``pesquisa`` matches substrings of several fields: read every page of hits, keep an exact e-mail.
        for _, items in self.client.iter_pages(entity, {"pesquisa": email}):
            for item in items:
                candidate = item if "email" in item else self.client.get_one(entity, str(item.get("id"))) or {}
                if str(candidate.get("email") or "").strip().lower() == email and candidate.get("situacao") != "E":
                    return str(item["id"])
        return None

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        field_name = KEY_FIELD[entity]
        if entity == "deals":
            for start in range(0, len(keys), KEYS_PER_LOOKUP):
                chunk = list(keys[start : start + KEYS_PER_LOOKUP])
                for _, items in self.client.iter_pages(entity, {"numerosLojas[]": chunk}):
                    for item in items:
                        if item.get(field_name) in chunk:
                            found.setdefault(str(item[field_name]), str(item["id"]))
            return found
        for key in keys:
            # ``pesquisa`` matches substrings (``contacts:1`` finds ``contacts:10``...): read every hit, keep the exact one.
            for _, items in self.client.iter_pages(entity, {"pesquisa": key}):
                hit = next((item for item in items if str(item.get(field_name) or "") == key), None)
                if hit is not None:
                    found[key] = str(hit["id"])
                    break
        return found

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        contato = self._default_contato() if entity == "deals" else None
        for record in records:
            payload = self._payload(entity, record.fields, key=idempotency_key(entity, record.local_id), default_contato_id=contato)
            try:
                created = self.client.create(entity, payload)
                result.written[record.local_id] = (created, None, True)
                self._indexed(entity, created, payload)
            except (RetryableError, QuotaExhausted):
                raise
            except ProviderError as exc:
                self._reject_or_raise(exc, record, result)
        return result

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        for record in records:
            assert record.external_id
            payload = self._payload(entity, record.fields)
            try:
                if self.read_before_update:
                    current = self.client.get_one(entity, record.external_id)
                    if current is None:
                        result.rejected[record.local_id] = ("RESOURCE_NOT_FOUND", f"Bling record {record.external_id} no longer exists")
                        continue
                    payload = _overlay(current, payload)
                self.client.update(entity, record.external_id, payload)
                result.written[record.local_id] = (record.external_id, None, False)
            except (RetryableError, QuotaExhausted):
                raise
            except ProviderError as exc:
                self._reject_or_raise(exc, record, result)
        return result

    # ------------------------------------------------------------------ helpers

    def _payload(self, entity: str, fields: dict[str, Any], **options: Any) -> dict[str, Any]:
        if entity not in self._custom_ids:
            self._custom_ids[entity] = custom_ids(self.client, entity, self.mapping)
        return to_payload(entity, fields, mapping=self.mapping, custom_ids=self._custom_ids[entity], **options)

    def _indexed(self, entity: str, external_id: str, payload: dict[str, Any]) -> None:
        """A contato just created joins the account index (a later batch matches it without a call)."""
        index = self._indexes.get(entity)
        if index is not None and entity in ("contacts", "companies"):
            index.add({"id": external_id, "numeroDocumento": payload.get("numeroDocumento"), "email": payload.get("email")}, listed=False)

    def _default_contato(self) -> str:
        if self._consumidor_final is None:
            self._consumidor_final = self.client.consumidor_final_id()
        return self._consumidor_final

    @staticmethod
    def _reject_or_raise(exc: ProviderError, record: OutgoingRecord, result: WriteResult) -> None:
        if exc.status in (400, 404, 409, 422):
            result.rejected[record.local_id] = (exc.category or f"HTTP_{exc.status}", exc.provider_message)
            return
        raise exc


_READ_ONLY = ("id", "numero", "totalProdutos", "total", "parcelas", "notaFiscal")


def _overlay(current: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The current record with the mapped fields laid over it (nested dicts merged)."""
    merged = {k: v for k, v in current.items() if k not in _READ_ONLY}
    for key, value in payload.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _overlay_dict(merged[key], value)
        else:
            merged[key] = value
    return merged


def _overlay_dict(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _overlay_dict(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _digits_or_none(value: Any) -> str | None:
    try:
        return document(value)
    except ValueError:
        return None


__all__ = ["AccountIndex", "BatchRejected", "BlingWriter", "OutgoingRecord", "WriteResult", "idempotency_key"]
