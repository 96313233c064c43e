"""Shopify metafields (its custom fields): served by the simulator as the Admin API serves them,
written with their definitions' types, and read through a mapping alike on the regular
connection walk and on the bulk path (JSONL child lines with ``__parentId``)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crm_pipelines.mapping import compiled
from crm_pipelines.mapping.discovery import discover
from crm_pipelines.providers.shopify.mapping import bulk_fields, create_input, node_cost, page_size
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.providers.shopify.writer import ShopifyWriter
from crm_pipelines.sync.bulk import BulkProgress
from crm_pipelines.sync.writes import OutgoingRecord
from crm_pipelines_tests.providers.shopify.conftest import FAST

MAPPING = """version: 1
provider: shopify
entities:
  contacts:
    - {remote: metafields.custom.favorite_color, local: custom.favorite_color}
    - {remote: metafields.custom.referrals, local: custom.referrals, type: number}
    - {remote: metafields.custom.newsletter, local: custom.newsletter, type: boolean}
    - {remote: metafields.custom.birthday, local: custom.birthday, type: date}
"""
CUSTOM = ("custom.favorite_color", "custom.referrals", "custom.newsletter", "custom.birthday")


@pytest.fixture
def mapping(tmp_path):
    path = tmp_path / "shopify.yaml"
    path.write_text(MAPPING)
    return compiled("shopify", path)


def _local(i: int) -> dict:
    values = {"email": f"cliente{i}@exemplo.com.br", "first_name": f"Ana{i}", "last_name": "Lima", "phone": None, "company_name": None,
              "custom.favorite_color": ("blue", "green", None)[i % 3], "custom.referrals": i, "custom.newsletter": i % 2 == 0,
              "custom.birthday": f"1990-01-{i % 28 + 1:02d}"}
    return values


def _read(client, mapping, strategy: str) -> dict[str, dict]:
    """Each record's local values by e-mail (with the Shopify id under "id")."""
    reader = ShopifyChangeReader(client, strategy=strategy, mapping=mapping)
    return {r.fields["email"]: r.fields | {"id": r.external_id} for page in reader.changes("contacts", None, None) for r in page.records}


def test_metafields_written_with_their_types_read_back_the_same_on_both_paths(start_shopify_sim, client_for, mapping):
    sim = start_shopify_sim(seed=5, customers=0, orders=0, companies=0, **FAST)
    client = client_for(sim)
    writer = ShopifyWriter(client, mapping=mapping)
    result = writer.create("contacts", [OutgoingRecord(i, _local(i)) for i in range(1, 301)])
    assert len(result.written) == 300 and not result.rejected
    held = next(iter(sim.records("contacts").values()))["metafields"]
    assert {(m["key"], m["type"]) for m in held} >= {("referrals", "number_integer"), ("newsletter", "boolean"), ("birthday", "date")}

    regular, bulk = _read(client, mapping, "list"), _read(client, mapping, "bulk")
    assert regular == bulk
    for i in range(1, 301):
        assert {k: regular[f"cliente{i}@exemplo.com.br"][k] for k in CUSTOM} == {k: _local(i)[k] for k in CUSTOM}
    assert client.stats.by_kind.get("bulk", 0) >= 1


def test_a_bulk_export_carries_metafields_and_an_update_changes_only_the_ones_sent(start_shopify_sim, client_for, mapping):
    sim = start_shopify_sim(seed=9, customers=0, orders=0, companies=0, **FAST)
    client = client_for(sim)
    writer = ShopifyWriter(client, mapping=mapping)
    created = writer.bulk_write("contacts", [OutgoingRecord(i, _local(i)) for i in range(1, 51)], create=True, memory=None, progress=BulkProgress())
    assert len(created.written) == 50 and not created.rejected
    gid = created.written[3][0]
    changed = _local(3) | {"custom.favorite_color": None, "custom.referrals": 30}
    updated = writer.bulk_write("contacts", [OutgoingRecord(3, changed, gid)], create=False, memory=None, progress=BulkProgress())
    assert list(updated.written) == [3]
    fields = _read(client, mapping, "bulk")["cliente3@exemplo.com.br"]
    # A blank is not sent (Shopify refuses blank metafields): the colour stays, the count changes.
    assert (fields["custom.favorite_color"], fields["custom.referrals"], fields["custom.newsletter"]) == (_local(3)["custom.favorite_color"], 30, False)


