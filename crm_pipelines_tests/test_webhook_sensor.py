"""The HubSpot webhook sensor: inbox rows -> one coalesced targeted run, cursor advanced."""

import json

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.parsing import parse_hubspot
from crm_pipelines_tests.helpers.dagster import instance_with_integrations


def deliver(store, events):
    body = json.dumps(events).encode()
    return WebhookInbox(store.engine).store("hubspot", parse_hubspot(body, {}), body)


def event(event_id, kind, object_id, **extra):
    return {"eventId": event_id, "subscriptionType": kind, "objectId": object_id, "occurredAt": 1767225600000, "attemptNumber": 0, **extra}


def evaluate(sensor, url, cursor=None):
    with dg.build_sensor_context(cursor=cursor, resources={"crm_db": LocalDatabaseResource(url=url)}) as context:
        return sensor.evaluate_tick(context)


def test_tick_coalesces_events_into_one_run_and_advances_the_cursor(sqlite_url):
    store = LocalStore.open(sqlite_url)
    deliver(store, [event(1, "contact.propertyChange", 101, propertyName="email"), event(2, "contact.propertyChange", 101, propertyName="phone"),
                    event(3, "company.creation", 5000000001), event(4, "deal.deletion", 9000000001)])
    deliver(store, [event(2, "contact.propertyChange", 101, propertyName="phone"), event(5, "contact.creation", 102)])  # 2 is a duplicate delivery
    sensor = defs.get_repository_def().get_sensor_def("hubspot_webhooks")

    result = evaluate(sensor, sqlite_url)
    [request] = result.run_requests
    config = request.run_config["ops"]["hubspot__sync_ids"]["config"]
    assert config["ids"] == {"companies": ["5000000001"], "contacts": ["101", "102"], "deals": ["9000000001"]}
    assert request.run_key == "hubspot:default:inbox:1-5"
    assert config["integration"] == "default"
    assert result.cursor == "5"

    # nothing new: no run, cursor unchanged
    again = evaluate(sensor, sqlite_url, cursor=result.cursor)
    assert not again.run_requests

    deliver(store, [event(6, "contact.propertyChange", 103, propertyName="email")])
    later = evaluate(sensor, sqlite_url, cursor=result.cursor)
    assert later.run_requests[0].run_config["ops"]["hubspot__sync_ids"]["config"]["ids"] == {"contacts": ["103"]}
    assert later.cursor == "6"
    store.dispose()


def test_sensor_run_syncs_the_records_and_marks_the_events_processed(start_hubspot_sim, sqlite_url):
    sim = start_hubspot_sim(seed=12, contacts=20, companies=0, deals=0, tokens=("tok",))
    store = LocalStore.open(sqlite_url)
    [created] = sim.create("contacts", 1)
    deliver(store, [event(1, "contact.creation", int(created))])
    sensor = defs.get_repository_def().get_sensor_def("hubspot_webhooks")
    [request] = evaluate(sensor, sqlite_url).run_requests
    with instance_with_integrations() as instance:
        result = defs.resolve_job_def("hubspot_sync_ids").execute_in_process(
            instance=instance, run_config=request.run_config,
            resources={"hubspot": HubSpotResource(access_token="tok", base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=sqlite_url)},
        )
    assert result.success
    assert created in store.linked_records("hubspot", "contacts")
    [row] = WebhookInbox(store.engine).read_after("hubspot", 0, 10)
    assert row["processed_at"] is not None
    store.dispose()


def test_a_merge_reaches_the_local_database(start_hubspot_sim, sqlite_url):
    """HubSpot merges B into A: the merge webhook makes the sensor sync both; B goes, A stays."""
    from datetime import datetime, timezone

    from crm_pipelines.providers.hubspot.api import HubSpotClient
    from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
    from crm_pipelines.sync.importer import ImportWindow, run_import

    store = LocalStore.open(sqlite_url)
    deliveries = []

    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        """Collects the simulator's deliveries (their signatures are tested elsewhere)."""

        def do_POST(self):  # noqa: N802
            deliveries.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sim = start_hubspot_sim(seed=13, contacts=30, companies=0, deals=0, tokens=("tok",), webhook_url=f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        with HubSpotClient(access_token="tok", base_url=sim.base_url) as client:
            now = datetime.now(timezone.utc)
            run_import(HubSpotChangeReader(client), store, "hubspot", "contacts", ImportWindow(now, now, None, now), stats=client.stats)
        primary, merged = sorted(sim.records("contacts"), key=int)[:2]
        sim.merge("contacts", primary, merged)
        assert sim.webhooks.flush(10)
        for body in deliveries:
            WebhookInbox(store.engine).store("hubspot", parse_hubspot(body, {}), body)
        [event] = [json.loads(b) for b in deliveries][0]
        assert event["subscriptionType"] == "contact.merge" and event["mergedObjectIds"] == [int(merged)]

        [request] = evaluate(defs.get_repository_def().get_sensor_def("hubspot_webhooks"), sqlite_url).run_requests
        assert set(request.run_config["ops"]["hubspot__sync_ids"]["config"]["ids"]["contacts"]) == {primary, merged}
        with instance_with_integrations() as instance:
            assert defs.resolve_job_def("hubspot_sync_ids").execute_in_process(
                instance=instance, run_config=request.run_config,
                resources={"hubspot": HubSpotResource(access_token="tok", base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=sqlite_url)},
            ).success
        local = store.linked_records("hubspot", "contacts")
        assert primary in local and merged not in local
        assert set(local) == set(sim.records("contacts"))
    finally:
        server.shutdown()
        server.server_close()
        store.dispose()
