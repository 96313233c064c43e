"""Salesforce Bulk API 2.0 on the simulator: query jobs with CSV pages and locators, ingest jobs with results."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from crm_pipelines.providers.salesforce.simulator import SalesforceSimConfig, SalesforceSimulator

JOBS = "/services/data/v66.0/jobs"


@pytest.fixture
def sim():
    simulator = SalesforceSimulator(SalesforceSimConfig(contacts=250, companies=0, deals=0, tokens=("tok",), bulk_processing_s=30)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def api(sim):
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer tok"}) as client:
        yield client


def rows(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


def test_query_job_runs_then_pages_its_csv_with_locators(sim, api):
    job = api.post(f"{JOBS}/query", json={"operation": "query", "query": "SELECT Id, Email, SystemModstamp FROM Contact ORDER BY Id"}).json()
    assert job["state"] == "UploadComplete" and job["object"] == "Contact" and job["id"].startswith("750")
    assert api.get(f"{JOBS}/query/{job['id']}").json()["state"] == "InProgress"
    assert api.get(f"{JOBS}/query/{job['id']}/results").status_code == 400  # not complete yet
    sim.clock.advance(31)
    info = api.get(f"{JOBS}/query/{job['id']}").json()
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 250
    seen, locator = [], None
    while locator != "null":
        page = api.get(f"{JOBS}/query/{job['id']}/results", params={"maxRecords": 100, **({"locator": locator} if locator else {})})
        assert page.headers["Content-Type"].startswith("text/csv") and int(page.headers["Sforce-NumberOfRecords"]) == len(rows(page))
        seen += rows(page)
        locator = page.headers["Sforce-Locator"]
    assert [r["Id"] for r in seen] == sorted(sim.records("contacts")) and seen[0]["SystemModstamp"].endswith("Z")
    assert api.post(f"{JOBS}/query", json={"operation": "query", "query": "SELECT Nope FROM Contact"}).json()[0]["errorCode"] == "INVALID_FIELD"
    assert api.patch(f"{JOBS}/query/{job['id']}", json={"state": "Aborted"}).status_code == 400  # already complete
    assert api.delete(f"{JOBS}/query/{job['id']}").status_code == 204 and api.get(f"{JOBS}/query/{job['id']}").status_code == 404


def test_ingest_job_upserts_rows_and_reports_each_one(sim, api):
    existing_id = next(iter(sim.records("contacts")))
    job = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "upsert", "externalIdFieldName": "Crm_Record_Id__c"}).json()
    assert job["state"] == "Open" and job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    upload = "Crm_Record_Id__c,LastName,Email\ncontacts:1,Silva,ana@exemplo.com.br\ncontacts:2,,sem-sobrenome@exemplo.com.br\ncontacts:3,Souza,bad-email\n"
    assert api.put(f"{JOBS}/ingest/{job['id']}/batches", content=upload, headers={"Content-Type": "text/csv"}).status_code == 201
    assert api.put(f"{JOBS}/ingest/{job['id']}/batches", content="Crm_Record_Id__c,LastName\ncontacts:4,Lima\n", headers={"Content-Type": "text/csv"}).status_code == 400
    assert api.put(f"{JOBS}/ingest/{job['id']}/batches", content="Crm_Record_Id__c,LastName,Email\ncontacts:4,Lima,\n", headers={"Content-Type": "text/csv"}).status_code == 201
    assert api.patch(f"{JOBS}/ingest/{job['id']}", json={"state": "UploadComplete"}).json()["state"] == "UploadComplete"
    assert api.get(f"{JOBS}/ingest/{job['id']}").json()["state"] == "InProgress"
    sim.clock.advance(31)
    info = api.get(f"{JOBS}/ingest/{job['id']}").json()
    assert info["state"] == "JobComplete" and (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 2)
    done = rows(api.get(f"{JOBS}/ingest/{job['id']}/successfulResults/"))
    failed = rows(api.get(f"{JOBS}/ingest/{job['id']}/failedResults/"))
    assert [(r["Crm_Record_Id__c"], r["sf__Created"]) for r in done] == [("contacts:1", "true"), ("contacts:4", "true")]
    assert {r["Crm_Record_Id__c"]: r["sf__Error"].split(":")[0] for r in failed} == {"contacts:2": "REQUIRED_FIELD_MISSING", "contacts:3": "INVALID_EMAIL_ADDRESS"}
    assert sim.records("contacts")[done[0]["sf__Id"]]["Email"] == "ana@exemplo.com.br" and sim.count("contacts") == 252
    again = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "upsert", "externalIdFieldName": "Crm_Record_Id__c"}).json()
    api.put(f"{JOBS}/ingest/{again['id']}/batches", content="Crm_Record_Id__c,Title\ncontacts:1,CEO\n", headers={"Content-Type": "text/csv"})
    api.patch(f"{JOBS}/ingest/{again['id']}", json={"state": "UploadComplete"})
    sim.clock.advance(31)
    assert rows(api.get(f"{JOBS}/ingest/{again['id']}/successfulResults/"))[0]["sf__Created"] == "false" and sim.count("contacts") == 252
    delete = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "delete"}).json()
    api.put(f"{JOBS}/ingest/{delete['id']}/batches", content=f"Id\n{existing_id}\n", headers={"Content-Type": "text/csv"})
    api.patch(f"{JOBS}/ingest/{delete['id']}", json={"state": "UploadComplete"})
    assert existing_id in sim.records("contacts", deleted=True)


def test_ingest_with_an_unknown_column_fails_the_job(sim, api):
    job = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "insert"}).json()
    api.put(f"{JOBS}/ingest/{job['id']}/batches", content="LastName,Nope__c\nSilva,x\n", headers={"Content-Type": "text/csv"})
    info = api.patch(f"{JOBS}/ingest/{job['id']}", json={"state": "UploadComplete"}).json()
    assert info["state"] == "Failed" and "Nope__c" in info["errorMessage"]
    assert api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "merge"}).status_code == 400
    limits = api.get("/services/data/v66.0/limits").json()
    assert limits["DailyBulkApiBatches"] == {"Max": 15_000, "Remaining": 15_000}  # a job failing on its header processes no batch


def ingest(api, csv_text: str) -> dict:
    job = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "insert"}).json()
    api.put(f"{JOBS}/ingest/{job['id']}/batches", content=csv_text, headers={"Content-Type": "text/csv"})
    api.patch(f"{JOBS}/ingest/{job['id']}", json={"state": "UploadComplete"})
    return api.get(f"{JOBS}/ingest/{job['id']}").json()


def test_daily_bulk_allocations_show_in_limits_and_refuse_jobs_once_spent():
    config = SalesforceSimConfig(contacts=30, companies=0, deals=0, tokens=("tok",), bulk_query_jobs_per_day=2, bulk_batches_per_day=3,
                                 bulk_batch_records=2, bulk_query_storage_kb_per_day=4096)
    with SalesforceSimulator(config) as sim, httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer tok"}) as api:
        limits = api.get("/services/data/v66.0/limits").json()
        assert limits["DailyBulkV2QueryJobs"] == {"Max": 2, "Remaining": 2} and limits["DailyBulkApiBatches"] == {"Max": 3, "Remaining": 3}
        assert limits["DailyBulkV2QueryFileStorageMB"] == {"Max": 4, "Remaining": 4}
        query = {"operation": "query", "query": "SELECT Id, Email FROM Contact"}
        assert api.post(f"{JOBS}/query", json=query).status_code == api.post(f"{JOBS}/query", json=query).status_code == 200
        refused = api.post(f"{JOBS}/query", json=query)
        assert refused.status_code == 400
        assert refused.json() == [{"errorCode": "LIMIT_EXCEEDED", "message": "Max bulk v2 query jobs (2) per 24 hrs has been reached (3)"}]
        assert api.get("/services/data/v66.0/limits").json()["DailyBulkV2QueryJobs"]["Remaining"] == 0
        # Five rows take three batches of two: none is left.
        assert ingest(api, "LastName\nA\nB\nC\nD\nE\n")["state"] == "JobComplete"
        assert api.get("/services/data/v66.0/limits").json()["DailyBulkApiBatches"]["Remaining"] == 0
        refused = api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "insert"})
        assert refused.status_code == 400 and refused.json()[0] == {"errorCode": "EXCEEDEDQUOTA", "message": "ExceededQuota : ApiBatchItems Limit exceeded."}
        sim.clock.advance(86_401)  # the rolling 24 hours move on
        assert api.get("/services/data/v66.0/limits").json()["DailyBulkApiBatches"]["Remaining"] == 3
        api.post(f"{JOBS}/ingest", json={"object": "Contact", "operation": "insert"})  # a job left open takes no batch
        info = ingest(api, "LastName\n" + "".join(f"N{i}\n" for i in range(9)))
        assert info["state"] == "Failed" and info["errorMessage"] == "ExceededQuota : ApiBatchItems Limit exceeded."
        assert (info["numberRecordsProcessed"], len(rows(api.get(f"{JOBS}/ingest/{info['id']}/unprocessedrecords/")))) == (6, 3)
        assert len(rows(api.get(f"{JOBS}/ingest/{info['id']}/successfulResults/"))) == 6


def test_query_results_beyond_the_daily_storage_refuse_the_next_job():
    config = SalesforceSimConfig(contacts=3_000, companies=0, deals=0, tokens=("tok",), bulk_query_storage_kb_per_day=100)
    with SalesforceSimulator(config) as sim, httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer tok"}) as api:
        query = {"operation": "query", "query": "SELECT Id, Email, FirstName, LastName FROM Contact"}
        assert api.post(f"{JOBS}/query", json=query).status_code == 200  # about 200 KB of results: past the allocation
        assert api.get("/services/data/v66.0/limits").json()["DailyBulkV2QueryFileStorageMB"] == {"Max": 0, "Remaining": 0}
        refused = api.post(f"{JOBS}/query", json=query)
        assert refused.status_code == 400 and refused.json()[0]["message"] == "Max bulk v2 query result size stored (100) kb per 24 hrs has been exceeded"
        assert sim.account().bulk_query_jobs == 1
