"""The Salesforce simulator over raw HTTP: auth, SOQL paging and errors, collections, limits, switches."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from crm_pipelines.providers.salesforce.simulator import CONCURRENT_MESSAGE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, id18

from .conftest import DATA, REFERENCE_TIME


@pytest.fixture
def make_sim(start_salesforce_sim):
    return lambda **kw: start_salesforce_sim(**({"seed": 4, "contacts": 450, "companies": 30, "deals": 20, "reference_time": REFERENCE_TIME} | kw))


def soql(http, text, *, all_rows=False, batch=None):
    headers = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else {}
    return http.get(f"{DATA}/{'queryAll' if all_rows else 'query'}", params={"q": text}, headers=headers)


def upsert(http, records, sobject="Contact", **body):
    return http.patch(f"{DATA}/composite/sobjects/{sobject}/Crm_Record_Id__c", json={"allOrNone": False, "records": records} | body)


def contact(key, **fields):
    return {"attributes": {"type": "Contact"}, "Crm_Record_Id__c": key, **fields}


# ------------------------------------------------------------------ auth


def test_token_endpoint_issues_sessions_and_refuses_bad_credentials(make_sim):
    sim = make_sim()
    with httpx.Client(base_url=sim.base_url) as http:
        good = {"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": sim.config.refresh_tokens[0]}
        body = http.post("/services/oauth2/token", data=good).json()
        assert set(body) >= {"access_token", "instance_url", "id", "issued_at", "token_type", "signature"}
        assert body["instance_url"] == sim.base_url and body["token_type"] == "Bearer" and body["issued_at"].isdigit()
        for change, error in (({"refresh_token": "nope"}, "invalid_grant"), ({"client_id": "x"}, "invalid_client_id"), ({"client_secret": "x"}, "invalid_client")):
            refused = http.post("/services/oauth2/token", data=good | change)
            assert refused.status_code == 400 and refused.json()["error"] == error
        assert http.get(f"{DATA}/limits").json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        sim.revoke_refresh_tokens()
        assert http.post("/services/oauth2/token", data=good).json()["error"] == "invalid_grant"


def test_sessions_expire_by_age_and_on_demand(make_sim, raw_session):
    sim = make_sim(session_lifetime_s=60)
    http = raw_session(sim)
    assert http.get(f"{DATA}/limits").status_code == 200
    sim.clock.advance(61)
    expired = http.get(f"{DATA}/limits")
    assert expired.status_code == 401 and expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    http = raw_session(sim)
    assert http.get(f"{DATA}/limits").status_code == 200
    assert sim.expire_sessions() == 1
    assert http.get(f"{DATA}/limits").status_code == 401


def test_ids_are_18_characters_with_the_object_prefix(make_sim):
    sim = make_sim()
    for entity, prefix in (("contacts", "003"), ("companies", "001"), ("deals", "006")):
        ids = list(sim.records(entity))
        assert all(len(i) == 18 and i.startswith(prefix) and id18(i[:15]) == i for i in ids)
    assert id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # a published example


# ------------------------------------------------------------------ SOQL


def test_query_pages_follow_next_records_url_with_the_batch_size_hint(make_sim, raw_session):
    sim = make_sim()
    http = raw_session(sim)
    first = soql(http, "SELECT Id, Email FROM Contact ORDER BY SystemModstamp, Id", batch=200).json()
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    assert first["records"][0]["attributes"]["type"] == "Contact" and first["records"][0]["attributes"]["url"].endswith(first["records"][0]["Id"])
    ids = [r["Id"] for r in first["records"]]
    page = first
    while not page["done"]:
        assert page["nextRecordsUrl"].startswith(f"{DATA}/query/01g")
        page = http.get(page["nextRecordsUrl"]).json()
        ids += [r["Id"] for r in page["records"]]
    assert "nextRecordsUrl" not in page and len(ids) == len(set(ids)) == 450
    # the same page URL read twice gives the same records (a retried page never shifts)
    again = soql(http, "SELECT Id FROM Contact ORDER BY Id", batch=200).json()
    assert http.get(again["nextRecordsUrl"]).json() == http.get(again["nextRecordsUrl"]).json()
    # out-of-range hints are clamped into 200..2000 by default
    assert len(soql(http, "SELECT Id FROM Contact", batch=50).json()["records"]) == 200
    assert len(soql(http, "SELECT Id FROM Contact").json()["records"]) == 450


def test_delta_filters_order_and_limit(make_sim, raw_session):
    sim = make_sim()
    http = raw_session(sim)
    stamps = sorted((r["SystemModstamp"], r["Id"]) for r in sim.records("contacts").values())
    pivot = stamps[200][0][:19] + "Z"
    rows = soql(http, f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {pivot} AND SystemModstamp < 2025-03-02T00:00:00Z ORDER BY SystemModstamp, Id").json()["records"]
    expected = [i for s, i in stamps if s[:19] >= pivot[:19]]
    assert [r["Id"] for r in rows] == expected
    top = soql(http, "SELECT Id FROM Contact ORDER BY SystemModstamp DESC, Id DESC LIMIT 3").json()
    assert [r["Id"] for r in top["records"]] == [i for _, i in stamps[::-1][:3]] and top["totalSize"] == 3
    assert soql(http, "SELECT COUNT() FROM Contact").json() == {"totalSize": 450, "done": True, "records": []}
    email = next(r["Email"] for r in sim.records("contacts").values() if r["Email"])
    found = soql(http, f"SELECT Id, Email FROM Contact WHERE Email IN ('{email.upper()}', 'none@x.com') OR (Email = null AND Id = 'zzz')").json()["records"]
    assert [r["Email"] for r in found] == [email]  # string comparisons ignore case
    site = next(r["Website"] for r in sim.records("companies").values() if r["Website"] and "www." in r["Website"])
    domain = site.split("www.", 1)[1].strip("/")
    liked = soql(http, f"SELECT Id, Website FROM Account WHERE Website LIKE '%{domain}%'").json()["records"]
    assert [r["Website"] for r in liked] == [site]


@pytest.mark.parametrize(
    "query,code,fragment",
    [
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected"),
        ("SELECT Id FROM Contact WHERE SystemModstamp > '2025-01-01'", "MALFORMED_QUERY", "dateTime"),
        ("SELECT Id, Foo FROM Contact", "INVALID_FIELD", "No such column 'Foo' on entity 'Contact'"),
        ("SELECT Id FROM Contact WHERE Bar__c = 'x'", "INVALID_FIELD", "Bar__c"),
        ("SELECT Id FROM Lead2", "INVALID_TYPE", "sObject type 'Lead2' is not supported"),
        ("SELECT Id, Id FROM Contact", "MALFORMED_QUERY", "duplicate field"),
        ("SELECT Id FROM Contact LIMIT x", "MALFORMED_QUERY", "unexpected token: 'x'"),
    ],
)
def test_bad_soql_gets_salesforce_errors(make_sim, raw_session, query, code, fragment):
    http = raw_session(make_sim(contacts=5))
    response = soql(http, query)
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == code and fragment in error["message"]


def test_expired_cursor_answers_invalid_query_locator(make_sim, raw_session):
    sim = make_sim(cursor_idle_timeout_s=60)
    http = raw_session(sim)
    first = soql(http, "SELECT Id FROM Contact", batch=200).json()
    sim.clock.advance(61)
    response = http.get(first["nextRecordsUrl"])
    assert response.status_code == 400 and response.json() == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
    second = soql(http, "SELECT Id FROM Contact", batch=200).json()
    assert sim.expire_cursors() == 1
    assert http.get(second["nextRecordsUrl"]).json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_open_cursors_are_capped_per_session(make_sim, raw_session):
    sim = make_sim(max_open_cursors=2)
    http = raw_session(sim)
    urls = [soql(http, "SELECT Id FROM Contact", batch=200).json()["nextRecordsUrl"] for _ in range(3)]
    assert http.get(urls[0]).status_code == 400  # the oldest was dropped
    assert http.get(urls[1]).status_code == 200 and http.get(urls[2]).status_code == 200


def test_deleted_records_in_query_all_and_the_deleted_resource(make_sim, raw_session):
    sim = make_sim()
    http = raw_session(sim)
    gone = set(sim.delete("contacts", 4))
    assert soql(http, "SELECT COUNT() FROM Contact").json()["totalSize"] == 446
    assert soql(http, "SELECT Id FROM Contact WHERE IsDeleted = true").json()["totalSize"] == 0
    rows = soql(http, "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true", all_rows=True).json()["records"]
    assert {r["Id"] for r in rows} == gone and all(r["IsDeleted"] for r in rows)
    sim.clock.advance(120)  # coverage ends at the last whole minute before now
    now = sim.clock.now()
    start, end = (now - timedelta(days=1)).isoformat(), now.isoformat()
    deleted = http.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": start, "end": end}).json()
    assert {d["id"] for d in deleted["deletedRecords"]} == gone and {"earliestDateAvailable", "latestDateCovered"} <= set(deleted)
    too_old = http.get(f"{DATA}/sobjects/Contact/deleted/", params={"start": (now - timedelta(days=16)).isoformat(), "end": end})
    assert too_old.status_code == 400 and too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    updated = http.get(f"{DATA}/sobjects/Contact/updated/", params={"start": (now - timedelta(days=29)).isoformat(), "end": end}).json()
    assert set(updated["ids"]).isdisjoint(gone) and updated["ids"]
    # past the recycle bin window, deletions are gone from queryAll too
    sim.clock.advance(16 * 86400)
    http = raw_session(sim)
    assert soql(http, "SELECT Id FROM Contact WHERE IsDeleted = true", all_rows=True).json()["totalSize"] == 0


# ------------------------------------------------------------------ collections


def test_upsert_results_in_request_order_with_created_flags_and_per_record_errors(make_sim, raw_session):
    sim = make_sim(contacts=0)
    http = raw_session(sim)
    records = [contact("contacts:1", LastName="Conceição", Email="ana@exemplo.com.br"), contact("contacts:2", Email="bad"), contact("contacts:3", LastName="X" * 81)]
    results = upsert(http, records).json()
    assert results[0]["success"] and results[0]["created"] is True and results[0]["id"].startswith("003")
    assert not results[1]["success"] and {e["statusCode"] for e in results[1]["errors"]} == {"REQUIRED_FIELD_MISSING", "INVALID_EMAIL_ADDRESS"}
    assert results[1]["errors"][0]["fields"] == ["LastName"]
    assert results[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    again = upsert(http, [contact("contacts:1", LastName="Souza")]).json()
    assert again == [{"id": results[0]["id"], "success": True, "errors": [], "created": False}]
    assert sim.count("contacts") == 1 and sim.records("contacts")[results[0]["id"]]["LastName"] == "Souza"


def test_all_or_none_rolls_back_the_good_records(make_sim, raw_session):
    sim = make_sim(contacts=0)
    http = raw_session(sim)
    results = upsert(http, [contact("contacts:1", LastName="Lima"), contact("contacts:2")], allOrNone=True).json()
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sim.count("contacts") == 0


def test_whole_request_errors(make_sim, raw_session):
    sim = make_sim(contacts=0)
    http = raw_session(sim)
    too_many = upsert(http, [contact(f"contacts:{i}", LastName="A") for i in range(201)])
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    unknown = upsert(http, [contact("contacts:1", LastName="A", Bogus__c="x")])
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    not_external = http.patch(f"{DATA}/composite/sobjects/Contact/Email", json={"records": [contact("k", LastName="A")]})
    assert not_external.status_code == 400 and "not an External ID" in not_external.json()[0]["message"]
    bad_date = http.post(f"{DATA}/composite/sobjects", json={"records": [{"attributes": {"type": "Opportunity"}, "Name": "N", "StageName": "Prospecting", "CloseDate": "31/12/2025"}]})
    assert bad_date.status_code == 400 and bad_date.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert sim.count("contacts") == 0


def test_updates_by_id_and_unknown_or_deleted_ids(make_sim, raw_session):
    sim = make_sim(contacts=3)
    http = raw_session(sim)
    a, b, c = sorted(sim.records("contacts"))
    sim.delete("contacts", [c])
    body = {"records": [
        {"attributes": {"type": "Contact"}, "Id": a, "Title": "Gerente de Operações"},
        {"attributes": {"type": "Contact"}, "Id": "003" + "0" * 15, "Title": "x"},
        {"attributes": {"type": "Contact"}, "Id": c, "Title": "x"},
        {"attributes": {"type": "Contact"}, "Id": b, "Name": "Read Only"},
    ]}
    results = http.patch(f"{DATA}/composite/sobjects", json=body).json()
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert [r["errors"][0]["statusCode"] for r in results[1:]] == ["INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED", "INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert sim.records("contacts")[a]["Title"] == "Gerente de Operações"


def test_duplicate_external_ids_and_the_duplicate_rule_switch(make_sim, raw_session):
    sim = make_sim(contacts=0)
    http = raw_session(sim)
    [first] = upsert(http, [contact("contacts:1", LastName="A", Email="dup@x.com")]).json()
    created = http.post(f"{DATA}/composite/sobjects", json={"records": [{"attributes": {"type": "Contact"}, "LastName": "B", "Crm_Record_Id__c": "contacts:1"}]}).json()
    assert created[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE" and first["id"] in created[0]["errors"][0]["message"]
    assert upsert(http, [contact("contacts:2", LastName="B", Email="DUP@x.com")]).json()[0]["success"]  # rule off by default
    sim.config.block_duplicate_emails = True
    [blocked] = upsert(http, [contact("contacts:3", LastName="C", Email="dup@x.com")]).json()
    error = blocked["errors"][0]
    assert error["statusCode"] == "DUPLICATES_DETECTED"
    matched = error["duplicateResult"]["matchResults"][0]["matchRecords"]
    assert matched and matched[0]["record"]["Id"] in set(sim.records("contacts"))


# ------------------------------------------------------------------ limits


def test_limit_header_on_every_answer_and_daily_allocation(make_sim, raw_session):
    sim = make_sim(contacts=5, daily_api_limit=5)
    http = raw_session(sim)
    seen = []
    for _ in range(5):
        response = soql(http, "SELECT Id FROM Contact")
        seen.append(response.headers["Sforce-Limit-Info"])
    assert seen == [f"api-usage={n}/5" for n in range(1, 6)]
    refused = http.get(f"{DATA}/limits")
    assert refused.status_code == 403
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    bad = soql(http, "SELECT Nope FROM Contact")
    assert bad.status_code == 403  # spent is spent, whatever the request
    # the allocation rolls: calls older than 24 hours no longer count
    sim.clock.advance(24 * 3600 + 61)
    http = raw_session(sim)  # the old session has expired meanwhile
    limits = http.get(f"{DATA}/limits")
    assert limits.json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4} and limits.headers["Sforce-Limit-Info"] == "api-usage=1/5"


def test_other_users_usage_and_errors_also_carry_the_header(make_sim, raw_session):
    sim = make_sim(contacts=5, daily_api_limit=1000)
    http = raw_session(sim)
    sim.add_api_usage(700)
    response = soql(http, "SELECT Nope FROM Contact")
    assert response.status_code == 400 and response.headers["Sforce-Limit-Info"] == "api-usage=701/1000"
    assert http.get(f"{DATA}/limits").json()["DailyApiRequests"]["Remaining"] == 298


def test_injected_faults_have_salesforce_bodies_and_cost_nothing(make_sim, raw_session):
    sim = make_sim(contacts=5)
    http = raw_session(sim)
    sim.fail_next(1, 403)
    concurrent = http.get(f"{DATA}/limits")
    assert concurrent.status_code == 403 and concurrent.json()[0] == {"message": CONCURRENT_MESSAGE, "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    sim.fail_next(1, 503)
    assert http.get(f"{DATA}/limits").json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    sim.fail_next(1, 429)
    assert http.get(f"{DATA}/limits").status_code == 429
    assert sim.api_usage()["used"] == 0


# ------------------------------------------------------------------ switches


def test_switches(make_sim, raw_session):
    strict = make_sim(contacts=300, accept_fractional_seconds=False, batch_size_out_of_range="reject", multi_currency=False, restricted_stage_picklist=True, max_uri_length=300)
    http = raw_session(strict)
    assert soql(http, "SELECT Id FROM Contact WHERE SystemModstamp > 2025-01-01T00:00:00.000Z").json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert soql(http, "SELECT Id FROM Contact WHERE SystemModstamp > 2025-01-01T00:00:00Z").status_code == 200
    assert soql(http, "SELECT Id FROM Contact", batch=100).json()[0]["errorCode"] == "INVALID_BATCH_SIZE"
    assert soql(http, "SELECT CurrencyIsoCode FROM Opportunity").json()[0]["errorCode"] == "INVALID_FIELD"
    deal = {"attributes": {"type": "Opportunity"}, "Name": "N", "StageName": "Fechado", "CloseDate": "2025-12-31"}
    assert http.post(f"{DATA}/composite/sobjects", json={"records": [deal]}).json()[0]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    long = soql(http, "SELECT Id FROM Contact WHERE Email IN (" + ", ".join(f"'p{i}@exemplo.com.br'" for i in range(20)) + ")")
    assert long.status_code == 414
    lenient = raw_session(make_sim(contacts=300))
    assert soql(lenient, "SELECT Id FROM Contact WHERE SystemModstamp > 2025-01-01T00:00:00.000Z").status_code == 200
    assert soql(lenient, "SELECT CurrencyIsoCode FROM Opportunity").status_code == 200


def test_seeded_data_is_reproducible_and_accented(make_sim):
    one, two = make_sim(), make_sim()
    assert one.records("contacts") == two.records("contacts")
    names = "".join((r["FirstName"] or "") + (r["LastName"] or "") for r in one.records("contacts").values())
    assert any(ch in names for ch in "ãçéêôõáí")
    assert all(r["LastName"] for r in one.records("contacts").values())  # required by Salesforce
    assert all(r["SystemModstamp"].endswith(".000+0000") for r in one.records("contacts").values())  # whole seconds


def test_timestamp_resolution_switch(make_sim):
    fine = make_sim(timestamp_resolution_ms=1)
    stamps = [r["SystemModstamp"] for r in fine.records("contacts").values()]
    assert any(not s.endswith(".000+0000") for s in stamps)