def test_reads_with_metafields_stay_within_the_single_query_cost(start_shopify_sim, client_for, mapping):
    """Each aliased metafield costs 1 a node: pages shrink so a request never asks over 1,000 points."""
    assert node_cost("contacts", mapping) == 2 + 4 and page_size("contacts", mapping) == 998 // 6
    assert 'metafields(keys: ["custom.favorite_color", "custom.referrals", "custom.newsletter", "custom.birthday"])' in bulk_fields("contacts", mapping)
    sim = start_shopify_sim(seed=6, customers=400, orders=0, companies=0, **FAST)
    reader = ShopifyChangeReader(client_for(sim), strategy="list", mapping=mapping)
    assert sum(len(page.records) for page in reader.changes("contacts", None, None)) == 400 and reader.progress.pages == 3


def test_the_simulator_refuses_a_value_its_type_does_not_allow(start_shopify_sim, client_for, gql):
    sim = start_shopify_sim(seed=7, customers=0, orders=0, companies=0, **FAST)
    create = "mutation($i: CustomerInput!) { customerCreate(input: $i) { customer { id } userErrors { field message } } }"
    answers = [gql(sim, create, {"i": {"email": f"p{n}@exemplo.com", "metafields": [item]}}).json()["data"]["customerCreate"] for n, item in enumerate([
        {"namespace": "custom", "key": "referrals", "value": "two"},
        {"namespace": "custom", "key": "newsletter", "value": "yes"},
        {"namespace": "custom", "key": "birthday", "value": "01/02/1990"},
        {"namespace": "custom", "key": "referrals", "value": "2", "type": "single_line_text_field"},
        {"namespace": "custom", "key": "undefined_one", "value": "x"},
    ])]
    assert [a["userErrors"][0]["field"][-1] for a in answers] == ["value", "value", "value", "type", "type"]
    assert all(a["customer"] is None for a in answers) and sim.count("contacts") == 0


def test_owners_answer_metafield_and_metafields_as_the_admin_api_does(start_shopify_sim, client_for, gql):
    sim = start_shopify_sim(seed=8, customers=0, orders=0, companies=0, **FAST)
    created = gql(sim, "mutation($i: CustomerInput!) { customerCreate(input: $i) { customer { id } } }",
                  {"i": {"email": "m@exemplo.com", "metafields": [{"namespace": "custom", "key": "favorite_color", "value": "red"},
                                                                   {"namespace": "extra", "key": "note", "value": "x", "type": "single_line_text_field"}]}}).json()
    gid = created["data"]["customerCreate"]["customer"]["id"]
    query = ('query($id: ID!) { customer(id: $id) { color: metafield(namespace: "custom", key: "favorite_color") { value type } '
             'none: metafield(namespace: "custom", key: "birthday") { value } '
             'metafields(first: 1) { pageInfo { hasNextPage endCursor } nodes { namespace key } } '
             'custom: metafields(first: 5, namespace: "custom") { nodes { key } } } }')
    customer = gql(sim, query, {"id": gid}).json()["data"]["customer"]
    assert customer["color"] == {"value": "red", "type": "single_line_text_field"} and customer["none"] is None
    assert customer["metafields"]["pageInfo"]["hasNextPage"] and customer["metafields"]["nodes"] == [{"namespace": "custom", "key": "favorite_color"}]
    assert customer["custom"]["nodes"] == [{"key": "favorite_color"}]
    missing_first = gql(sim, "query($id: ID!) { customer(id: $id) { metafields { nodes { key } } } }", {"id": gid}).json()
    assert "first or last" in missing_first["errors"][0]["message"]

    fields = discover("shopify", client_for(sim), "contacts")
    assert {(f.remote, f.type) for f in fields} >= {("metafields.custom.favorite_color", "single_line_text_field"),
                                                    ("metafields.custom.referrals", "number_integer"), ("metafields.custom.birthday", "date")}


def test_a_metafield_without_a_definition_is_sent_with_the_mapped_fields_type(tmp_path):
    path = tmp_path / "shopify.yaml"
    path.write_text("version: 1\nprovider: shopify\nentities:\n  contacts:\n    - {remote: metafields.app.visits, local: custom.visits, type: number}\n"
                    "    - {remote: metafields.app.seen, local: custom.seen, type: date}\n")
    made = create_input("contacts", {"email": "a@b.com", "custom.visits": 3, "custom.seen": datetime(2026, 1, 2, tzinfo=timezone.utc).date().isoformat()},
                        "crm:contacts:1", mapping=compiled("shopify", path))
    assert made["metafields"] == [{"namespace": "app", "key": "visits", "value": "3", "type": "number_integer"},
                                  {"namespace": "app", "key": "seen", "value": "2026-01-02", "type": "date"}]
