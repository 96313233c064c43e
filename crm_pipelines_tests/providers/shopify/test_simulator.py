"""The Shopify simulator over raw HTTP: auth, paging, search, cost and throttling, mutations, switches."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from crm_pipelines.providers.shopify.sim_graphql import parse_search
from crm_pipelines_tests.providers.shopify.conftest import FAST, REFERENCE_TIME

CUSTOMERS = "query($first: Int!, $after: String, $query: String) { customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { pageInfo { hasNextPage endCursor } nodes { id email updatedAt defaultAddress { company } } } }"


@pytest.fixture
def sim(start_shopify_sim):
    return start_shopify_sim(seed=4, customers=600, orders=60, companies=20, reference_time=REFERENCE_TIME, **FAST)


def test_auth_version_and_body_errors(sim, gql):
    response = gql(sim, "{ customersCount { count } }", token="wrong")
    assert response.status_code == 401
    assert response.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    assert gql(sim, "{ customersCount { count } }", version="2026-02").status_code == 404
    bad = gql(sim, None, body={"variables": {}})
    assert bad.status_code == 400 and "query" in bad.json()["errors"]
    ok = gql(sim, "{ customersCount { count precision } }", version="2026-07")
    assert ok.status_code == 200 and ok.headers["X-Shopify-API-Version"] == "2026-07"
    assert ok.json()["data"]["customersCount"] == {"count": 600, "precision": "EXACT"}
    syntax = gql(sim, "{ customers(first: 2) { nodes { nope } } }").json()
    assert syntax["errors"] and "nope" in syntax["errors"][0]["message"]


def test_paging_walks_every_record_once_in_updated_order(sim, gql):
    seen, after, stamps = [], None, []
    while True:
        body = gql(sim, CUSTOMERS, {"first": 250, "after": after}).json()
        connection = body["data"]["customers"]
        seen += [n["id"] for n in connection["nodes"]]
        stamps += [(n["updatedAt"], int(n["id"].rsplit("/", 1)[1])) for n in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 600
    assert stamps == sorted(stamps)
    # the cursor is opaque base64 JSON with the last sort value and id, as Shopify's are
    decoded = json.loads(base64.b64decode(after))
    assert set(decoded) == {"last_id", "last_value"}
    too_big = gql(sim, CUSTOMERS, {"first": 251}).json()
    assert too_big["data"] is None and "250" in too_big["errors"][0]["message"]


def test_updated_at_window_and_search_terms(sim, gql):
    records = sim.records("customers")
    stamps = sorted(r["updatedAt"] for r in records.values())
    low, high = stamps[100], stamps[400]
    expected = {i for i, r in records.items() if low <= r["updatedAt"] < high}
    query = f"updated_at:>='{low}' AND updated_at:<'{high}'"
    body = gql(sim, CUSTOMERS, {"first": 250, "query": query}).json()
    got = [n["id"] for n in body["data"]["customers"]["nodes"]]
    after = body["data"]["customers"]["pageInfo"]["endCursor"]
    body = gql(sim, CUSTOMERS, {"first": 250, "after": after, "query": query}).json()
    got += [n["id"] for n in body["data"]["customers"]["nodes"]]
    assert set(got) == expected and len(got) == len(expected)

    emails = [r["email"] for r in list(records.values())[:3] if r["email"]]
    by_email = gql(sim, CUSTOMERS, {"first": 10, "query": " OR ".join(f"email:'{e.upper()}'" for e in emails)}).json()
    assert sorted(n["email"] for n in by_email["data"]["customers"]["nodes"]) == sorted(emails)
    # unknown fields are ignored and reported, as the Admin API does
    warned = gql(sim, CUSTOMERS, {"first": 1, "query": "colour:blue"}).json()
    assert warned["extensions"]["search"][0]["warnings"][0]["field"] == "colour"
    assert len(warned["data"]["customers"]["nodes"]) == 1


def test_search_syntax_parser():
    search = parse_search("tag:'crm:contacts:1' OR email:a@b.com AND -state:disabled", frozenset({"tag", "email", "state"}))
    assert [[(t.field, t.value, t.negated) for t in g] for g in search.groups] == [
        [("tag", "crm:contacts:1", False)], [("email", "a@b.com", False), ("state", "disabled", True)],
    ]
    assert search.matches(lambda f: {"tag": ["crm:contacts:1"]}.get(f))
    assert not search.matches(lambda f: {"email": "a@b.com", "state": "DISABLED"}.get(f))


def test_cost_is_reported_requested_and_actual(start_shopify_sim, gql):
    sim = start_shopify_sim(customers=600, reference_time=REFERENCE_TIME)
    body = gql(sim, CUSTOMERS, {"first": 250}).json()
    cost = body["extensions"]["cost"]
    # connection 2 + 250 x (customer 1 + defaultAddress 1)
    assert cost["requestedQueryCost"] == 502
    returned = body["data"]["customers"]["nodes"]
    assert cost["actualQueryCost"] == 2 + sum(1 + (n["defaultAddress"] is not None) for n in returned)
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 2000.0 and status["restoreRate"] == 100.0
    # The actual cost left the bucket; the bucket refills at 100/s meanwhile (never above its size).
    assert 2000 - cost["actualQueryCost"] - 2 <= status["currentlyAvailable"] <= 2000
    small = gql(sim, CUSTOMERS, {"first": 250, "query": "email:nobody@nowhere.com"}).json()["extensions"]["cost"]
    assert (small["requestedQueryCost"], small["actualQueryCost"]) == (502, 2)  # unused points refunded
    mutation = gql(sim, "mutation($a: CustomerInput!, $b: CustomerInput!) { a: customerCreate(input: $a) { customer { id } userErrors { field message } } b: customerCreate(input: $b) { customer { id } userErrors { field message } } }",
                   {"a": {"email": "novo@exemplo.com.br"}, "b": {"email": "x"}}).json()
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 20
    plus = start_shopify_sim(customers=1, plan="plus")
    plus_status = gql(plus, "{ customersCount { count } }").json()["extensions"]["cost"]["throttleStatus"]
    assert (plus_status["maximumAvailable"], plus_status["restoreRate"]) == (20000.0, 1000.0)
    assert 19999 <= plus_status["currentlyAvailable"] <= 20000


@pytest.mark.parametrize("status", [200, 429])
def test_throttled_when_requested_cost_exceeds_available(start_shopify_sim, gql, status):
    # Restoring 0.1 point a second, the second query stays throttled however slowly the machine runs (40 s of margin).
    sim = start_shopify_sim(customers=300, bucket_size=1000.0, restore_rate=0.1, throttled_http_status=status)
    assert gql(sim, CUSTOMERS, {"first": 250}).status_code == 200  # 502 of 1000
    response = gql(sim, CUSTOMERS, {"first": 250})
    assert response.status_code == status
    body = response.json()
    assert body["errors"] == [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 502 and cost["actualQueryCost"] is None
    assert cost["throttleStatus"]["currentlyAvailable"] < 502
    assert sim.stats["rate_limited_total"] == 1
    # a cheaper query still fits
    assert gql(sim, "{ customersCount { count } }").json()["data"]["customersCount"]["count"] == 300


def test_single_query_cost_cap(sim, gql):
    body = gql(sim, "{ a: customers(first: 250) { nodes { id defaultAddress { company } } } b: customers(first: 250) { nodes { id defaultAddress { company } } } }").json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED" and "1004" in body["errors"][0]["message"]


def test_aliased_mutations_fail_one_by_one(sim, gql):
    existing = next(r["email"] for r in sim.records("customers").values() if r["email"])
    inputs = {"a": {"email": "Nova.Pessoa@Exemplo.com.br", "firstName": "Conceição", "tags": ["crm:contacts:1"], "phone": "(11) 98765-4321"},
              "b": {"email": "sem-arroba"}, "c": {"email": existing}, "d": {"note": "nada"}, "e": {"firstName": "Zoë", "phone": "12"}}
    declarations = ", ".join(f"${k}: CustomerInput!" for k in inputs)
    calls = " ".join(f"{k}: customerCreate(input: ${k}) {{ customer {{ id email phone tags }} userErrors {{ field message }} }}" for k in inputs)
    before = sim.count("customers")
    body = gql(sim, f"mutation({declarations}) {{ {calls} }}", inputs).json()
    data = body["data"]
    assert data["a"]["userErrors"] == [] and data["a"]["customer"]["email"] == "nova.pessoa@exemplo.com.br"
    assert data["a"]["customer"]["phone"] == "+5511987654321" and data["a"]["customer"]["tags"] == ["crm:contacts:1"]
    assert data["b"]["userErrors"] == [{"field": ["email"], "message": "Email is invalid"}]
    assert data["c"]["userErrors"] == [{"field": ["email"], "message": "Email has already been taken"}]
    assert data["d"]["userErrors"][0]["message"] == "A name, phone number, or email address must be present"
    assert data["e"]["userErrors"] == [{"field": ["phone"], "message": "Phone is invalid"}]
    assert sim.count("customers") == before + 1
    tagged = gql(sim, CUSTOMERS, {"first": 5, "query": "tag:'crm:contacts:1'"}).json()["data"]["customers"]["nodes"]
    assert [n["id"] for n in tagged] == [data["a"]["customer"]["id"]]


def test_orders_and_companies_mutations(sim, gql):
    order = gql(sim, "mutation($o: OrderCreateOrderInput!) { orderCreate(order: $o) { order { id name totalPriceSet { shopMoney { amount currencyCode } } displayFinancialStatus tags } userErrors { field message } } }",
                {"o": {"currency": "BRL", "financialStatus": "PAID", "tags": ["crm:deals:9"], "lineItems": [{"title": "Açaí", "quantity": 2, "priceSet": {"shopMoney": {"amount": "10.25", "currencyCode": "BRL"}}}]}}).json()
    created = order["data"]["orderCreate"]["order"]
    assert created["totalPriceSet"]["shopMoney"] == {"amount": "20.50", "currencyCode": "BRL"} and created["displayFinancialStatus"] == "PAID"
    empty = gql(sim, "mutation { orderCreate(order: {currency: \"BRL\"}) { order { id } userErrors { field message } } }").json()
    assert empty["data"]["orderCreate"]["userErrors"][0]["field"] == ["order", "lineItems"]
    company = "mutation($i: CompanyCreateInput!) { companyCreate(input: $i) { company { id externalId } userErrors { field message } } }"
    first = gql(sim, company, {"i": {"company": {"name": "Pão Dourado Ltda", "externalId": "crm:companies:1"}}}).json()["data"]["companyCreate"]
    assert first["userErrors"] == [] and first["company"]["externalId"] == "crm:companies:1"
    again = gql(sim, company, {"i": {"company": {"name": "Outra", "externalId": "crm:companies:1"}}}).json()["data"]["companyCreate"]
    assert again["userErrors"][0]["message"] == "External Id has already been taken"
    blank = gql(sim, company, {"i": {"company": {"name": ""}}}).json()["data"]["companyCreate"]
    assert blank["userErrors"][0]["message"] == "Name can't be blank"


def test_deletions_are_destroy_events_and_null_nodes(sim, gql):
    gone = sim.delete("contacts", 3)
    alive = next(iter(sim.records("customers")))
    body = gql(sim, '{ events(first: 10, query: "subject_type:CUSTOMER AND action:destroy") { nodes { id createdAt ... on BasicEvent { subjectId subjectType action } } } }').json()
    assert sorted(e["subjectId"] for e in body["data"]["events"]["nodes"]) == sorted(gone)
    nodes = gql(sim, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [gone[0], alive]}).json()["data"]["nodes"]
    assert nodes == [None, {"id": alive}]


def test_count_precision_caps(start_shopify_sim, gql):
    sim = start_shopify_sim(customers=120)
    assert gql(sim, "{ customersCount(limit: 100) { count precision } }").json()["data"]["customersCount"] == {"count": 100, "precision": "AT_LEAST"}
    assert gql(sim, "{ customersCount(limit: null) { count precision } }").json()["data"]["customersCount"] == {"count": 120, "precision": "EXACT"}


def test_store_without_b2b_denies_companies(start_shopify_sim, gql):
    sim = start_shopify_sim(companies=5, b2b=False)
    body = gql(sim, "{ companies(first: 5) { nodes { id } } }").json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED" and "companies" in body["errors"][0]["message"]
    assert gql(sim, "{ customers(first: 1) { nodes { id } } }").json()["data"]["customers"]["nodes"]


def test_injected_faults_are_shopify_shaped(sim, gql):
    sim.fail_next(1, 429)
    throttled = gql(sim, "{ customersCount { count } }")
    assert throttled.status_code == 429 and throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    sim.fail_next(1, 503)
    unavailable = gql(sim, "{ customersCount { count } }")
    assert unavailable.status_code == 503 and unavailable.json() == {"errors": "Service Unavailable"}


def test_clock_and_python_side_changes(sim, gql):
    sim.clock.set(REFERENCE_TIME + timedelta(days=2))
    changed = sim.modify("contacts", n=5)
    created = sim.create("contacts", 2)
    query = f"updated_at:>='{(REFERENCE_TIME + timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    nodes = gql(sim, CUSTOMERS, {"first": 50, "query": query}).json()["data"]["customers"]["nodes"]
    assert {n["id"] for n in nodes} == set(changed) | set(created)
