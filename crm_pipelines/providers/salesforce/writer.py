"""Writing local records to Salesforce with sObject Collections (200 records per call).

* **Matching** before creating: contacts by ``Email`` (SOQL ``IN``), accounts by the domain of
  ``Website`` (``LIKE '%domain%'``, compared after normalization), both by the CPF/CNPJ custom
  field (digits or formatted). One query answers a whole batch (cut only to keep the URL short).
* **Creating** is an upsert on the external-id field (``Crm_Record_Id__c`` = ``<entity>:<local
  id>``) through ``PATCH /composite/sobjects/{SObject}/{field}``: sending the same record twice
  (after a crash or a timeout whose outcome is unknown) updates the record created the first time.
* **Updating** goes through ``PATCH /composite/sobjects`` by ``Id``; a value emptied locally is
  sent as ``null`` and cleared in Salesforce.

Calls use ``allOrNone: false``: Salesforce answers per record, in request order, so a bad record
fails alone (``WriteResult.rejected``). A request refused as a whole (400) raises
:class:`BatchRejected` and the caller splits the batch. ``DUPLICATES_DETECTED`` naming an existing
record becomes a link to it (the record is then sent as an update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from crm_pipelines.core.errors import ProviderError, RetryableError
from crm_pipelines.core.normalize import normalize_document, normalize_domain
from crm_pipelines.providers.salesforce.api import COLLECTION_MAX, MAX_ENCODED_SOQL, SOBJECTS, SalesforceClient, encoded_length, soql_string
from crm_pipelines.providers.salesforce.bulk import Bulk2, BulkWriter
from crm_pipelines.providers.salesforce.bulk_limits import OrgLimits
from crm_pipelines.providers.salesforce.mapping import Mapping
from crm_pipelines.sync.bulk import BulkChoice
from crm_pipelines.sync.writes import BatchRejected, MappedOnce, OutgoingRecord, WriteResult, idempotency_key


def _formatted_document(digits: str) -> str:
    if len(digits) == 11:
        return f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


class SalesforceWriter:
    """Collection writes and SOQL look-ups for one org."""

    batch_size = COLLECTION_MAX
    make_record = OutgoingRecord
    #: A create sent twice updates the record the first one made (an upsert on Crm_Record_Id__c).
    creates_are_upserts = True
    Rejected = BatchRejected

    def __init__(self, client: SalesforceClient, *, mapping: Mapping | None = None) -> None:
        self.client = client
        self.mapping = mapping or Mapping()
        self._created = MappedOnce(self._sobject)

    def _sobject(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.mapping.to_sobject(entity, fields)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        """Why a record cannot be sent as it is (checked before any call), or None; the fields a
        create sends are the ones built here."""
        return self._created.check(entity, fields)

    # ------------------------------------------------------------------ look-ups

    def _select_in(self, entity: str, select: str, conditions: Callable[[list[str]], str], values: Sequence[str], *, per_value: int = 1) -> Iterator[dict[str, Any]]:
        """Rows matching ``conditions(chunk)`` for chunks of ``values`` sized to keep the URL short.

        The encoded length grows by each value's own share (``conditions`` of two copies less one),
        so a chunk is measured in one pass however many values a bulk export brings.
        """
        base = f"SELECT {select} FROM {SOBJECTS[entity]} WHERE "
        chunk: list[str] = []
        size = 0
        for value in values:
            alone = encoded_length(conditions([value]))
            extra = encoded_length(conditions([value, value])) - alone
            if chunk and ((len(chunk) + 1) * per_value > 1000 or size + extra > MAX_ENCODED_SOQL):
                yield from self._rows(base + conditions(chunk))
                chunk = []
            size = size + extra if chunk else encoded_length(base) + alone
            chunk.append(value)
        if chunk:
            yield from self._rows(base + conditions(chunk))

    def _rows(self, soql: str) -> Iterator[dict[str, Any]]:
        for rows in self.client.iter_query(soql, kind="match"):
            yield from rows

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        """Ids of existing records that are the same as these unlinked local ones."""
        matches: dict[int, str] = {}
        if entity == "contacts":
            by_email = {r.fields["email"].lower(): r.local_id for r in records if r.fields.get("email")}
            in_list = lambda chunk: f"Email IN ({', '.join(soql_string(e) for e in chunk)})"  # noqa: E731
            for row in self._select_in(entity, "Id, Email", in_list, sorted(by_email)):
                local_id = by_email.get((row.get("Email") or "").lower())
                if local_id is not None and local_id not in matches:
                    matches[local_id] = str(row["Id"])
        if entity == "companies":
            by_domain = {r.fields["domain"]: r.local_id for r in records if r.fields.get("domain")}
            for row in self._select_in(entity, "Id, Website", _website_like, sorted(by_domain)):
                local_id = by_domain.get(normalize_domain(row.get("Website")) or "")
                if local_id is not None and local_id not in matches:
                    matches[local_id] = str(row["Id"])
        if entity in ("contacts", "companies"):
            doc_field = self.mapping.document_field
            by_doc = {r.fields["document"]: r.local_id for r in records if r.fields.get("document") and r.local_id not in matches}
            variants = lambda chunk: f"{doc_field} IN ({', '.join(soql_string(v) for d in chunk for v in (d, _formatted_document(d)))})"  # noqa: E731
            for row in self._select_in(entity, f"Id, {doc_field}", variants, sorted(by_doc), per_value=2):
                try:
                    digits = normalize_document(row.get(doc_field))
                except ValueError:
                    continue
                local_id = by_doc.get(digits or "")
                if local_id is not None and local_id not in matches:
                    matches[local_id] = str(row["Id"])
        return matches

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """Ids of records already created under these idempotency keys."""
        ext = self.mapping.external_id_field
        in_list = lambda chunk: f"{ext} IN ({', '.join(soql_string(k) for k in chunk)})"  # noqa: E731
        found: dict[str, str] = {}
        for row in self._select_in(entity, f"Id, {ext}", in_list, list(keys)):
            if row.get(ext):
                found[str(row[ext])] = str(row["Id"])
        return found

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        sobject, ext = SOBJECTS[entity], self.mapping.external_id_field
        body = [
            {"attributes": {"type": sobject}, **self._created.take(entity, r.fields), ext: idempotency_key(entity, r.local_id)}
            for r in records
        ]
        results = self._write("PATCH", f"/{sobject}/{ext}", body)
        return self._collect(records, results, upsert=True)

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        sobject = SOBJECTS[entity]
        body = [{"attributes": {"type": sobject}, "Id": r.external_id, **self.mapping.to_sobject(entity, r.fields, clear_missing=True)} for r in records]
        results = self._write("PATCH", "", body)
        return self._collect(records, results, upsert=False)

    # ------------------------------------------------------------------ bulk (Bulk API 2.0 ingest jobs)

    def bulk_allowance(self, entity: str, count: int) -> BulkChoice:
        """Whether ingest jobs for ``count`` records fit the org's daily allocations (``/limits``, one call).

        When they do not, sObject Collections if the API requests left fit them; if neither does,
        :class:`QuotaExhausted` before anything is sent.
        """
        return OrgLimits.read(self.client).for_ingest(count, SOBJECTS[entity])

    def bulk_write(self, entity: str, records: Sequence[OutgoingRecord], *, create: bool, memory: Any, progress: Any) -> WriteResult:
        """Creates (upsert on the external id) or updates (by Id) of many records as ingest jobs."""
        return BulkWriter(Bulk2(self.client), self.mapping).write(entity, records, create=create, memory=memory, progress=progress)

    def settle_bulk(self, memory: Any, progress: Any) -> None:
        """Wait for (or abort, if never uploaded) the ingest job a killed run left, then forget it."""
        BulkWriter(Bulk2(self.client), self.mapping).settle(memory, progress)

    # ------------------------------------------------------------------ helpers

    def _write(self, method: str, suffix: str, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            results = self.client.collection(method, suffix, body)
        except RetryableError:
            raise
        except ProviderError as exc:
            if exc.status in (400, 414, 422):
                raise BatchRejected(exc.category or f"HTTP_{exc.status}", exc.provider_message) from None
            raise
        if not isinstance(results, list) or len(results) != len(body):
            raise ProviderError("salesforce", f"expected {len(body)} results in request order, got {type(results).__name__} of {len(results) if isinstance(results, list) else '?'}")
        return results

    @staticmethod
    def _collect(records: Sequence[OutgoingRecord], results: list[dict[str, Any]], *, upsert: bool) -> WriteResult:
        outcome = WriteResult()
        for record, result in zip(records, results):
            if result.get("success"):
                created = bool(result.get("created")) if upsert else False
                outcome.written[record.local_id] = (str(result.get("id") or record.external_id), None, created)
                continue
            errors = result.get("errors") or [{"statusCode": "UNKNOWN_ERROR", "message": "rejected without a reason"}]
            duplicate = _duplicate_match(errors)
            if duplicate is not None:
                outcome.conflicts[record.local_id] = duplicate
                continue
            code = str(errors[0].get("statusCode") or "ERROR")
            message = "; ".join(
                str(e.get("message") or e.get("statusCode")) + (f" [{', '.join(e['fields'])}]" if e.get("fields") else "") for e in errors
            )
            outcome.rejected[record.local_id] = (code, message)
        return outcome


def _website_like(domains: list[str]) -> str:
    """``(Website LIKE '%acme.com.br%' OR ...)``: any scheme, ``www.`` or path around the domain."""
    # ``_`` matches any one character, itself included; rows are compared exactly afterwards.
    cleaned = (d.replace("\\", "").replace("%", "") for d in domains)
    return "(" + " OR ".join(f"Website LIKE {soql_string('%' + d + '%')}" for d in cleaned) + ")"


def _duplicate_match(errors: list[dict[str, Any]]) -> str | None:
    """The existing record a DUPLICATES_DETECTED error points to (when it names exactly one)."""
    for error in errors:
        if error.get("statusCode") != "DUPLICATES_DETECTED":
            continue
        ids = [
            str((match.get("record") or {}).get("Id"))
            for result in (error.get("duplicateResult") or {}).get("matchResults") or []
            for match in result.get("matchRecords") or []
            if (match.get("record") or {}).get("Id")
        ]
        if len(set(ids)) == 1:
            return ids[0]
    return None


__all__ = ["BatchRejected", "OutgoingRecord", "SalesforceWriter", "WriteResult", "idempotency_key"]
