"""simple-salesforce's ``sf.bulk2`` against the simulator, unchanged but for the base URL."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

simple_salesforce = pytest.importorskip("simple_salesforce")


@pytest.fixture
def sf(start_salesforce_sim):
    sim = start_salesforce_sim(seed=3, contacts=2_500, companies=0, deals=0)
    token = httpx.post(sim.base_url + "/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": sim.config.client_id,
                       "client_secret": sim.config.client_secret, "refresh_token": sim.config.refresh_tokens[0]}).json()
    client = simple_salesforce.Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="66.0")
    for name in ("base_url", "bulk_url", "bulk2_url"):  # the SDK writes https://; the simulator speaks plain HTTP
        setattr(client, name, getattr(client, name).replace("https://", "http://", 1))
    return sim, client


def rows(pages) -> list[dict[str, str]]:
    return [row for page in pages for row in csv.DictReader(io.StringIO(page))]


def test_bulk2_query_pages_through_every_record(sf):
    sim, client = sf
    found = rows(client.bulk2.Contact.query("SELECT Id, Email FROM Contact", max_records=1_000))
    assert {r["Id"] for r in found} == set(sim.records("contacts")) and len(found) == 2_500
    assert len(rows(client.bulk2.Contact.query_all("SELECT Id FROM Contact"))) == 2_500


def test_bulk2_upsert_reports_successes_failures_and_unprocessed_rows(sf):
    sim, client = sf
    records = [{"Crm_Record_Id__c": f"contacts:{i}", "LastName": f"Silva {i}", "Email": f"p{i}@exemplo.com.br"} for i in range(300)]
    records.append({"Crm_Record_Id__c": "contacts:bad", "LastName": "Souza", "Email": "not-an-email"})
    [job] = client.bulk2.Contact.upsert(records=records, external_id_field="Crm_Record_Id__c")
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (301, 1)
    [failed] = list(csv.DictReader(io.StringIO(client.bulk2.Contact.get_failed_records(job["job_id"]))))
    assert failed["sf__Error"].startswith("INVALID_EMAIL_ADDRESS") and failed["Crm_Record_Id__c"] == "contacts:bad"
    assert len(list(csv.DictReader(io.StringIO(client.bulk2.Contact.get_successful_records(job["job_id"]))))) == 300
    assert list(csv.DictReader(io.StringIO(client.bulk2.Contact.get_unprocessed_records(job["job_id"])))) == []
    assert sim.count("contacts") == 2_800
    again = client.bulk2.Contact.upsert(records=records[:300], external_id_field="Crm_Record_Id__c")
    assert again[0]["numberRecordsFailed"] == 0 and sim.count("contacts") == 2_800  # upsert on the external id: no duplicates
