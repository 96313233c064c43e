"""Shopify through bulk operations: a big read as one bulkOperationRunQuery, found again, one at a time per shop."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from crm_pipelines.providers.shopify.bulk import assemble, bulk_query_text
from crm_pipelines.providers.shopify.reader import ShopifyChangeReader
from crm_pipelines.sync.bulk import BulkJobMemory
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines_tests.providers.shopify.conftest import FAST, TOKEN

from .test_import import expected_fields

UTC = timezone.utc
P = "shopify"


def full() -> ImportWindow:
    now = datetime.now(UTC)
    return ImportWindow(now, now, None, now, "test: full")


def read(client, store, entity="contacts", strategy="auto"):
    return run_import(ShopifyChangeReader(client, strategy=strategy), store, P, entity, full(), stats=client.stats)


def bulk_threshold(store, value):
    store.integrations.update(store.scope(P), settings={"bulk_threshold": value})


def assert_reconciled(sim, store, entity="contacts"):
    remote, local = sim.records(entity), store.linked_records(P, entity)
    assert set(local) == set(remote)
    for gid, node in remote.items():
        assert {k: local[gid][k] for k in expected_fields(entity, node)} == expected_fields(entity, node)


def start_raw(sim, text):
    return httpx.post(f"{sim.base_url}/admin/api/2026-10/graphql.json", headers={"X-Shopify-Access-Token": TOKEN},
                      json={"query": "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } userErrors { message } } }",
                            "variables": {"q": text}}).json()["data"]["bulkOperationRunQuery"]


def unfreeze_after(sim, requests):
    """Let the simulator's frozen clock run again once it has answered ``requests`` API requests."""
    def watch():
        while len(sim.stats_recorder.arrival_times()) < requests:
            time.sleep(0.02)
        sim.clock.unfreeze()
    threading.Thread(target=watch, daemon=True).start()


def test_a_full_sync_above_the_threshold_is_one_bulk_operation(start_shopify_sim, client_for, store):
    sim = start_shopify_sim(seed=4, customers=1_500, orders=300, companies=0, **FAST)
    bulk_threshold(store, 1_000)
    client = client_for(sim)
    result = read(client, store)
    meta = result.metadata()
    assert result.strategy == "bulk" and result.outcome.created == 1_500 and meta["bulk_state"] == "COMPLETED"
    assert meta["bulk_records_processed"] == 1_500 and meta["bulk_job_id"].startswith("gid://shopify/BulkOperation/")
    assert result.api["by_kind"].get("list", 0) == 0 and result.api["by_kind"]["bulk"] == 1 and result.api["by_kind"]["count"] == 1
    assert_reconciled(sim, store)
    assert BulkJobMemory(store, P, "contacts", "import").get() is None
    orders = read(client_for(sim), store, "deals")  # 300 orders: below the threshold, the regular connection walk
    assert orders.strategy == "list" and orders.outcome.created == 300
    assert_reconciled(sim, store, "deals")


def test_a_running_operation_is_found_again_and_another_ones_is_waited_for(start_shopify_sim, client_for, store):
    sim = start_shopify_sim(seed=4, customers=400, orders=0, companies=0, bulk_processing_s=3, **FAST)
    # The simulated clock stands still until the reader has asked for the shop's current operation,
    # so ours is still running when it looks, however long a busy machine takes to get there.
    sim.clock.freeze()
    ours = start_raw(sim, bulk_query_text("contacts", None))["bulkOperation"]["id"]  # as a killed run left it
    unfreeze_after(sim, requests=2)
    result = read(client_for(sim), store, strategy="bulk")
    assert result.metadata()["bulk_job_id"] == ours and result.metadata()["bulk_resumed"]
    assert len(sim.account().bulk_ops) == 1 and result.outcome.created == 400
    other = start_raw(sim, "{ orders { edges { node { id } } } }")["bulkOperation"]["id"]  # someone else's holds the slot
    again = read(client_for(sim), store, strategy="bulk")
    ops = sim.account().bulk_ops
    assert len(ops) == 3 and ops[other].status == "COMPLETED" and again.metadata()["bulk_job_id"] not in (ours, other)
    assert again.outcome.unchanged == 400
    assert_reconciled(sim, store)


class Cancelled(BaseException):
    """What a step's interrupt raises when its run is cancelled."""


def cancel() -> None:
    raise Cancelled


def test_a_cancelled_read_stops_waiting_for_its_operation_and_the_next_run_takes_it_up(start_shopify_sim, client_for, store):
    sim = start_shopify_sim(seed=4, customers=400, orders=0, companies=0, bulk_processing_s=3600, **FAST)
    client = client_for(sim)
    with pytest.raises(Cancelled):
        run_import(ShopifyChangeReader(client, strategy="bulk"), store, P, "contacts", full(), stats=client.stats, interrupt=cancel)
    assert BulkJobMemory(store, P, "contacts", "import").get() is not None
    assert store.linked_records(P, "contacts") == {}
    sim.clock.advance(3600)
    again = read(client_for(sim), store, strategy="bulk")
    assert again.metadata()["bulk_resumed"] and again.outcome.created == 400
    assert len(sim.account().bulk_ops) == 1  # taken up, not started again
    assert_reconciled(sim, store)


def test_nested_objects_reach_their_parent_by_parent_id():
    lines = [{"id": "c1"}, {"id": "a1", "__parentId": "c1"}, {"id": "c2"}, {"id": "a2", "__parentId": "c2"}, {"id": "a3", "__parentId": "c2"}, {"id": "c3"}]
    pages = list(assemble(iter(json.loads(json.dumps(line)) for line in lines), page_roots=2))
    assert [[r["id"] for r in page] for page in pages] == [["c1", "c2"], ["c3"]]
    assert [c["id"] for c in pages[0][1]["__children"]] == ["a2", "a3"] and "__parentId" not in pages[0][1]["__children"][0]


# ---------------------------------------------------------------------------------------- export


def test_an_export_above_the_threshold_is_one_bulk_mutation_with_rejects_and_updates(start_shopify_sim, client_for, store):
    from sqlalchemy import update as sql_update

    from crm_pipelines.storage.schema import contacts

    from .test_export import add_local_contacts, assert_exactly_once, export

    sim = start_shopify_sim(seed=5, customers=0, orders=0, companies=0, **FAST)
    bulk_threshold(store, 100)
    add_local_contacts(store, 400, invalid_every=40)
    first = export(client_for(sim), store)
    meta = first.metadata()
    assert (first.created, first.rejected) == (390, 10) and meta["bulk_api"] and meta["bulk_state"] == "COMPLETED"
    assert first.api["by_kind"].get("write", 0) == 0 and first.api["by_kind"]["bulk"] == 2  # staged upload target, run
    rejects = store.open_rejects(P, "contacts", "export")
    assert len(rejects) == 10 and all(r["category"] == "USER_ERROR" and "Email is invalid" in r["message"] for r in rejects)
    remote, links = assert_exactly_once(sim, store)
    assert len(remote) == len(links) == 390
    with store.engine.begin() as conn:
        conn.execute(sql_update(contacts).where(contacts.c.id <= 200).values(last_name="Bulk", updated_at=datetime.now(UTC)))
    second = export(client_for(sim), store)
    assert second.updated == 195 and second.created == 0 and second.metadata()["bulk_api"]
    assert [node["lastName"] for node in sim.records("contacts").values()].count("Bulk") == 195
    # The invalid creates whose content changed (5 of them have ids <= 200) are tried again; the
    # others wait for a change of their own.
    assert second.rejected == 5 and len(sim.account().bulk_ops) == 3  # the updates, and those creates
