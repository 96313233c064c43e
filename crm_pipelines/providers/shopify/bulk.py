"""Shopify bulk operations: a big read as one ``bulkOperationRunQuery`` (docs/bulk.md).

The query selects one connection (``customers``, ``orders``, ``companies``) with the reader's
search filter and no page size; Shopify runs it on its side and leaves a JSONL file, one object
per line, objects of nested connections after their parent with ``__parentId``. One bulk query
runs at a time per shop and app: a run finds its own operation again (remembered by id in
``sync_state``, or recognised by its query text in ``currentBulkOperation``) instead of starting
another, and waits for someone else's to end before starting its own.

Each GraphQL call (start, status polls) goes through :class:`ShopifyClient` and is charged to the
shop's cost bucket; the result file is a signed storage URL outside the Admin API (no cost).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx

from crm_pipelines.core.errors import ProviderError
from crm_pipelines.core.http import tls_context
from crm_pipelines.core.model import Page, RecordError
from crm_pipelines.providers.shopify.api import OBJECTS, ShopifyClient
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.providers.shopify.mapping import adopt_children, bulk_fields, parse_timestamp, to_remote_record
from crm_pipelines.sync.bulk import BulkJobMemory, BulkProgress, poll_interval

OPERATION_FIELDS = "id status errorCode createdAt completedAt objectCount rootObjectCount url partialDataUrl query"
RUN = f"mutation($query: String!) {{ bulkOperationRunQuery(query: $query) {{ bulkOperation {{ {OPERATION_FIELDS} }} userErrors {{ field message }} }} }}"
CURRENT = f"{{ currentBulkOperation(type: QUERY) {{ {OPERATION_FIELDS} }} }}"
NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on BulkOperation {{ {OPERATION_FIELDS} }} }} }}"
RUNNING = ("CREATED", "RUNNING", "CANCELING")
#: Records per page handed to the importer.
PAGE_RECORDS = 1_000


def bulk_query_text(entity: str, search: str | None, mapping: CompiledMapping | None = None) -> str:
    """The bulk query for ``entity`` (no ``first``: the operation reads the whole connection; mapped
    metafields come as child lines of their owner)."""
    arguments = f"(query: {json.dumps(search)})" if search else ""
    return f"{{ {OBJECTS[entity].connection}{arguments} {{ edges {{ node {{ {bulk_fields(entity, mapping)} }} }} }} }}"


class ShopifyBulkQuery:
    """Start (or find again) one shop's bulk query, wait for it, and read its JSONL file."""

    def __init__(self, client: ShopifyClient, *, sleep: Callable[[float], None] = time.sleep, timeout_s: float = 120.0) -> None:
        self.client, self._sleep, self._timeout_s = client, sleep, timeout_s

    def _operation(self, query: str, variables: dict[str, Any] | None = None, *, cost: int = 1) -> dict[str, Any]:
        return self.client.graphql(query, variables, kind="bulk_poll", cost=cost)

    def start(self, text: str, key: str, until: datetime | None, memory: BulkJobMemory | None, progress: BulkProgress) -> tuple[dict[str, Any], datetime | None]:
        """Our operation and the upper bound of its records: the one remembered for this read, the
        shop's running one if it is this very query, else a new one."""
        remembered = memory.read(key) if memory is not None else None
        if remembered:
            found = (self._operation(NODE, {"id": remembered["id"]}).get("node") or {})
            if found.get("status") in (*RUNNING, "COMPLETED"):
                progress.resumed = True
                return found, parse_timestamp(remembered.get("until"))
        while True:
            current = self._operation(CURRENT).get("currentBulkOperation") or {}
            if current.get("status") in RUNNING and current.get("query") == text:
                progress.resumed = True
                return self._remember(current, text, key, until, memory), until
            if current.get("status") in RUNNING:
                # Someone else's bulk query holds the shop's only slot: wait for it to end.
                progress.update(f"waiting for {current.get('id')}")
                self._sleep(poll_interval(min(progress.polls, 8)))
                progress.polls += 1
                continue
            answer = self.client.graphql(RUN, {"query": text}, kind="bulk", cost=10).get("bulkOperationRunQuery") or {}
            errors = answer.get("userErrors") or []
            if errors and any("in progress" in str(e.get("message")) for e in errors):
                continue
            if errors or not answer.get("bulkOperation"):
                raise ProviderError("shopify", "bulk query refused: " + "; ".join(str(e.get("message")) for e in errors), category="BULK_QUERY_REFUSED")
            return self._remember(answer["bulkOperation"], text, key, until, memory), until

    @staticmethod
    def _remember(operation: dict[str, Any], text: str, key: str, until: datetime | None, memory: BulkJobMemory | None) -> dict[str, Any]:
        if memory is not None:
            memory.put({"id": operation["id"], "kind": "query", "key": key, "query": text, "until": until.isoformat() if until else None})
        return operation

    def wait(self, operation_id: str, progress: BulkProgress) -> dict[str, Any]:
        while True:
            found = self._operation(NODE, {"id": operation_id}).get("node") or {}
            progress.polls += 1
            progress.update(str(found.get("status")), int(found.get("objectCount") or 0))
            if found.get("status") not in RUNNING:
                return found
            self._sleep(poll_interval(progress.polls))

    def lines(self, url: str) -> Iterator[dict[str, Any]]:
        """The JSONL file's objects, streamed (a 4xx: the file expired, after 7 days)."""
        with httpx.Client(timeout=self._timeout_s, verify=tls_context()) as http, http.stream("GET", url) as response:
            if response.status_code != 200:
                raise ProviderError("shopify", f"bulk result file answered HTTP {response.status_code}", status=response.status_code, category="BULK_RESULT")
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)


