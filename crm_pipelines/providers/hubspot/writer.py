"""Writing local records to HubSpot in 100-record batches.

* **Matching** before creating: contacts by e-mail (``batch/read`` with ``idProperty=email``),
  companies by domain (search ``IN``), contacts and companies by CPF/CNPJ (search ``IN`` on the
  ``cpf_cnpj`` property).
* **Creating** goes through ``batch/upsert`` keyed by the custom unique property
  ``crm_record_id`` (``<entity>:<local id>``): sending the same record twice, after a crash or a
  timeout whose outcome is unknown, updates the record created the first time instead of creating
  a second one.
* **Updating** goes through ``batch/update`` by HubSpot id.

Every input carries an ``objectWriteTraceId`` (the local id), so HubSpot answers 207 with
per-input errors instead of failing the whole batch; a whole-batch 400 is split in halves by the
caller until the bad record is alone. ``409 Contact already exists. Existing ID: N`` becomes a
link to N.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from crm_pipelines.providers.hubspot.api import OBJECTS, HubSpotClient
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.hubspot.mapping import DOCUMENT_PROPERTY, parse_timestamp, to_properties
from crm_pipelines.sync.writes import BatchRejected, MappedOnce, OutgoingRecord, WriteResult, idempotency_key

IDEMPOTENCY_PROPERTY = "crm_record_id"
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


class HubSpotWriter:
    """Batch writes and look-ups for one HubSpot account."""

    batch_size = 100
    make_record = OutgoingRecord
    #: A create sent twice updates the record the first one made (batch/upsert keyed by crm_record_id).
    creates_are_upserts = True
    Rejected = BatchRejected

    def __init__(self, client: HubSpotClient, *, mapping: CompiledMapping | None = None) -> None:
        self.client = client
        self.mapping = mapping
        self._properties = MappedOnce(lambda entity, fields: to_properties(entity, fields, self.mapping))

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        """Why a record cannot be sent as it is (checked before any call), or None."""
        return self._properties.check(entity, fields)

    # ------------------------------------------------------------------ matching

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        """HubSpot ids of existing records that are the same as these unlinked local ones."""
        matches: dict[int, str] = {}
        if entity == "contacts":
            by_email = {r.fields["email"]: r.local_id for r in records if r.fields.get("email")}
            if by_email:
                data = self._post(entity, "batch/read", {"inputs": [{"id": e} for e in by_email], "idProperty": "email", "properties": ["email"]}, kind="match")
                for obj in data.get("results", []):
                    email = ((obj.get("properties") or {}).get("email") or "").lower()
                    if email in by_email:
                        matches[by_email[email]] = str(obj["id"])
        if entity == "companies":
            matches.update(self._search_in(entity, "domain", {r.fields["domain"]: r.local_id for r in records if r.fields.get("domain")}))
        if entity in ("contacts", "companies"):
            rest = {r.fields["document"]: r.local_id for r in records if r.fields.get("document") and r.local_id not in matches}
            matches.update(self._search_in(entity, DOCUMENT_PROPERTY, rest))
        return matches

    def _search_in(self, entity: str, prop: str, wanted: dict[str, int]) -> dict[int, str]:
        found: dict[int, str] = {}
        values = list(wanted)
        for start in range(0, len(values), 100):
            chunk = values[start : start + 100]
            data = self.client.search(
                entity,
                {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "IN", "values": chunk}]}], "properties": [prop], "limit": 200},
            )
            for obj in data.get("results", []):
                value = ((obj.get("properties") or {}).get(prop) or "").lower()
                local_id = wanted.get(value) or wanted.get(re.sub(r"\D", "", value))
                if local_id is not None and local_id not in found:
                    found[local_id] = str(obj["id"])
        return found

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """HubSpot ids of records already created under these idempotency keys."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), self.batch_size):
            chunk = list(keys[start : start + self.batch_size])
            data = self._post(entity, "batch/read", {"inputs": [{"id": k} for k in chunk], "idProperty": IDEMPOTENCY_PROPERTY, "properties": [IDEMPOTENCY_PROPERTY]}, kind="match")
            for obj in data.get("results", []):
                key = (obj.get("properties") or {}).get(IDEMPOTENCY_PROPERTY)
                if key:
                    found[key] = str(obj["id"])
        return found

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        inputs = []
        for r in records:
            key = idempotency_key(entity, r.local_id)
            inputs.append(
                {
                    "id": key,
                    "idProperty": IDEMPOTENCY_PROPERTY,
                    "properties": self._properties.take(entity, r.fields) | {IDEMPOTENCY_PROPERTY: key},
                    "objectWriteTraceId": str(r.local_id),
                }
            )
        data = self._write(entity, "batch/upsert", inputs)
        result = WriteResult()
        for obj in data.get("results", []):
            key = (obj.get("properties") or {}).get(IDEMPOTENCY_PROPERTY) or str(obj.get("id"))
            try:
                local_id = int(key.split(":", 1)[1])
            except (IndexError, ValueError):
                continue
            result.written[local_id] = (str(obj["id"]), parse_timestamp(obj.get("updatedAt")), bool(obj.get("new", True)))
        self._collect_errors(data, result, by_trace=True)
        return result

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        by_external = {r.external_id: r.local_id for r in records}
        inputs = [{"id": r.external_id, "properties": self._properties.take(entity, r.fields), "objectWriteTraceId": str(r.local_id)} for r in records]
        data = self._write(entity, "batch/update", inputs)
        result = WriteResult()
        for obj in data.get("results", []):
            local_id = by_external.get(str(obj.get("id")))
            if local_id is not None:
                result.written[local_id] = (str(obj["id"]), parse_timestamp(obj.get("updatedAt")), False)
        self._collect_errors(data, result, by_trace=True, by_external=by_external)
        return result

    # ------------------------------------------------------------------ helpers

    def _post(self, entity: str, action: str, body: dict[str, Any], *, kind: str) -> dict[str, Any]:
        return self.client.api.request("POST", f"/crm/v3/objects/{OBJECTS[entity].path}/{action}", json=body, kind=kind) or {}

    def _write(self, entity: str, action: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        from crm_pipelines.core.errors import ProviderError, RetryableError

        try:
            return self._post(entity, action, {"inputs": inputs}, kind="write")
        except RetryableError:
            raise
        except ProviderError as exc:
            if exc.status == 409 and len(inputs) == 1:
                existing = _EXISTING_ID.search(exc.provider_message or "")
                if existing:
                    return {"errors": [{"category": "CONFLICT", "message": exc.provider_message, "context": {"objectWriteTraceId": [inputs[0]["objectWriteTraceId"]]}}]}
            if exc.status in (400, 409, 422):
                raise BatchRejected(exc.category or f"HTTP_{exc.status}", exc.provider_message) from None
            raise

    @staticmethod
    def _collect_errors(data: dict[str, Any], result: WriteResult, *, by_trace: bool, by_external: dict[str, int] | None = None) -> None:
        for error in data.get("errors", []) or []:
            context = error.get("context") or {}
            local_ids: list[int] = []
            if by_trace:
                local_ids += [int(t) for t in context.get("objectWriteTraceId", []) if str(t).isdigit()]
            if by_external:
                local_ids += [by_external[i] for i in context.get("ids", []) if i in by_external]
            category = error.get("category") or "ERROR"
            message = error.get("message") or "rejected"
            details = "; ".join(d.get("message", "") for d in error.get("errors", []) or [] if d.get("message"))
            if details and details not in message:
                message = f"{message} ({details})"
            for local_id in local_ids:
                existing = _EXISTING_ID.search(message) if category == "CONFLICT" else None
                if existing:
                    result.conflicts[local_id] = existing.group(1)
                else:
                    result.rejected[local_id] = (category, message)


__all__ = ["BatchRejected", "HubSpotWriter", "OutgoingRecord", "WriteResult", "idempotency_key", "IDEMPOTENCY_PROPERTY"]
