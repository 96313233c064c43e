"""Syncing specific records by id (the path webhooks take)."""

from datetime import datetime, timedelta, timezone

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.reader import HubSpotChangeReader
from crm_pipelines.sync.importer import ImportWindow, run_import
from crm_pipelines.sync.targeted import sync_ids

TOKEN = "targeted-token"


def test_changed_created_and_deleted_ids_are_applied(start_hubspot_sim, store):
    sim = start_hubspot_sim(seed=8, contacts=400, companies=0, deals=0, tokens=(TOKEN,))
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url) as client:
        now = datetime.now(timezone.utc)
        run_import(HubSpotChangeReader(client), store, "hubspot", "contacts", ImportWindow(now, now, None, now), stats=client.stats)
    changed = sim.modify("contacts", n=30)
    created = sim.create("contacts", 5)
    deleted = sim.archive("contacts", 4)
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url) as client:
        figures = sync_ids(HubSpotChangeReader(client), store, "hubspot", "contacts", changed + created + deleted + changed[:3], stats=client.stats)
    assert figures["requested"] == len(set(changed) | set(created) | set(deleted))
    assert figures["created"] == 5 and figures["deleted"] == 4
    assert figures["api_calls"] == 2  # one batch read, one read of the archived ids
    local = store.linked_records("hubspot", "contacts")
    remote = sim.records("contacts")
    assert set(local) == set(remote)
    for external_id in set(changed) - set(deleted):
        assert local[external_id]["email"] == (remote[external_id]["properties"].get("email") or None)


def test_an_older_version_never_overwrites_a_newer_one(start_hubspot_sim, store):
    """The schedule and a webhook both deliver a record: the newer version stays."""
    sim = start_hubspot_sim(seed=9, contacts=50, companies=0, deals=0, tokens=(TOKEN,))
    [target] = sim.modify("contacts", n=1)
    with HubSpotClient(access_token=TOKEN, base_url=sim.base_url) as client:
        reader = HubSpotChangeReader(client)
        sync_ids(reader, store, "hubspot", "contacts", [target], stats=client.stats)
        newest = store.linked_records("hubspot", "contacts")[target]
        # a stale page from an earlier window read arrives afterwards
        stale = [r for page in reader.by_ids("contacts", [target]) for r in page.records][0]
        older = type(stale)(stale.external_id, stale.updated_at - timedelta(minutes=10), dict(stale.fields, first_name="Stale"))
        outcome = store.apply_remote("hubspot", "contacts", [older])
    assert outcome.unchanged == 1
    assert store.linked_records("hubspot", "contacts")[target]["first_name"] == newest["first_name"]


def test_sync_ids_job_runs_in_dagster_and_reports_an_observation(start_hubspot_sim, sqlite_url):

    from crm_pipelines.dagster_defs.database import LocalDatabaseResource
    from crm_pipelines.definitions import defs
    from crm_pipelines.providers.hubspot.resource import HubSpotResource

    sim = start_hubspot_sim(seed=10, contacts=60, companies=10, deals=0, tokens=(TOKEN,))
    contacts, companies = sorted(sim.records("contacts"))[:7], sorted(sim.records("companies"))[:3]
    job = defs.resolve_job_def("hubspot_sync_ids")
    from crm_pipelines_tests.helpers.dagster import instance_with_integrations

    with instance_with_integrations() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"hubspot__sync_ids": {"config": {"ids": {"contacts": contacts, "companies": companies}}}}},
            resources={"hubspot": HubSpotResource(access_token=TOKEN, base_url=sim.base_url), "crm_db": LocalDatabaseResource(url=sqlite_url)},
        )
        assert result.success
        observations = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    by_key = {o.asset_key.to_user_string(): {k: v.value for k, v in o.metadata.items()} for o in observations}
    assert by_key["hubspot/contacts"]["created"] == 7
    assert by_key["hubspot/companies"]["created"] == 3
