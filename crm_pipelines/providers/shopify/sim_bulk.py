"""Shopify bulk operations on the simulator (PROVIDERS.md §10).

* ``bulkOperationRunQuery(query:)`` runs a query over one top-level connection without page limits
  (no ``first`` needed); the result is a JSONL file, one object per line, and the objects of nested
  connections carry ``__parentId``. One bulk query and one bulk mutation run at a time per shop (a
  second gets a userError). The operation is ``CREATED``, ``RUNNING`` for ``bulk_processing_s``
  simulated seconds, then ``COMPLETED`` with ``objectCount``, ``rootObjectCount``, ``fileSize`` and
  ``url`` (served by the simulator, no token needed, as a signed storage URL); read it with
  ``currentBulkOperation(type:)`` or ``node(id:)``; ``bulkOperationCancel(id:)`` cancels it. Each
  completion sends the ``bulk_operations/finish`` webhook.
* ``stagedUploadsCreate`` gives an upload target on the simulator (POST multipart form or PUT);
  ``bulkOperationRunMutation(mutation:, stagedUploadPath:)`` runs the mutation once per JSONL line of
  variables; the result file has one line per input with its ``data``/``errors`` and ``__lineNumber``.
"""

from __future__ import annotations

import email.parser
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from graphql import execute, parse, validate

from crm_pipelines.providers.shopify.sim_graphql import UserErrors, schema
from crm_pipelines.simulator.clock import utc_iso_s
from crm_pipelines.simulator.server import Request, Response, api


@dataclass
class BulkOperation:
    id: str
    type: str
    query: str
    created_s: int
    ready_s: int
    status: str = "CREATED"
    completed_s: int | None = None
    lines: list[str] = field(default_factory=list)
    root_count: int = 0
    error_code: str | None = None

    @property
    def running(self) -> bool:
        return self.status in ("CREATED", "RUNNING")


