"""Writing local records to Pipedrive: one request per record, sent concurrently.

Pipedrive has no bulk create/update for persons, organizations or deals, so a 100-record batch
is sent as 100 single requests (``POST /api/v2/{entity}``, ``PATCH /api/v2/{entity}/{id}``) from a
small thread pool; the shared burst limiter and token budget pace them, so the pool runs at the
highest rate the plan allows. Each record gets its own outcome: a 4xx rejects that record only.

* **Idempotent creates**: every create carries ``<entity>:<local id>`` in the custom field
  ``crm_record_id``. After a crash, :meth:`PipedriveWriter.find_by_keys` finds records that did
  land, so they are linked instead of created again.
* **Matching** before creating: persons by e-mail, then CPF/CNPJ; organizations by domain, then
  CPF/CNPJ (custom fields). A handful of values is looked up with the search endpoint
  (``exact_match=true``, 40 tokens and one of 10 search slots per 2 s each); more than that, and
  the writer reads the entity's list once (500 records for 10 tokens) into an index of those keys,
  kept for the rest of the run. Above ``index_max_records`` records it stays with search.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.normalize import normalize_document, normalize_domain, normalize_email
from crm_pipelines.core.ratelimit import in_context
from crm_pipelines.providers.pipedrive.api import LIST_PAGE_MAX, PipedriveClient
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.pipedrive.mapping import IDEMPOTENCY_FIELD, FieldKeys, parse_timestamp, to_body
from crm_pipelines.sync.writes import BatchRejected, OutgoingRecord, WriteResult, idempotency_key

#: Match keys per entity, in the order they are tried: canonical field -> search field.
MATCH_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "contacts": (("email", "email"), ("document", "custom_fields")),
    "companies": (("domain", "custom_fields"), ("document", "custom_fields")),
    "deals": (),
}


def _document_forms(digits: str) -> list[str]:
    """How a CPF/CNPJ may be written in Pipedrive: digits and the usual punctuation."""
    if len(digits) == 11:
        return [digits, f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"]
    if len(digits) == 14:
        return [digits, f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"]
    return [digits]


def _normalizer(canonical: str) -> Callable[[Any], str | None]:
    def document(value: Any) -> str | None:
        try:
            return normalize_document(value)
        except ValueError:
            return None

    return {"email": normalize_email, "domain": normalize_domain, "document": document}.get(canonical, lambda v: None if v in (None, "") else str(v))


class _KeyIndex:
    """Match-key value -> Pipedrive id for one entity (the lowest id wins, as the oldest record)."""

    def __init__(self) -> None:
        self.by_field: dict[str, dict[str, str]] = {}

    def add(self, canonical: str, value: str | None, record_id: str) -> None:
        if value:
            self.by_field.setdefault(canonical, {}).setdefault(value, record_id)

    def get(self, canonical: str, value: str) -> str | None:
        return self.by_field.get(canonical, {}).get(value)


class PipedriveWriter:
    """Single-record writes (concurrent) and look-ups for one Pipedrive company."""

    batch_size = 100
    make_record = OutgoingRecord
    Rejected = BatchRejected

    def __init__(self, client: PipedriveClient, *, concurrency: int = 8, search_below: int = 5, index_max_records: int = 200_000,
                 mapping: CompiledMapping | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.client = client
        self.concurrency = concurrency
        self.search_below = search_below
        self.index_max_records = index_max_records
        self._keys: dict[str, FieldKeys] = {}
        self.mapping = mapping
        self._indexes: dict[str, _KeyIndex | None] = {}
        self._index_lock = threading.Lock()

    def keys(self, entity: str) -> FieldKeys:
        if entity not in self._keys:
            self._keys[entity] = FieldKeys.resolve(entity, self.client.field_keys(entity), self.mapping)
        return self._keys[entity]

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        """Why a record cannot be sent as it is (checked before any write), or None."""
        try:
            to_body(entity, fields, self.keys(entity), creating=True, mapping=self.mapping)
        except ValueError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------------ look-ups

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        """Pipedrive ids of existing records that are the same as these unlinked local ones."""
        matches: dict[int, str] = {}
        for canonical, search_field in MATCH_FIELDS[entity]:
            if canonical not in ("email",) and canonical not in self.keys(entity).keys:
                continue  # the company has no custom field for it
            normalize = _normalizer(canonical)
            wanted: dict[str, int] = {}
            for record in records:
                value = normalize(record.fields.get(canonical))
                if value and record.local_id not in matches:
                    wanted.setdefault(value, record.local_id)
            matches.update({wanted[v]: found for v, found in self._lookup(entity, canonical, search_field, list(wanted)).items()})
        return matches

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """Pipedrive ids of records already created under these idempotency keys."""
        # Asked when a create's outcome is unknown: the index kept for matching does not hold a
        # record whose create answer was lost, so read afresh.
        with self._index_lock:
            self._indexes.pop(entity, None)
        return self._lookup(entity, IDEMPOTENCY_FIELD, "custom_fields", list(keys))

    def _lookup(self, entity: str, canonical: str, search_field: str, values: list[str]) -> dict[str, str]:
        if not values:
            return {}
        index = self._index(entity) if len(values) > self.search_below or self._indexes.get(entity) else None
        if index is not None:
            return {v: found for v in values if (found := index.get(canonical, v))}
        normalize = _normalizer(canonical)
        found: dict[str, str] = {}
        for value in values:
            terms = _document_forms(value) if canonical == "document" else [value]
            for term in terms:
                for item in self.client.search(entity, term, fields=search_field, exact_match=True):
                    candidates = item.get("emails") if canonical == "email" else item.get("custom_fields")
                    if any(normalize(c) == value for c in candidates or []):
                        current = found.get(value)
                        if current is None or int(item["id"]) < int(current):
                            found[value] = str(item["id"])
                if value in found:
                    break
        return found

    def _index(self, entity: str) -> _KeyIndex | None:
        """The entity's match keys, read once with the list endpoint (None when too many records)."""
        with self._index_lock:
            if entity in self._indexes:
                return self._indexes[entity]
            keys = self.keys(entity)
            fields = [c for c, _ in MATCH_FIELDS[entity]] + [IDEMPOTENCY_FIELD]
            index: _KeyIndex | None = _KeyIndex()
            seen = 0
            params = {"sort_by": "id", "limit": LIST_PAGE_MAX, "custom_fields": ",".join(keys.keys[c] for c in fields if c in keys.keys)}
            for results in self.client.iter_list(entity, params):
                seen += len(results)
                if seen > self.index_max_records:
                    index = None
                    break
                for obj in results:
                    self._index_object(index, entity, keys, obj)
            self._indexes[entity] = index
            return index

    @staticmethod
    def _index_object(index: _KeyIndex, entity: str, keys: FieldKeys, obj: dict[str, Any]) -> None:
        record_id = str(obj.get("id"))
        for email in obj.get("emails") or []:
            index.add("email", normalize_email(email.get("value") if isinstance(email, dict) else email), record_id)
        for canonical in ("document", "domain", IDEMPOTENCY_FIELD):
            if canonical in keys.keys:
                index.add(canonical, _normalizer(canonical)(keys.custom(obj, canonical)), record_id)

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        keys = self.keys(entity)

        def send(record: OutgoingRecord) -> dict[str, Any]:
            body = to_body(entity, record.fields, keys, creating=True, mapping=self.mapping)
            body.setdefault("custom_fields", {})[keys.keys[IDEMPOTENCY_FIELD]] = idempotency_key(entity, record.local_id)
            obj = self.client.create(entity, body)
            index = self._indexes.get(entity)
            if index is not None:
                with self._index_lock:
                    self._index_object(index, entity, keys, obj)
            return obj

        return self._send_all(records, send, created=True)

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        keys = self.keys(entity)
        return self._send_all(records, lambda r: self.client.update(entity, str(r.external_id), to_body(entity, r.fields, keys, creating=False, mapping=self.mapping)), created=False)

    def _send_all(self, records: Sequence[OutgoingRecord], send: Callable[[OutgoingRecord], dict[str, Any]], *, created: bool) -> WriteResult:
        """Send every record (concurrently); per-record outcomes, or the first fatal error."""
        result = WriteResult()
        fatal: list[BaseException] = []

        def one(record: OutgoingRecord) -> None:
            try:
                obj = send(record)
            except (QuotaExhausted, RetryableError) as exc:
                fatal.append(exc)  # the outcome is unknown or the budget is spent: stop the run
                return
            except ProviderError as exc:
                category = "NOT_FOUND" if exc.status == 404 else f"HTTP_{exc.status}"
                message = exc.provider_message + (" (the record was deleted in Pipedrive)" if exc.status == 404 else "")
                result.rejected[record.local_id] = (category, message)
                return
            except ValueError as exc:
                result.rejected[record.local_id] = ("INVALID_FIELD", str(exc))
                return
            result.written[record.local_id] = (str(obj.get("id")), parse_timestamp(obj.get("update_time")), created)

        if self.concurrency == 1 or len(records) == 1:
            for record in records:
                one(record)
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(records)), thread_name_prefix="pipedrive-write") as pool:
                for future in [pool.submit(in_context(one), record) for record in records]:
                    future.result()
        if fatal:
            quota = next((e for e in fatal if isinstance(e, QuotaExhausted)), None)
            raise quota or fatal[0]
        return result


__all__ = ["BatchRejected", "OutgoingRecord", "PipedriveWriter", "WriteResult", "idempotency_key"]
