"""The HubSpot webhook sensor: inbox rows -> one coalesced targeted run, cursor advanced."""

import json

import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.definitions import defs
from crm_pipelines.providers.hubspot.resource import HubSpotResource
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.webhooks.inbox import WebhookInbox
from crm_pipelines.webhooks.parsing import parse_hubspot


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
    assert request.run_key == "hubspot:inbox:1-5"
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
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("hubspot_sync_ids").execute_in_process(
            instance=instance, run_config=request.run_config,
            resources={"hubspot": HubSpotResource(access_token="tok", base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=sqlite_url)},
        )
    assert result.success
    assert created in store.linked_records("hubspot", "contacts")
    [row] = WebhookInbox(store.engine).read_after("hubspot", 0, 10)
    assert row["processed_at"] is not None
    store.dispose()