class BulkOperations:
    """Bulk operation resolvers and the result/upload routes, mixed into the Shopify simulator."""

    def bulk_run(self, shop: Any, kind: str, text: str, staged_path: str | None = None) -> dict[str, Any]:
        self.settle_bulk(shop)
        running = next((op for op in shop.bulk_ops.values() if op.type == kind and op.running), None)
        if running is not None:
            raise _problems([f"A bulk {kind.lower()} operation for this app and shop is already in progress: {running.id}."])
        try:
            document = parse(text)
        except Exception as exc:  # a bad query is a userError, as Shopify answers
            raise _problems([f"Invalid bulk {kind.lower()}: {exc}"])
        if problems := validate(schema(), document):
            raise _problems(problems)
        now = int(self.clock.timestamp())
        op = BulkOperation(f"gid://shopify/BulkOperation/{next(shop.event_numbers)}", kind, text, now, now + int(self.config.bulk_processing_s))
        from crm_pipelines.providers.shopify.simulator import _Root

        if kind == "QUERY":
            result = execute(schema(), document, root_value=_Root(shop, bulk=True))
            if result.errors or not result.data or len(result.data) != 1:
                raise _problems([str(e) for e in result.errors or ["A bulk query must select exactly one top-level connection."]])
            roots = _connection_nodes(next(iter(result.data.values())))
            op.root_count = len(roots)
            for node in roots:
                _flatten(node, None, op.lines)
        else:
            if staged_path not in shop.staged:
                raise _problems(["The staged upload path was not found."])
            variables = [json.loads(line) for line in shop.staged[staged_path].decode().splitlines() if line.strip()]
            for number, values in enumerate(variables):
                result = execute(schema(), document, root_value=_Root(shop), variable_values=values)
                line = {"data": result.data, "__lineNumber": number} | ({"errors": [e.formatted for e in result.errors]} if result.errors else {})
                op.lines.append(json.dumps(line, ensure_ascii=False))
            op.root_count = len(variables)
        shop.bulk_ops[op.id] = op
        self.settle_bulk(shop)
        return self._bulk_view(shop, op)

    def bulk_cancel(self, shop: Any, gid: str) -> dict[str, Any]:
        self.settle_bulk(shop)
        op = shop.bulk_ops.get(gid)
        if op is None:
            raise _problems(["Bulk operation does not exist"])
        if op.running:
            op.status, op.completed_s = "CANCELED", int(self.clock.timestamp())
            self._bulk_finished(shop, op)
        return self._bulk_view(shop, op)

    def bulk_current(self, shop: Any, kind: str = "QUERY") -> dict[str, Any] | None:
        return self.bulk_node(shop, next((op.id for op in reversed(shop.bulk_ops.values()) if op.type == kind), None))

    def bulk_node(self, shop: Any, gid: str | None) -> dict[str, Any] | None:
        self.settle_bulk(shop)
        return self._bulk_view(shop, shop.bulk_ops[gid]) if gid in shop.bulk_ops else None

    def staged_uploads(self, shop: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        targets = []
        for item in inputs:
            key = f"tmp/{shop.id}/bulk/{uuid.uuid4()}/{item.get('filename') or 'bulk_op_vars.jsonl'}"
            url = f"{self.base_url}/staged-uploads/{shop.id}"
            targets.append({"url": url, "resourceUrl": f"{url}/{key}", "parameters": [{"name": "key", "value": key}, {"name": "Content-Type", "value": item.get("mimeType") or "text/jsonl"}]})
        return targets

    def settle_bulk(self, shop: Any) -> None:
        """Move operations along the simulated clock; notify the finished ones."""
        now = int(self.clock.timestamp())
        for op in shop.bulk_ops.values():
            if op.running:
                op.status = "COMPLETED" if now >= op.ready_s else "RUNNING"
                if op.status == "COMPLETED":
                    op.completed_s = max(now, op.ready_s)
                    self._bulk_finished(shop, op)

    def _bulk_finished(self, shop: Any, op: BulkOperation) -> None:
        """The ``bulk_operations/finish`` webhook (sent once: an operation finishes once)."""
        body = {"admin_graphql_api_id": op.id, "completed_at": utc_iso_s(op.completed_s), "created_at": utc_iso_s(op.created_s),
                "error_code": op.error_code, "status": op.status.lower(), "type": op.type.lower()}
        self.emit({"topic": "bulk_operations/finish", "body": body, "event_id": op.id.rsplit("/", 1)[-1], "at": op.completed_s, "shop": shop.host})

    def _bulk_view(self, shop: Any, op: BulkOperation) -> dict[str, Any]:
        done = op.status == "COMPLETED"
        size = sum(len(line.encode()) + 1 for line in op.lines)
        url = f"{self.base_url}/bulk-results/{shop.id}/{op.id.rsplit('/', 1)[-1]}.jsonl" if done and op.lines else None
        return {"__typename": "BulkOperation", "id": op.id, "status": op.status, "errorCode": op.error_code, "createdAt": utc_iso_s(op.created_s),
                "completedAt": utc_iso_s(op.completed_s), "objectCount": str(len(op.lines) if done else 0), "rootObjectCount": str(op.root_count if done else 0),
                "fileSize": str(size) if url else None, "url": url, "partialDataUrl": None, "query": op.query, "type": op.type}

    @api("GET", "/bulk-results/{shop}/{name}", auth=False)
    def _bulk_result_file(self, request: Request) -> Response:
        shop = self.accounts.get(request.params["shop"])
        op = shop.bulk_ops.get(f"gid://shopify/BulkOperation/{request.params['name'].removesuffix('.jsonl')}") if shop else None
        if op is None or op.status != "COMPLETED":
            return Response(404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>")
        return Response(200, {"Content-Type": "application/jsonl"}, "".join(line + "\n" for line in op.lines).encode())

    @api("POST", "/staged-uploads/{shop}", auth=False)
    @api("PUT", "/staged-uploads/{shop}/{key:path}", auth=False)
    def _staged_upload(self, request: Request) -> Response:
        shop = self.accounts.get(request.params["shop"])
        if shop is None:
            return Response(404, {}, b"")
        if request.method == "PUT":
            shop.staged[request.params["key"]] = request.body
            return Response(200, {}, b"")
        message = email.parser.BytesParser().parsebytes(f"Content-Type: {request.header('content-type') or ''}\r\n\r\n".encode() + request.body)
        fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in message.get_payload()}
        shop.staged[fields["key"].decode()] = fields.get("file", b"")
        return Response(201, {}, b"")


def _flatten(node: dict[str, Any], parent: str | None, lines: list[str]) -> None:
    """One JSONL line for ``node`` (nested connections become lines with ``__parentId``)."""
    own, children = {}, []
    for key, value in node.items():
        if isinstance(value, dict) and ("edges" in value or "nodes" in value):
            children += _connection_nodes(value)
        else:
            own[key] = value
    lines.append(json.dumps(own | ({"__parentId": parent} if parent else {}), ensure_ascii=False))
    for child in children:
        _flatten(child, node.get("id"), lines)


def _connection_nodes(connection: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a connection in the data (its ``edges``' nodes, or its ``nodes``)."""
    return [edge["node"] for edge in connection["edges"]] if "edges" in connection else connection.get("nodes", [])


def _problems(messages: list[Any]) -> UserErrors:
    return UserErrors(*((None, str(message), None) for message in messages))