STAGED = ("mutation($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) "
          "{ stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }")
RUN_MUTATION = (f"mutation($mutation: String!, $path: String!) {{ bulkOperationRunMutation(mutation: $mutation, stagedUploadPath: $path) "
                f"{{ bulkOperation {{ {OPERATION_FIELDS} }} userErrors {{ field message }} }} }}")
CURRENT_MUTATION = f"{{ currentBulkOperation(type: MUTATION) {{ {OPERATION_FIELDS} }} }}"


class ShopifyBulkMutation(ShopifyBulkQuery):
    """One mutation run once per line of variables: staged upload, ``bulkOperationRunMutation``, result file."""

    def run(self, mutation: str, variables: list[dict[str, Any]], memory: BulkJobMemory | None, progress: BulkProgress) -> dict[int, dict[str, Any]]:
        """The result line of each input line, by its number (``__lineNumber``)."""
        path = self._stage("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in variables).encode())
        while True:
            current = self._operation(CURRENT_MUTATION).get("currentBulkOperation") or {}
            if current.get("status") in RUNNING:
                # The shop runs one bulk mutation at a time: wait for the running one to end.
                progress.update(f"waiting for {current.get('id')}")
                progress.polls += 1
                self._sleep(poll_interval(min(progress.polls, 8)))
                continue
            answer = self.client.graphql(RUN_MUTATION, {"mutation": mutation, "path": path}, kind="bulk", cost=10).get("bulkOperationRunMutation") or {}
            errors = answer.get("userErrors") or []
            if errors and any("in progress" in str(e.get("message")) for e in errors):
                continue
            if errors or not answer.get("bulkOperation"):
                raise ProviderError("shopify", "bulk mutation refused: " + "; ".join(str(e.get("message")) for e in errors), category="BULK_MUTATION_REFUSED")
            break
        progress.job_id = str(answer["bulkOperation"]["id"])
        if memory is not None:
            memory.put({"id": progress.job_id, "kind": "mutation"})
        final = self.wait(progress.job_id, progress)
        if final.get("status") != "COMPLETED":
            raise ProviderError("shopify", f"bulk mutation {progress.job_id} ended {final.get('status')} ({final.get('errorCode') or 'no error code'})",
                                category="BULK_" + str(final.get("status")))
        lines = {int(line["__lineNumber"]): line for line in self.lines(final["url"])} if final.get("url") else {}
        if memory is not None:
            memory.clear()
        return lines

    def settle(self, memory: BulkJobMemory, progress: BulkProgress) -> None:
        job = memory.get()
        if job and job.get("kind") == "mutation":
            progress.job_id, progress.resumed = job["id"], True
            self.wait(job["id"], progress)
        if job:
            memory.clear()

    def _stage(self, data: bytes) -> str:
        """Upload the variables file to the staged target Shopify gives; its key is the ``stagedUploadPath``."""
        answer = self.client.graphql(STAGED, {"input": [{"resource": "BULK_MUTATION_VARIABLES", "filename": "bulk_op_vars.jsonl",
                                                         "mimeType": "text/jsonl", "httpMethod": "POST"}]}, kind="bulk", cost=10)
        target = ((answer.get("stagedUploadsCreate") or {}).get("stagedTargets") or [None])[0]
        if not target:
            raise ProviderError("shopify", "no staged upload target was given", category="STAGED_UPLOAD")
        parameters = {p["name"]: p["value"] for p in target.get("parameters") or []}
        with httpx.Client(timeout=self._timeout_s, verify=tls_context()) as http:
            response = http.post(target["url"], data=parameters, files={"file": ("bulk_op_vars.jsonl", data, "text/jsonl")})
        if response.status_code >= 300:
            raise ProviderError("shopify", f"staged upload answered HTTP {response.status_code}", status=response.status_code, category="STAGED_UPLOAD")
        return parameters["key"]


def assemble(objects: Iterator[dict[str, Any]], *, page_roots: int = PAGE_RECORDS) -> Iterator[list[dict[str, Any]]]:
    """Root objects in pages, each carrying its nested objects (``__parentId``) under ``__children``.

    Shopify writes a nested object after its parent; roots are handed on once a later root
    arrives and the page is full, so children reach their parent even across lines.
    """
    page: dict[str, dict[str, Any]] = {}
    for obj in objects:
        parent = obj.pop("__parentId", None)
        if parent is not None:
            holder = page.get(parent)
            if holder is not None:
                holder.setdefault("__children", []).append(obj)
            continue
        if len(page) >= page_roots:
            yield list(page.values())
            page = {}
        page[str(obj.get("id"))] = obj
    if page:
        yield list(page.values())


def _forgetting_expired(objects: Iterator[dict[str, Any]], memory: BulkJobMemory | None) -> Iterator[dict[str, Any]]:
    """The file's objects; a file no longer there makes the next run start a new operation."""
    try:
        yield from objects
    except ProviderError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and memory is not None:
            memory.clear()
        raise


def bulk_pages(bulk: ShopifyBulkQuery, entity: str, text: str, memory: BulkJobMemory | None, progress: BulkProgress,
               on_rows: Callable[[int], None], *, key: str | None = None, until: datetime | None = None,
               mapping: CompiledMapping | None = None) -> tuple[datetime | None, Iterator[Page]]:
    """Start (or find again) the operation; until when its records are read, and its pages.

    ``key`` names the read across runs (the query without its upper bound); ``until`` is this
    read's upper bound (None: everything as of the operation's creation).
    """
    operation, until = bulk.start(text, key or text, until, memory, progress)
    progress.job_id = str(operation["id"])

    def pages() -> Iterator[Page]:
        final = bulk.wait(progress.job_id, progress)
        if final.get("status") != "COMPLETED":
            raise ProviderError("shopify", f"bulk query {progress.job_id} ended {final.get('status')} ({final.get('errorCode') or 'no error code'})",
                                category="BULK_" + str(final.get("status")))
        if not final.get("url"):
            return  # nothing matched the query
        for nodes in assemble(_forgetting_expired(bulk.lines(final["url"]), memory)):
            page = Page()
            for node in nodes:
                mapped = to_remote_record(entity, adopt_children(entity, node, mapping), mapping)
                (page.errors if isinstance(mapped, RecordError) else page.records).append(mapped)
            on_rows(len(nodes))
            yield page

    return min(filter(None, [parse_timestamp(operation.get("createdAt")), until]), default=None), pages()


__all__ = ["ShopifyBulkMutation", "ShopifyBulkQuery", "assemble", "bulk_pages", "bulk_query_text"]
