"""Several accounts in one simulator: each has its own token, records, limits and account id."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest

from crm_pipelines.providers.hubspot.simulator import DEFAULT_TOKEN, HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.providers.pipedrive.simulator import PipedriveSimulator
from crm_pipelines.providers.salesforce.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SalesforceSimConfig, SalesforceSimulator
from crm_pipelines.providers.shopify.simulator import DEFAULT_TOKEN as SHOPIFY_TOKEN
from crm_pipelines.providers.shopify.simulator import ShopifySimConfig, ShopifySimulator
from crm_pipelines.simulator import AccountSpec
from crm_pipelines.simulator.__main__ import add_common_arguments, fault_config_from_args

from .test_hubspot_webhooks import Receiver

CONTACTS = "/crm/v3/objects/contacts"


@pytest.fixture
def started():
    sims = []

    def _start(sim):
        sims.append(sim.start())
        return sim

    yield _start
    for sim in sims:
        sim.stop()


def emails(client: httpx.Client) -> set[str]:
    return {r["properties"]["email"] for r in client.get(CONTACTS, params={"limit": 100}).json()["results"]}


def test_hubspot_portals_have_their_own_records_limits_and_portal_id(started):
    receiver = Receiver()
    sim = started(HubSpotSimulator(HubSpotSimConfig(contacts=20, companies=0, deals=0, burst_limit=5, webhook_url=receiver.url,
                                                    accounts=(AccountSpec("777", ("tok-b",)),))))
    try:
        first = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        second = httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer tok-b"})
        assert len(emails(first)) == len(emails(second)) == 20 and not emails(first) & emails(second)
        assert {r["properties"]["email"] for r in sim.records("contacts", account="777").values()} == emails(second)
        statuses = [first.get(CONTACTS).status_code for _ in range(6)]
        assert statuses[-1] == 429  # the default portal's burst window is spent...
        assert second.get(CONTACTS).status_code == 200  # ...the other portal's is not
        created = second.post(CONTACTS, json={"properties": {"email": "nova@exemplo.com.br"}}).json()["id"]
        assert sim.count("contacts", account="777") == 21 and sim.count("contacts") == 20
        assert sim.webhooks.flush(10)
        [event] = [e for e in receiver.events() if str(e["objectId"]) == created and e["subscriptionType"] == "contact.creation"]
        assert event["portalId"] == 777
        first.close()
        second.close()
    finally:
        receiver.close()


def test_accounts_are_added_through_the_admin_route(started):
    sim = started(HubSpotSimulator(HubSpotSimConfig(contacts=5, companies=0, deals=0)))
    added = httpx.post(f"{sim.base_url}/_simulator/accounts", json={"id": "4242", "tokens": ["tok-new"], "records": {"contacts": 3}})
    assert added.status_code == 201 and added.json()["records"]["contacts"] == 3
    listed = httpx.get(f"{sim.base_url}/_simulator/accounts").json()["accounts"]
    assert [a["id"] for a in listed] == ["62515", "4242"] and "tok-new" not in json.dumps(listed)
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer tok-new"}) as client:
        assert len(client.get(CONTACTS).json()["results"]) == 3
    assert httpx.post(f"{sim.base_url}/_simulator/accounts", json={"tokens": ["x"]}).status_code == 400
    assert httpx.post(f"{sim.base_url}/_simulator/accounts", json={"id": "4242"}).status_code == 400  # exists


def test_shopify_routes_by_shop_domain_as_well_as_token(started):
    sim = started(ShopifySimulator(ShopifySimConfig(customers=4, orders=0, companies=0, accounts=(AccountSpec("outra-loja", ("shpat_outra",)),))))
    query = {"query": "{ customers(first: 10) { nodes { id email } } }"}
    url = f"{sim.base_url}/admin/api/2025-01/graphql.json"

    def customers(token: str, host: str | None = None) -> httpx.Response:
        headers = {"X-Shopify-Access-Token": token} | ({"Host": host} if host else {})
        return httpx.post(url, json=query, headers=headers)

    mine, theirs = customers(SHOPIFY_TOKEN), customers("shpat_outra", "outra-loja.myshopify.com")
    assert mine.status_code == theirs.status_code == 200
    assert {c["email"] for c in mine.json()["data"]["customers"]["nodes"]} != {c["email"] for c in theirs.json()["data"]["customers"]["nodes"]}
    assert customers(SHOPIFY_TOKEN, "outra-loja.myshopify.com").status_code == 401  # a token of another shop
    assert customers(SHOPIFY_TOKEN, "loja-simulada.myshopify.com").status_code == 200


def test_salesforce_org_sessions_name_their_org(started):
    sim = started(SalesforceSimulator(SalesforceSimConfig(contacts=6, companies=0, deals=0,
                                                          accounts=(AccountSpec("00D5g00000OTHER", refresh_tokens=("rt-other",), records={"contacts": 2}),))))
    form = {"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": "rt-other"}
    token = httpx.post(f"{sim.base_url}/services/oauth2/token", data=form).json()
    assert token["access_token"].startswith("00D5g00000OTHER!") and token["instance_url"] == sim.base_url
    query = {"q": "SELECT Id FROM Contact"}
    other = httpx.get(f"{sim.base_url}/services/data/v66.0/query", params=query, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert other.json()["totalSize"] == 2
    assert sim.api_usage(account="00D5g00000OTHER")["used"] == 1 and sim.api_usage()["used"] == 0
    wrong_instance = {"Authorization": f"Bearer {token['access_token']}", "Host": "00d5g00000simorg.my.salesforce.com"}
    assert httpx.get(f"{sim.base_url}/services/data/v66.0/query", params=query, headers=wrong_instance).status_code == 401


def test_command_line_adds_accounts():
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    PipedriveSimulator.add_cli_arguments(parser)
    args = parser.parse_args(["--persons", "3", "--organizations", "0", "--deals", "0", "--account", "555=tok-2,tok-3"])
    args.faults = fault_config_from_args(args)
    sim = PipedriveSimulator.from_cli_args(args)
    assert list(sim.accounts) == ["9876543", "555"] and sim.count("persons", account="555") == 3
    assert sim.records("persons") != sim.records("persons", account="555")


def test_percent_encoded_path_segments_are_decoded(started):
    sim = started(HubSpotSimulator(HubSpotSimConfig(contacts=5, companies=0, deals=0)))
    contact = next(r for r in sim.records("contacts").values() if r["properties"]["email"])
    email = contact["properties"]["email"]
    url = f"{sim.base_url}{CONTACTS}/{email.replace('@', '%40')}?idProperty=email"
    found = httpx.get(url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    assert found.status_code == 200 and found.json()["id"] == contact["id"]
