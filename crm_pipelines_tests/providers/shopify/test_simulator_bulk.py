"""Shopify bulk operations on the simulator: a bulk query's JSONL, one at a time, the finish webhook, bulk mutations."""

from __future__ import annotations

import json

import httpx
import pytest

from crm_pipelines.providers.shopify.simulator import DEFAULT_TOKEN, ShopifySimConfig, ShopifySimulator

from ...simulators.test_hubspot_webhooks import Receiver

RUN = 'mutation { bulkOperationRunQuery(query: "{ customers { edges { node { id email updatedAt } } } }") { bulkOperation { id status } userErrors { message } } }'
CURRENT = "{ currentBulkOperation { id status objectCount rootObjectCount url fileSize } }"


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def sim(receiver):
    simulator = ShopifySimulator(ShopifySimConfig(customers=300, orders=0, companies=0, bulk_processing_s=20, webhook_url=receiver.url)).start()
    yield simulator
    simulator.stop()


def gql(sim, query: str, **variables) -> dict:
    answer = httpx.post(f"{sim.base_url}/admin/api/2025-01/graphql.json", json={"query": query, "variables": variables}, headers={"X-Shopify-Access-Token": DEFAULT_TOKEN})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_bulk_query_runs_one_at_a_time_and_leaves_a_jsonl_file(sim, receiver):
    started = gql(sim, RUN)["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "RUNNING"
    assert "already in progress" in gql(sim, RUN)["bulkOperationRunQuery"]["userErrors"][0]["message"]
    assert gql(sim, CURRENT)["currentBulkOperation"]["url"] is None
    sim.clock.advance(21)
    current = gql(sim, CURRENT)["currentBulkOperation"]
    assert current["status"] == "COMPLETED" and current["objectCount"] == current["rootObjectCount"] == "300"
    lines = httpx.get(current["url"]).text.splitlines()
    assert len(lines) == 300 and int(current["fileSize"]) == sum(len(line.encode()) + 1 for line in lines)
    assert {json.loads(line)["id"] for line in lines} == set(sim.records("customers"))
    assert sim.webhooks.flush(10)
    finish = [json.loads(body) for headers, body in receiver.deliveries if headers.get("X-Shopify-Topic") == "bulk_operations/finish"]
    assert finish == [{"admin_graphql_api_id": started["bulkOperation"]["id"], "completed_at": finish[0]["completed_at"],
                       "created_at": finish[0]["created_at"], "error_code": None, "status": "completed", "type": "query"}]
    assert gql(sim, RUN)["bulkOperationRunQuery"]["userErrors"] == []  # the first one finished


def test_bulk_mutation_runs_each_staged_line(sim):
    target = gql(sim, 'mutation { stagedUploadsCreate(input: [{resource: BULK_MUTATION_VARIABLES, filename: "vars.jsonl", mimeType: "text/jsonl", httpMethod: POST}]) '
                      "{ stagedTargets { url parameters { name value } } userErrors { message } } }")["stagedUploadsCreate"]["stagedTargets"][0]
    key = next(p["value"] for p in target["parameters"] if p["name"] == "key")
    variables = [{"input": {"email": f"bulk{n}@exemplo.com.br", "firstName": "Ana"}} for n in range(3)] + [{"input": {"email": "not-an-email"}}]
    upload = httpx.post(target["url"], data={"key": key}, files={"file": ("vars.jsonl", "\n".join(json.dumps(v) for v in variables).encode())})
    assert upload.status_code == 201
    mutation = "mutation call($input: CustomerInput!) { customerCreate(input: $input) { customer { id } userErrors { message } } }"
    run = gql(sim, "mutation run($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { message } } }",
              m=mutation, p=key)["bulkOperationRunMutation"]
    assert run["userErrors"] == []
    sim.clock.advance(21)
    current = gql(sim, "{ currentBulkOperation(type: MUTATION) { status url } }")["currentBulkOperation"]
    results = [json.loads(line) for line in httpx.get(current["url"]).text.splitlines()]
    assert [r["__lineNumber"] for r in results] == [0, 1, 2, 3] and sim.count("customers") == 303
    assert results[3]["data"]["customerCreate"]["userErrors"][0]["message"] == "Email is invalid"
