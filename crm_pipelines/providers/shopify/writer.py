"""Writing local records to Shopify: many aliased mutations per request, paced by cost.

Shopify has no batch create for customers, orders or companies, but one GraphQL request may
carry several mutations under aliases (``m0: customerCreate(...) m1: customerCreate(...)``);
each is 10 cost points and succeeds or fails on its own, reporting problems in its own
``userErrors``. A batch of 100 records goes out as requests of ``MUTATIONS_PER_REQUEST`` (50:
500 requested points, half the single-query cap), and the cost bucket paces them.

* **Idempotent creates**: every create carries the key ``crm:<entity>:<local id>`` as a tag
  (customers, orders) or as the ``externalId`` (companies); after a crash, ``find_by_keys`` finds
  what was created by ``tag:`` / ``external_id:`` searches OR'd together.
* **Matching** before creating: customers by e-mail (``email:`` OR'd), companies by exact name
  when exactly one Shopify company bears it. A create refused with "Email has already been taken"
  (the customer appeared meanwhile) becomes a link to that customer.
* **Updates**: ``customerUpdate`` / ``companyUpdate``. Orders cannot change amount, currency,
  financial status or name after creation; a changed order is read back and reported as a reject
  naming the fields, an unchanged one is confirmed.
* A top-level GraphQL error that names no alias refuses the request as a whole
  (:class:`BatchRejected`): the exporter splits the batch until the bad record is alone.
* **Bulk** (an export above the integration's ``bulk_threshold``): the same mutations, one line of
  variables per record in a staged upload, run by ``bulkOperationRunMutation``; the result file's
  lines (``__lineNumber``) are read as the aliases' answers are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_pipelines.core.errors import EntityUnavailable, ProviderError
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.shopify.api import MUTATION_COST, MUTATIONS_PER_REQUEST, OBJECTS, PAGE_MAX, ShopifyClient, graphql_error, metafield_definitions
from crm_pipelines.providers.shopify.bulk import ShopifyBulkMutation
from crm_pipelines.providers.shopify.mapping import (
    create_input, financial_status, metafields, node_cost, node_fields, order_differences, page_size, parse_timestamp, update_input,
)
from crm_pipelines.sync.writes import BatchRejected, OutgoingRecord, WriteResult

LOOKUP_CHUNK = 50
_INPUT_TYPES = {
    ("contacts", "create"): "CustomerInput!", ("contacts", "update"): "CustomerInput!",
    ("deals", "create"): "OrderCreateOrderInput!", ("companies", "create"): "CompanyCreateInput!", ("companies", "update"): "CompanyInput!",
}


def idempotency_key(entity: str, local_id: int) -> str:
    return f"crm:{entity}:{local_id}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ShopifyWriter:
    """Aliased-mutation writes and search look-ups for one Shopify store."""

    batch_size = 100
    make_record = OutgoingRecord
    Rejected = BatchRejected

    def __init__(self, client: ShopifyClient, *, mutations_per_request: int = MUTATIONS_PER_REQUEST, mapping: CompiledMapping | None = None) -> None:
        self.client = client
        self.mapping = mapping
        self._metafield_types: dict[str, dict[str, str]] = {}
        self.mutations_per_request = max(1, min(mutations_per_request, 100))
        self._unavailable: dict[str, str | None] = {}

    def unavailable(self, entity: str) -> str | None:
        """Why this store cannot take ``entity`` (companies without B2B), or None."""
        if entity != "companies":
            return None
        if entity not in self._unavailable:
            try:
                self.client.graphql("query { companiesCount { count } }", kind="probe", cost=1, entity=entity)
                self._unavailable[entity] = None
            except EntityUnavailable as exc:
                self._unavailable[entity] = str(exc)
        return self._unavailable[entity]

    def check(self, entity: str, fields: dict[str, Any]) -> str | None:
        """Why a record cannot be sent as it is (checked before any call), or None."""
        try:
            self._create_values(entity, fields, "crm:check")
            if entity == "deals":
                financial_status(fields.get("stage"))
        except (ValueError, ArithmeticError) as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------------ inputs

    def metafield_types(self, entity: str) -> dict[str, str]:
        """``namespace.key -> type`` of the store's metafield definitions (read once, and only when the mapping writes metafields)."""
        if entity not in self._metafield_types:
            wanted = {r.full_key for r in metafields(entity, self.mapping, imported=False)}
            found = metafield_definitions(self.client, entity) if wanted else []
            self._metafield_types[entity] = {f"{d['namespace']}.{d['key']}": str((d.get("type") or {}).get("name")) for d in found
                                             if f"{d['namespace']}.{d['key']}" in wanted}
        return self._metafield_types[entity]

    def _create_values(self, entity: str, fields: dict[str, Any], key: str) -> dict[str, Any]:
        return create_input(entity, fields, key, mapping=self.mapping, metafield_types=self.metafield_types(entity))

    def _update_values(self, entity: str, record: OutgoingRecord) -> dict[str, Any]:
        """``{"i": input}`` (and ``"c"``, the company id) of one update mutation."""
        variables = update_input(entity, record.fields, str(record.external_id), mapping=self.mapping, metafield_types=self.metafield_types(entity))
        return {"i": variables["input"]} | ({"c": variables["companyId"]} if "companyId" in variables else {})

    # ------------------------------------------------------------------ look-ups

    def _search(self, entity: str, terms: list[str], selection: str) -> list[dict[str, Any]]:
        """Every node matching any of ``terms`` (OR'd), paged."""
        connection = OBJECTS[entity].connection
        query = f"query($first: Int!, $after: String, $query: String) {{ {connection}(first: $first, after: $after, query: $query, sortKey: ID) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {selection} }} }} }}"
        found: list[dict[str, Any]] = []
        for start in range(0, len(terms), LOOKUP_CHUNK):
            chunk = terms[start : start + LOOKUP_CHUNK]
            first = min(PAGE_MAX, len(chunk) * 2)
            for nodes in self.client.connection_pages(query, connection, {"first": first, "query": " OR ".join(chunk)}, kind="match", cost=2 + first, entity=entity):
                found.extend(nodes)
        return found

    def match(self, entity: str, records: Sequence[OutgoingRecord]) -> dict[int, str]:
        """Shopify ids of existing records that are the same as these unlinked local ones."""
        if entity == "contacts":
            by_email = {str(r.fields["email"]).lower(): r.local_id for r in records if r.fields.get("email")}
            return {by_email[e]: gid for e, gid in self._customers_by_email(list(by_email)).items() if e in by_email}
        if entity == "companies":
            by_name: dict[str, list[int]] = {}
            for r in records:
                if r.fields.get("name"):
                    by_name.setdefault(str(r.fields["name"]).strip().casefold(), []).append(r.local_id)
            if not by_name:
                return {}
            nodes = self._search(entity, [f"name:{_quote(n)}" for n in by_name], "id name")
            remote: dict[str, list[str]] = {}
            for node in nodes:
                remote.setdefault(str(node.get("name") or "").strip().casefold(), []).append(str(node["id"]))
            # A name is not an identity: link only when one Shopify company and one local record share it.
            return {ids[0]: remote[n][0] for n, ids in by_name.items() if len(ids) == 1 and len(remote.get(n, ())) == 1}
        return {}

    def _customers_by_email(self, emails: list[str]) -> dict[str, str]:
        if not emails:
            return {}
        nodes = self._search("contacts", [f"email:{_quote(e)}" for e in emails], "id email")
        return {str(n.get("email") or "").lower(): str(n["id"]) for n in nodes if n.get("email")}

    def find_by_keys(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """Shopify ids of records already created under these idempotency keys."""
        # The exporter names intents "<entity>:<local id>"; Shopify carries them as "crm:<entity>:<local id>".
        wanted = {(k if k.startswith("crm:") else f"crm:{k}"): k for k in keys}
        found: dict[str, str] = {}
        if entity == "companies":
            for node in self._search(entity, [f"external_id:{_quote(k)}" for k in wanted], "id externalId"):
                if node.get("externalId") in wanted:
                    found.setdefault(wanted[node["externalId"]], str(node["id"]))
            return found
        for node in self._search(entity, [f"tag:{_quote(k)}" for k in wanted], "id tags"):
            for tag in node.get("tags") or ():
                if tag in wanted:
                    found.setdefault(wanted[tag], str(node["id"]))
        return found

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        inputs = []
        for r in records:
            try:
                inputs.append((r.local_id, {"i": self._create_values(entity, r.fields, idempotency_key(entity, r.local_id))}))
            except ValueError as exc:
                result.rejected[r.local_id] = ("INVALID_FIELD", str(exc))
        self._send(entity, "create", inputs, result)
        return result

    def update(self, entity: str, records: Sequence[OutgoingRecord]) -> WriteResult:
        result = WriteResult()
        if entity == "deals":
            self._confirm_orders(records, result)
            return result
        inputs = []
        for r in records:
            try:
                inputs.append((r.local_id, self._update_values(entity, r)))
            except ValueError as exc:
                result.rejected[r.local_id] = ("INVALID_FIELD", str(exc))
        self._send(entity, "update", inputs, result, external={r.local_id: str(r.external_id) for r in records})
        return result

    def _send(self, entity: str, action: str, inputs: list[tuple[int, dict[str, Any]]], result: WriteResult, external: dict[int, str] | None = None) -> None:
        spec = OBJECTS[entity]
        mutation = spec.create_mutation if action == "create" else spec.update_mutation
        taken: dict[int, str] = {}
        for start in range(0, len(inputs), self.mutations_per_request):
            chunk = inputs[start : start + self.mutations_per_request]
            declarations, calls, variables = [], [], {}
            for n, (_local_id, values) in enumerate(chunk):
                declarations.append(f"$i{n}: {_INPUT_TYPES[(entity, action)]}")
                variables[f"i{n}"] = values["i"]
                if "c" in values:
                    declarations.append(f"$c{n}: ID!")
                    variables[f"c{n}"] = values["c"]
                    arguments = f"companyId: $c{n}, input: $i{n}"
                else:
                    arguments = f"{'order' if mutation == 'orderCreate' else 'input'}: $i{n}"
                calls.append(f"m{n}: {mutation}({arguments}) {{ {spec.payload_field} {{ id updatedAt }} userErrors {{ field message }} }}")
            text = f"mutation({', '.join(declarations)}) {{ {' '.join(calls)} }}"
            try:
                body = self.client.execute(text, variables, kind="write", cost=MUTATION_COST * len(chunk))
            except ProviderError as exc:
                if exc.status in (400, 422):
                    raise BatchRejected(exc.category or f"HTTP_{exc.status}", exc.provider_message) from None
                raise
            data = body.get("data") or {}
            by_alias: dict[str, list[str]] = {}
            for error in body.get("errors") or []:
                path = error.get("path") or []
                if path and str(path[0]).startswith("m"):
                    by_alias.setdefault(str(path[0]), []).append(str(error.get("message")))
                else:
                    code_error = graphql_error([error], f"POST {self.client.path}", entity)
                    if isinstance(code_error, EntityUnavailable) or error.get("extensions", {}).get("code") in ("ACCESS_DENIED", "MAX_COST_EXCEEDED"):
                        raise code_error
                    raise BatchRejected(code_error.category or "GRAPHQL_ERROR", code_error.provider_message)
            for n, (local_id, values) in enumerate(chunk):
                alias = f"m{n}"
                self._outcome(entity, action, local_id, values, data.get(alias), by_alias.get(alias), result, taken, external)
        self._settle_taken(taken, result)

    def _outcome(self, entity: str, action: str, local_id: int, values: dict[str, Any], payload: dict[str, Any] | None, errors: list[str] | None,
                 result: WriteResult, taken: dict[int, str], external: dict[int, str] | None) -> None:
        """What one mutation's answer (an alias of a request, or a line of a bulk result) says about its record."""
        spec = OBJECTS[entity]
        if errors or payload is None:
            result.rejected[local_id] = ("GRAPHQL_ERROR", "; ".join(errors or ["no result"]))
            return
        user_errors = payload.get("userErrors") or []
        node = payload.get(spec.payload_field)
        if not user_errors and node:
            gid = str(node["id"])
            if external and external.get(local_id) and external[local_id] != gid:
                result.rejected[local_id] = ("MISMATCH", f"Shopify answered for {gid}, not {external[local_id]}")
                return
            result.written[local_id] = (gid, parse_timestamp(node.get("updatedAt")), action == "create")
            return
        message = "; ".join(_user_error_text(e) for e in user_errors) or "rejected without a reason"
        if entity == "contacts" and action == "create" and any("already been taken" in str(e.get("message")) and "email" in (e.get("field") or []) for e in user_errors):
            taken[local_id] = str(values["i"].get("email", "")).lower()
            result.rejected[local_id] = ("TAKEN", message)
            return
        result.rejected[local_id] = ("USER_ERROR", message)

    def _settle_taken(self, taken: dict[int, str], result: WriteResult) -> None:
        if taken:
            # The e-mail belongs to a customer created since matching: link to it instead.
            existing = self._customers_by_email(sorted(set(taken.values())))
            for local_id, email in taken.items():
                if email in existing:
                    result.rejected.pop(local_id, None)
                    result.conflicts[local_id] = existing[email]

    # ------------------------------------------------------------------ bulk (staged upload + bulkOperationRunMutation)

    def bulk_write(self, entity: str, records: Sequence[OutgoingRecord], *, create: bool, memory: Any, progress: Any) -> WriteResult:
        """Creates or updates of many records as one bulk mutation: one line of variables per record.

        Order changes are confirmations (orders keep their amounts): they take the regular path.
        """
        if entity == "deals" and not create:
            return self.update(entity, records)
        action = "create" if create else "update"
        result = WriteResult()
        inputs: list[tuple[int, dict[str, Any]]] = []
        for r in records:
            try:
                inputs.append((r.local_id, {"i": self._create_values(entity, r.fields, idempotency_key(entity, r.local_id))} if create else self._update_values(entity, r)))
            except ValueError as exc:
                result.rejected[r.local_id] = ("INVALID_FIELD", str(exc))
        if not inputs:
            return result
        lines = ShopifyBulkMutation(self.client).run(self._bulk_mutation_text(entity, action, "c" in inputs[0][1]), [values for _, values in inputs], memory, progress)
        taken: dict[int, str] = {}
        external = None if create else {r.local_id: str(r.external_id) for r in records}
        mutation = OBJECTS[entity].create_mutation if create else OBJECTS[entity].update_mutation
        for number, (local_id, values) in enumerate(inputs):
            line = lines.get(number)
            errors = [str(e.get("message")) for e in line.get("errors") or []] if line else ["the bulk operation did not run this record"]
            self._outcome(entity, action, local_id, values, ((line or {}).get("data") or {}).get(mutation), errors or None, result, taken, external)
        self._settle_taken(taken, result)
        return result

    def settle_bulk(self, memory: Any, progress: Any) -> None:
        """Wait for the bulk mutation a killed run left to end, then forget it (its creates are found by key)."""
        ShopifyBulkMutation(self.client).settle(memory, progress)

    @staticmethod
    def _bulk_mutation_text(entity: str, action: str, with_company: bool) -> str:
        spec = OBJECTS[entity]
        mutation = spec.create_mutation if action == "create" else spec.update_mutation
        declarations = f"$i: {_INPUT_TYPES[(entity, action)]}" + (", $c: ID!" if with_company else "")
        arguments = "companyId: $c, input: $i" if with_company else f"{'order' if mutation == 'orderCreate' else 'input'}: $i"
        return f"mutation call({declarations}) {{ {mutation}({arguments}) {{ {spec.payload_field} {{ id updatedAt }} userErrors {{ field message }} }} }}"

    def _confirm_orders(self, records: Sequence[OutgoingRecord], result: WriteResult) -> None:
        """Orders keep amount, currency, status and name once created: confirm or reject the local change."""
        query = f"query($ids: [ID!]!) {{ nodes(ids: $ids) {{ id ... on Order {{ {node_fields('deals', self.mapping)} }} }} }}"
        size = page_size("deals", self.mapping)
        for start in range(0, len(records), size):
            chunk = list(records[start : start + size])
            data = self.client.graphql(query, {"ids": [str(r.external_id) for r in chunk]}, kind="batch_read", cost=len(chunk) * (1 + node_cost("deals", self.mapping)), entity="deals")
            for record, node in zip(chunk, data.get("nodes") or []):
                if node is None:
                    result.rejected[record.local_id] = ("NOT_FOUND", f"order {record.external_id} no longer exists at Shopify")
                    continue
                different = order_differences(record.fields, node, self.mapping)
                if different:
                    result.rejected[record.local_id] = (
                        "IMMUTABLE_FIELD",
                        f"Shopify orders cannot change {', '.join(different)} after creation (orderUpdate takes only email, note, tags and addresses)",
                    )
                else:
                    result.written[record.local_id] = (str(node["id"]), parse_timestamp(node.get("updatedAt")), False)


def _user_error_text(error: dict[str, Any]) -> str:
    field_path = ".".join(str(f) for f in error.get("field") or [])
    return f"{field_path}: {error.get('message')}" if field_path else str(error.get("message"))


__all__ = ["BatchRejected", "OutgoingRecord", "ShopifyWriter", "WriteResult", "idempotency_key"]
