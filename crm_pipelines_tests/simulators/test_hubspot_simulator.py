"""Behaviour of the HubSpot CRM v3 simulator and the generic simulator plumbing, over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_pipelines.providers.hubspot.simulator import DEFAULT_TOKEN, HubSpotSimConfig, HubSpotSimulator
from crm_pipelines.simulator.datagen import FakeData, fold_ascii, is_valid_cnpj, is_valid_cpf
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import FaultConfig, SimClock

from .conftest import REFERENCE_TIME

pytestmark = pytest.mark.timeout(60)

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)
SEARCH = "/crm/v3/objects/contacts/search"

MakeSim = Callable[..., HubSpotSimulator]
ClientFor = Callable[..., httpx.Client]


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def delta_filter(operator: str, value: int, high: int | None = None, prop: str = "lastmodifieddate") -> dict[str, Any]:
    flt: dict[str, Any] = {"propertyName": prop, "operator": operator, "value": str(value)}
    if high is not None:
        flt["highValue"] = str(high)
    return flt


def search_all(client: httpx.Client, body: dict[str, Any], path: str = SEARCH) -> list[dict[str, Any]]:
    """Every result of a search, following ``paging.next.after``."""
    out: list[dict[str, Any]] = []
    after = "0"
    while True:
        response = client.post(path, json={**body, "after": after, "limit": 200})
        assert response.status_code == 200, response.text
        page = response.json()
        out.extend(page["results"])
        if "paging" not in page:
            return out
        after = page["paging"]["next"]["after"]


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------


def test_list_pages_through_every_id_exactly_once(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=237)
    client = client_for(sim)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 50}
        if after:
            params["after"] = after
        response = client.get("/crm/v3/objects/contacts", params=params)
        assert response.status_code == 200
        page = response.json()
        pages += 1
        seen.extend(obj["id"] for obj in page["results"])
        if "paging" not in page:
            assert len(page["results"]) == 37
            break
        nxt = page["paging"]["next"]
        assert nxt["link"].startswith(sim.base_url + "/crm/v3/objects/contacts?")
        assert f"after={nxt['after']}" in nxt["link"] and "limit=50" in nxt["link"]
        after = nxt["after"]
    assert pages == 5
    assert len(seen) == len(set(seen)) == 237
    assert set(seen) == set(sim.records("contacts"))
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)


def test_list_limit_over_100_is_clamped_by_default(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=150)
    response = client_for(sim).get("/crm/v3/objects/contacts", params={"limit": 500})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 100
    assert "limit=100" in response.json()["paging"]["next"]["link"]


def test_list_limit_over_100_rejected_when_switched(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=150, list_limit_oversize="reject")
    response = client_for(sim).get("/crm/v3/objects/contacts", params={"limit": 101})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert client_for(sim).get("/crm/v3/objects/contacts", params={"limit": 100}).status_code == 200


def test_objects_have_string_properties_and_millisecond_timestamps(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot()
    client = client_for(sim)
    for entity, extra in (("contacts", "phone,cpf_cnpj"), ("companies", "industry"), ("deals", "amount,hs_is_closed")):
        props = f"createdate,{extra}"
        results = client.get(f"/crm/v3/objects/{entity}", params={"limit": 100, "properties": props}).json()["results"]
        assert results
        for obj in results:
            assert obj["id"].isdigit()
            assert obj["archived"] is False and "archivedAt" not in obj
            assert ISO_MS.match(obj["createdAt"]) and ISO_MS.match(obj["updatedAt"])
            assert obj["properties"]["hs_object_id"] == obj["id"]
            assert obj["properties"]["createdate"] == obj["createdAt"]
            for value in obj["properties"].values():
                assert value is None or isinstance(value, str)
    deals = client.get("/crm/v3/objects/deals", params={"properties": "amount"}).json()["results"]
    assert any(d["properties"]["amount"] and float(d["properties"]["amount"]) > 0 for d in deals)


def test_only_requested_properties_are_returned(api: httpx.Client) -> None:
    obj = api.get("/crm/v3/objects/contacts", params={"properties": "email,phone"}).json()["results"][0]
    assert set(obj["properties"]) == {"email", "phone", "hs_object_id", "createdate", "lastmodifieddate"}
    obj = api.get("/crm/v3/objects/companies", params={"properties": "industry,nonexistent"}).json()["results"][0]
    assert set(obj["properties"]) == {"industry", "hs_object_id", "createdate", "hs_lastmodifieddate"}


def test_default_property_sets(api: httpx.Client) -> None:
    contact = api.get("/crm/v3/objects/contacts").json()["results"][0]
    assert set(contact["properties"]) == {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}
    company = api.get("/crm/v3/objects/companies").json()["results"][0]
    assert set(company["properties"]) == {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}
    deal = api.get("/crm/v3/objects/deals").json()["results"][0]
    assert set(deal["properties"]) == {
        "amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id", "pipeline",
    }


def test_default_list_page_size_is_10(api: httpx.Client) -> None:
    page = api.get("/crm/v3/objects/contacts").json()
    assert len(page["results"]) == 10
    assert int(page["paging"]["next"]["after"]) > int(page["results"][-1]["id"])


def test_archived_listing_and_reads(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    archived = hubspot.archive("contacts", 3)
    assert len(archived) == 3
    listed = api.get("/crm/v3/objects/contacts", params={"archived": "true", "limit": 100}).json()
    assert "paging" not in listed
    assert sorted(obj["id"] for obj in listed["results"]) == sorted(archived)
    for obj in listed["results"]:
        assert obj["archived"] is True and ISO_MS.match(obj["archivedAt"])
    live_ids = {obj["id"] for obj in api.get("/crm/v3/objects/contacts", params={"limit": 100}).json()["results"]}
    live_ids |= {obj["id"] for obj in api.get("/crm/v3/objects/contacts", params={"limit": 100, "after": "999999999"}).json()["results"]}
    assert not live_ids & set(archived)
    assert hubspot.count("contacts") == 117 and hubspot.count("contacts", archived=True) == 3
    assert api.get(f"/crm/v3/objects/contacts/{archived[0]}").status_code == 404
    again = api.get(f"/crm/v3/objects/contacts/{archived[0]}", params={"archived": "true"})
    assert again.status_code == 200 and again.json()["archived"] is True


def test_object_type_ids_and_unknown_types(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    by_name = api.get("/crm/v3/objects/deals", params={"limit": 5}).json()["results"]
    by_type = api.get("/crm/v3/objects/0-3", params={"limit": 5}).json()["results"]
    assert [o["id"] for o in by_name] == [o["id"] for o in by_type]
    response = api.get("/crm/v3/objects/tickets")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == "error" and body["correlationId"] and body["category"]


def test_get_one_and_missing_object(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    contact_id, expected = next(iter(hubspot.records("contacts").items()))
    response = api.get(f"/crm/v3/objects/contacts/{contact_id}", params={"properties": "email,cpf_cnpj"})
    assert response.status_code == 200
    assert response.json()["properties"]["email"] == expected["properties"]["email"]
    assert response.json()["properties"]["cpf_cnpj"] == expected["properties"]["cpf_cnpj"]
    missing = api.get("/crm/v3/objects/contacts/1")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_bad_json_body_is_400(api: httpx.Client) -> None:
    response = api.post(SEARCH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR" and response.json()["status"] == "error"


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def test_search_delta_window_gte_lt(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=400)
    client = client_for(sim)
    records = sim.records("contacts")
    low = int(REFERENCE_TIME.timestamp() * 1000) - 10 * 86_400_000
    high = low + 5 * 86_400_000
    expected = {i for i, r in records.items() if low <= ms(r["properties"]["lastmodifieddate"]) < high}
    assert 0 < len(expected) < 400
    body = {"filterGroups": [{"filters": [delta_filter("GTE", low), delta_filter("LT", high)]}]}
    first = client.post(SEARCH, json={**body, "limit": 5}).json()
    assert first["total"] == len(expected)
    got = search_all(client, body)
    assert {o["id"] for o in got} == expected
    assert len(got) == len(expected)
    # The index-only answer (delta filters + delta sort) equals the filtered-scan answer.
    ascending = {"sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]}
    indexed = search_all(client, {**body, **ascending})
    extra = {"propertyName": "hs_object_id", "operator": "HAS_PROPERTY"}
    scanned = search_all(client, {"filterGroups": [{"filters": [*body["filterGroups"][0]["filters"], extra]}], **ascending})
    assert [o["id"] for o in indexed] == [o["id"] for o in scanned]
    assert {o["id"] for o in indexed} == expected


def test_search_between_inclusive_and_iso_dates(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=300)
    client = client_for(sim)
    records = sim.records("contacts")
    stamps = sorted(ms(r["properties"]["lastmodifieddate"]) for r in records.values())
    low, high = stamps[50], stamps[149]
    expected = {i for i, r in records.items() if low <= ms(r["properties"]["lastmodifieddate"]) <= high}
    got = search_all(client, {"filterGroups": [{"filters": [delta_filter("BETWEEN", low, high)]}]})
    assert {o["id"] for o in got} == expected and len(expected) >= 100
    iso_low = datetime.fromtimestamp(low / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    iso = client.post(SEARCH, json={"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": iso_low}]}]})
    assert iso.status_code == 200
    assert iso.json()["total"] == sum(1 for s in stamps if s >= low)


def test_search_iso_dates_rejected_when_switched_off(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(search_accept_iso_dates=False)
    flt = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "2025-02-01T00:00:00Z"}
    assert client_for(sim).post(SEARCH, json={"filterGroups": [{"filters": [flt]}]}).status_code == 400


def test_search_and_within_group_or_across_groups(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=300)
    client = client_for(sim)
    records = sim.records("contacts")
    cutoff = int(REFERENCE_TIME.timestamp() * 1000) - 15 * 86_400_000
    stage = {"propertyName": "lifecyclestage", "operator": "EQ", "value": "LEAD"}  # case-insensitive
    and_body = {"filterGroups": [{"filters": [delta_filter("GTE", cutoff), stage]}]}
    expected_and = {
        i for i, r in records.items()
        if ms(r["properties"]["lastmodifieddate"]) >= cutoff and r["properties"]["lifecyclestage"] == "lead"
    }
    assert expected_and
    assert {o["id"] for o in search_all(client, and_body)} == expected_and

    customers = {"propertyName": "lifecyclestage", "operator": "IN", "values": ["customer", "evangelist"]}
    or_body = {"filterGroups": [{"filters": [delta_filter("GTE", cutoff), stage]}, {"filters": [customers]}]}
    expected_or = expected_and | {
        i for i, r in records.items() if r["properties"]["lifecyclestage"] in ("customer", "evangelist")
    }
    got = search_all(client, or_body)
    assert {o["id"] for o in got} == expected_or
    assert len(got) == len(expected_or)
    assert [int(o["id"]) for o in got] == sorted(int(o["id"]) for o in got)  # default order: id


def test_search_other_operators(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    records = hubspot.records("contacts")
    no_phone = {i for i, r in records.items() if not r["properties"]["phone"]}
    assert no_phone
    got = search_all(api, {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}]}]})
    assert {o["id"] for o in got} == no_phone
    some_id = sorted(records, key=int)[10]
    got = search_all(api, {"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "LTE", "value": some_id}]}]})
    assert len(got) == 11
    email = next(r["properties"]["email"] for r in records.values() if r["properties"]["email"])
    domain = email.split("@")[1]
    got = search_all(api, {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": f"*@{domain}"}]}]})
    assert {o["id"] for o in got} == {i for i, r in records.items() if (r["properties"]["email"] or "").endswith("@" + domain)}
    got = search_all(api, {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email.upper()}]}]})
    assert [o["properties"]["email"] for o in got] == [email]


def test_search_sort_ascending_with_ties_by_id(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=200)
    client = client_for(sim)
    tied = sim.modify("contacts", n=8, same_timestamp=True)
    body = {
        "filterGroups": [{"filters": [delta_filter("GTE", 0)]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["lastmodifieddate"],
    }
    got = search_all(client, body)
    keys = [(ms(o["properties"]["lastmodifieddate"]), int(o["id"])) for o in got]
    assert keys == sorted(keys) and len(keys) == 200
    assert [o["id"] for o in got[-8:]] == sorted(tied, key=int)
    descending = search_all(client, {**body, "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]})
    assert [o["id"] for o in descending[:8]] == sorted(tied, key=int)  # ties still by id ascending
    stamps = [ms(o["properties"]["lastmodifieddate"]) for o in descending]
    assert stamps == sorted(stamps, reverse=True)
    bare = client.post(SEARCH, json={"sorts": ["-createdate"], "limit": 200, "properties": ["createdate"]}).json()["results"]
    created = [ms(o["properties"]["createdate"]) for o in bare]
    assert created == sorted(created, reverse=True)


def test_search_page_size_cap(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=300)
    client = client_for(sim)
    assert len(client.post(SEARCH, json={"limit": 200}).json()["results"]) == 200
    rejected = client.post(SEARCH, json={"limit": 201})
    assert rejected.status_code == 400 and rejected.json()["category"] == "VALIDATION_ERROR"
    default = client.post(SEARCH, json={}).json()
    assert len(default["results"]) == 10 and default["paging"]["next"]["after"] == "10"
    clamp = make_hubspot(contacts=300, search_limit_oversize="clamp")
    assert len(client_for(clamp).post(SEARCH, json={"limit": 500}).json()["results"]) == 200


def test_search_total_cap(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(contacts=1000, search_total_cap=300)
    client = client_for(sim)
    first = client.post(SEARCH, json={"limit": 200}).json()
    assert first["total"] == 1000 and first["paging"]["next"]["after"] == "200"
    second = client.post(SEARCH, json={"limit": 200, "after": "200"}).json()
    assert len(second["results"]) == 100  # the page stops at the cap
    assert second["paging"]["next"]["after"] == "300"  # more matches exist: clients must notice the cap
    beyond = client.post(SEARCH, json={"limit": 200, "after": "300"})
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"
    ids = [o["id"] for o in first["results"] + second["results"]]
    assert len(set(ids)) == 300
    delta_sync = {
        "filterGroups": [{"filters": [delta_filter("GTE", 0)]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 200,
    }
    page = client.post(SEARCH, json={**delta_sync, "after": "200"}).json()
    assert page["total"] == 1000 and len(page["results"]) == 100 and page["paging"]["next"]["after"] == "300"
    assert client.post(SEARCH, json={**delta_sync, "after": "300"}).status_code == 400


def test_search_filter_count_limits(api: httpx.Client) -> None:
    flt = {"propertyName": "lifecyclestage", "operator": "HAS_PROPERTY"}
    ok = api.post(SEARCH, json={"filterGroups": [{"filters": [flt] * 3} for _ in range(5)]})
    assert ok.status_code == 200
    for groups in (
        [{"filters": [flt]} for _ in range(6)],  # 6 groups > 5
        [{"filters": [flt] * 7}],  # 7 filters in a group > 6
        [{"filters": [flt] * 4} for _ in range(5)],  # 20 filters in total > 18
    ):
        response = api.post(SEARCH, json={"filterGroups": groups})
        assert response.status_code == 400
        assert response.json()["category"] == "VALIDATION_ERROR"


def test_search_filter_limits_are_configurable(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(search_max_groups=3, search_max_filters_per_group=3, search_max_filters_total=9)
    flt = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    client = client_for(sim)
    assert client.post(SEARCH, json={"filterGroups": [{"filters": [flt]}] * 4}).status_code == 400
    assert client.post(SEARCH, json={"filterGroups": [{"filters": [flt] * 3}] * 3}).status_code == 200


def test_search_excludes_archived_and_sends_no_rate_headers(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    archived = set(hubspot.archive("contacts", 5))
    response = api.post(SEARCH, json={"limit": 200})
    assert response.json()["total"] == 115
    assert not archived & {o["id"] for o in response.json()["results"]}
    assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_search_companies_use_hs_lastmodifieddate(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    records = hubspot.records("companies")
    cutoff = sorted(ms(r["properties"]["hs_lastmodifieddate"]) for r in records.values())[20]
    got = search_all(api, {"filterGroups": [{"filters": [delta_filter("GT", cutoff, prop="hs_lastmodifieddate")]}]}, "/crm/v3/objects/companies/search")
    assert {o["id"] for o in got} == {i for i, r in records.items() if ms(r["properties"]["hs_lastmodifieddate"]) > cutoff}
    assert "hs_lastmodifieddate" in got[0]["properties"]


def test_modify_makes_records_appear_in_current_window(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    watermark = hubspot.clock.now_ms()
    before = hubspot.records("contacts")
    body = {"filterGroups": [{"filters": [delta_filter("GTE", watermark)]}], "properties": ["lastmodifieddate"]}
    assert api.post(SEARCH, json=body).json()["total"] == 0
    hubspot.clock.advance(5)
    changed = hubspot.modify("contacts", n=7)
    after = hubspot.records("contacts")
    assert len(set(changed)) == 7
    for contact_id in changed:
        assert ms(after[contact_id]["properties"]["lastmodifieddate"]) > watermark
        assert after[contact_id]["updatedAt"] != before[contact_id]["updatedAt"]
        assert after[contact_id]["properties"] != before[contact_id]["properties"]
    found = search_all(api, body)
    assert {o["id"] for o in found} == set(changed)
    stamps = {o["properties"]["lastmodifieddate"] for o in found}
    assert len(stamps) == 7  # distinct milliseconds unless same_timestamp is asked for
    same = hubspot.modify("contacts", n=4, same_timestamp=True)
    records = hubspot.records("contacts")
    assert len({records[i]["properties"]["lastmodifieddate"] for i in same}) == 1


def test_search_visibility_delay(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(search_visibility_delay_s=30, freeze_clock=True)
    client = client_for(sim)
    watermark = sim.clock.now_ms() - 1
    changed = sim.modify("contacts", n=3)
    body = {"filterGroups": [{"filters": [delta_filter("GT", watermark)]}]}
    assert client.post(SEARCH, json=body).json()["total"] == 0
    sim.clock.advance(31)
    assert {o["id"] for o in client.post(SEARCH, json=body).json()["results"]} == set(changed)


# --------------------------------------------------------------------------------------------
# Auth and rate limits
# --------------------------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401(hubspot: HubSpotSimulator, client_for: ClientFor) -> None:
    for client in (client_for(hubspot, token=None), client_for(hubspot, token="wrong")):
        for response in (client.get("/crm/v3/objects/contacts"), client.post(SEARCH, json={})):
            assert response.status_code == 401
            body = response.json()
            assert body["status"] == "error"
            assert body["category"] == "INVALID_AUTHENTICATION"
            assert body["message"].startswith("Authentication credentials not found")
            assert re.fullmatch(r"[0-9a-f-]{36}", body["correlationId"])


def test_burst_limit_429_body_headers_and_recovery(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(burst_limit=5, burst_window_s=1.0)
    client = client_for(sim)
    remaining = []
    for _ in range(5):
        response = client.get("/crm/v3/objects/contacts", params={"limit": 1})
        assert response.status_code == 200
        assert all(h in response.headers for h in RATE_HEADERS)
        assert response.headers["X-HubSpot-RateLimit-Max"] == "5"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
        remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    limited = client.get("/crm/v3/objects/contacts")
    assert limited.status_code == 429
    body = limited.json()
    assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"] and body["requestId"]
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert all(h in limited.headers for h in RATE_HEADERS)
    assert "Retry-After" not in limited.headers
    for _ in range(3):  # rejected calls must not extend the window
        assert client.get("/crm/v3/objects/contacts").status_code == 429
    time.sleep(1.05)
    assert client.get("/crm/v3/objects/contacts").status_code == 200
    assert sim.stats["rate_limited"]["TEN_SECONDLY_ROLLING"] == 4
    other_token = make_hubspot(burst_limit=1, burst_window_s=5.0, tokens=("a", "b"), retry_after_on_429=True)
    assert client_for(other_token, token="a").get("/crm/v3/objects/deals").status_code == 200
    assert client_for(other_token, token="b").get("/crm/v3/objects/deals").status_code == 200  # per token
    again = client_for(other_token, token="a").get("/crm/v3/objects/deals")
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 5


def test_search_limiter_is_separate_from_burst_limiter(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(burst_limit=2, burst_window_s=10.0, search_rate_per_s=3, search_429_policy_name="SECONDLY")
    client = client_for(sim)
    assert [client.get("/crm/v3/objects/contacts").status_code for _ in range(3)] == [200, 200, 429]
    statuses = [client.post(SEARCH, json={"limit": 1}) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    body = statuses[-1].json()
    assert body["policyName"] == "SECONDLY" and body["errorType"] == "RATE_LIMIT"
    assert not [h for h in statuses[-1].headers if h.lower().startswith("x-hubspot-ratelimit")]
    time.sleep(1.05)
    assert client.post(SEARCH, json={"limit": 1}).status_code == 200
    assert client.get("/crm/v3/objects/contacts").status_code == 429  # the 10-s window is still full


def test_daily_limit_and_midnight_reset(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(daily_limit=3, search_counts_toward_daily=False)
    client = client_for(sim)
    daily_remaining = []
    for _ in range(3):
        response = client.get("/crm/v3/objects/contacts")
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "3"
        daily_remaining.append(response.headers["X-HubSpot-RateLimit-Daily-Remaining"])
    assert daily_remaining == ["2", "1", "0"]
    limited = client.get("/crm/v3/objects/contacts")
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["message"] == "You have reached your daily limit."
    assert limited.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert client.post(SEARCH, json={}).status_code == 200  # switch: search not counted
    sim.clock.advance(24 * 3600)
    assert client.get("/crm/v3/objects/contacts").status_code == 200


def test_rate_limits_can_be_disabled(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(burst_limit=1, daily_limit=1, search_rate_per_s=1, rate_limits_enabled=False)
    client = client_for(sim)
    assert {client.get("/crm/v3/objects/contacts").status_code for _ in range(5)} == {200}
    assert {client.post(SEARCH, json={}).status_code for _ in range(5)} == {200}


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_fault_rate_5xx_affects_api_only(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(faults=FaultConfig(seed=3, rate_5xx=1.0))
    client = client_for(sim)
    statuses = [client.get("/crm/v3/objects/contacts") for _ in range(6)]
    assert {r.status_code for r in statuses} <= {502, 503, 504}
    assert all(r.json()["status"] == "error" for r in statuses)
    assert httpx.get(sim.base_url + "/_simulator/health").status_code == 200
    assert sim.stats["faults_total"] == 6


def test_fault_rate_is_seeded_and_partial(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sequences = []
    for _ in range(2):
        sim = make_hubspot(faults=FaultConfig(seed=11, rate_5xx=0.3), rate_limits_enabled=False)
        client = client_for(sim)
        sequences.append([client.get("/crm/v3/objects/contacts").status_code for _ in range(60)])
    assert sequences[0] == sequences[1]
    failures = sum(1 for s in sequences[0] if s != 200)
    assert 5 <= failures <= 35


def test_fail_next_then_recovery(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    hubspot.fail_next(2, 503)
    assert [api.get("/crm/v3/objects/contacts").status_code for _ in range(3)] == [503, 503, 200]
    hubspot.fail_next(1, 429)
    injected = api.get("/crm/v3/objects/contacts")
    assert injected.status_code == 429 and injected.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_injected_429_and_477_shapes(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    hubspot.fail_next(1, 429)
    injected = api.get("/crm/v3/objects/contacts")
    assert injected.status_code == 429
    assert injected.json()["errorType"] == "RATE_LIMIT"
    assert injected.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    hubspot.fail_next(1, 477)
    migrating = api.get("/crm/v3/objects/contacts")
    assert migrating.status_code == 477 and migrating.headers["Retry-After"] == "2"
    assert migrating.json()["status"] == "error"
    assert hubspot.stats["faults"] == {"429": 1, "477": 1}
    assert hubspot.stats["rate_limited"] == {}  # injected 429s are faults, not policy rejections


def test_concurrent_clients(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(rate_limits_enabled=False)

    def work(_: int) -> list[int]:
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as client:
            statuses = []
            for i in range(25):
                if i % 2:
                    statuses.append(client.post(SEARCH, json={"limit": 20}).status_code)
                else:
                    statuses.append(client.get("/crm/v3/objects/contacts", params={"limit": 20}).status_code)
            return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [status for statuses in pool.map(work, range(8)) for status in statuses]
    assert results == [200] * 200
    assert sim.stats["total_requests"] == 200


def test_connection_reset_and_truncated_body(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    hubspot.fail_next(1, kind="reset")
    with pytest.raises(httpx.TransportError):
        api.get("/crm/v3/objects/contacts")
    assert api.get("/crm/v3/objects/contacts").status_code == 200
    hubspot.fail_next(1, kind="truncate")
    truncated = api.get("/crm/v3/objects/contacts")
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    assert hubspot.stats["faults"] == {"reset": 1, "truncate": 1}


def test_slow_fault(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    hubspot.faults = FaultConfig(rate_slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert api.get("/crm/v3/objects/contacts").status_code == 200
    assert time.monotonic() - started >= 0.3
    hubspot.faults = FaultConfig()
    api.get("/crm/v3/objects/contacts")
    assert hubspot.stats["faults"] == {"slow": 1}  # the second answer was not delayed (timed answers vary with load)


# --------------------------------------------------------------------------------------------
# Batch writes
# --------------------------------------------------------------------------------------------


def test_batch_create_with_trace_ids_is_partial(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    existing_id, existing = next((i, r) for i, r in hubspot.records("contacts").items() if r["properties"]["email"])
    inputs = [
        {"objectWriteTraceId": "ok-1", "properties": {"email": "nova.pessoa@exemplo.com.br", "firstname": "Conceição", "cpf_cnpj": "529.982.247-25"}},
        {"objectWriteTraceId": "bad-email", "properties": {"email": "not-an-email"}},
        {"objectWriteTraceId": "bad-prop", "properties": {"firstname": "Ana", "favourite_colour": "blue"}},
        {"objectWriteTraceId": "dup", "properties": {"email": existing["properties"]["email"]}},
        {"objectWriteTraceId": "ok-2", "properties": {"lastname": "Gonçalves"}},
    ]
    before = hubspot.count("contacts")
    response = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE" and body["numErrors"] == 3
    by_trace = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert set(by_trace) == {"bad-email", "bad-prop", "dup"}
    assert by_trace["bad-prop"]["category"] == "VALIDATION_ERROR"
    assert by_trace["bad-prop"]["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert by_trace["dup"]["category"] == "CONFLICT"
    assert by_trace["dup"]["message"] == f"Contact already exists. Existing ID: {existing_id}"
    assert {r["objectWriteTraceId"] for r in body["results"]} == {"ok-1", "ok-2"}
    assert hubspot.count("contacts") == before + 2
    created = next(r for r in body["results"] if r["objectWriteTraceId"] == "ok-1")
    stored = hubspot.records("contacts")[created["id"]]["properties"]
    assert stored["firstname"] == "Conceição" and stored["cpf_cnpj"] == "529.982.247-25"
    assert abs(ms(stored["createdate"]) - hubspot.clock.now_ms()) < 2000


def test_batch_create_without_trace_ids_fails_whole_batch(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    before = hubspot.count("contacts")
    inputs = [{"properties": {"email": "fine@exemplo.com"}}, {"properties": {"firstname": "X", "nope": "1"}}]
    response = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR" and body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert "numErrors" not in body and "results" not in body
    assert hubspot.count("contacts") == before


def test_duplicate_email_conflict_409(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    existing_id, existing = next((i, r) for i, r in hubspot.records("contacts").items() if r["properties"]["email"])
    email = existing["properties"]["email"].upper()  # emails compare case-insensitively
    single = api.post("/crm/v3/objects/contacts", json={"properties": {"email": email}})
    assert single.status_code == 409
    assert single.json()["category"] == "CONFLICT" and single.json()["status"] == "error"
    assert single.json()["message"] == f"Contact already exists. Existing ID: {existing_id}"
    batch = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [{"properties": {"email": email}}]})
    assert batch.status_code == 409
    assert batch.json()["message"] == f"Contact already exists. Existing ID: {existing_id}"


def test_batch_input_limit(api: httpx.Client) -> None:
    too_many = [{"id": str(i), "properties": {"firstname": "A"}} for i in range(101)]
    for op in ("read", "create", "update", "upsert", "archive"):
        response = api.post(f"/crm/v3/objects/contacts/batch/{op}", json={"inputs": too_many})
        assert response.status_code == 400, op
        assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_results_are_not_in_input_order(api: httpx.Client) -> None:
    inputs = [{"properties": {"email": f"ordem{i}@exemplo.com"}} for i in range(30)]
    response = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    assert response.status_code == 201
    emails = [r["properties"]["email"] for r in response.json()["results"]]
    assert sorted(emails) == sorted(i["properties"]["email"] for i in inputs)
    assert emails != [i["properties"]["email"] for i in inputs]


def test_batch_upsert_reports_new(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    existing_id, existing = next((i, r) for i, r in hubspot.records("contacts").items() if r["properties"]["email"])
    inputs = [
        {"id": existing["properties"]["email"], "idProperty": "email", "properties": {"jobtitle": "Diretora"}},
        {"id": "brand.new@exemplo.com.br", "idProperty": "email", "properties": {"firstname": "Zoë"}},
    ]
    response = api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs})
    assert response.status_code == 200
    by_email = {r["properties"]["email"]: r for r in response.json()["results"]}
    assert by_email[existing["properties"]["email"]]["new"] is False
    assert by_email[existing["properties"]["email"]]["id"] == existing_id
    assert by_email["brand.new@exemplo.com.br"]["new"] is True
    records = hubspot.records("contacts")
    assert records[existing_id]["properties"]["jobtitle"] == "Diretora"
    assert records[by_email["brand.new@exemplo.com.br"]["id"]]["properties"]["firstname"] == "Zoë"


def test_batch_update_and_upsert_refuse_an_id_named_twice_and_write_nothing(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    before = hubspot.records("contacts")
    upsert = [{"id": email, "idProperty": "email", "properties": {"jobtitle": "Diretora"}} for email in ("Ana@X.com", "ana@x.com", "bia@x.com")]
    refused = api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": upsert})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Duplicate IDs found in batch input: ['ana@x.com']. IDs must be unique"  # in any case
    some_id = sorted(before, key=int)[0]
    update = [{"id": some_id, "properties": {"jobtitle": "Diretora"}}] * 2 + [{"id": "424242", "properties": {}}]
    refused = api.post("/crm/v3/objects/contacts/batch/update", json={"inputs": update})
    assert refused.status_code == 400 and f"['{some_id}']" in refused.json()["message"]
    assert hubspot.records("contacts") == before


def test_batch_read_update_archive(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    ids = sorted(hubspot.records("deals"), key=int)[:3]
    read = api.post("/crm/v3/objects/deals/batch/read", json={"inputs": [{"id": i} for i in ids] + [{"id": "424242"}], "properties": ["dealname"]})
    assert read.status_code == 207
    body = read.json()
    assert sorted(r["id"] for r in body["results"]) == ids
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["424242"]
    assert error["message"] == "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid."

    update = api.post("/crm/v3/objects/deals/batch/update", json={"inputs": [
        {"id": ids[0], "properties": {"dealstage": "closedwon", "amount": 1234.5}},
        {"id": "999", "properties": {"amount": "1"}},
    ]})
    assert update.status_code == 207
    assert update.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    stored = hubspot.records("deals")[ids[0]]["properties"]
    assert (stored["dealstage"], stored["amount"], stored["hs_is_closed_won"]) == ("closedwon", "1234.5", "true")

    archive = api.post("/crm/v3/objects/deals/batch/archive", json={"inputs": [{"id": i} for i in ids[:2]]})
    assert archive.status_code == 204 and archive.content == b""
    assert set(hubspot.records("deals", archived=True)) == set(ids[:2])
    archived_read = api.post("/crm/v3/objects/deals/batch/read?archived=true", json={"inputs": [{"id": ids[0]}]})
    assert archived_read.status_code == 200 and archived_read.json()["results"][0]["archived"] is True


def test_create_validation_rules(api: httpx.Client) -> None:
    cases = [
        ("contacts", {"phone": "+55 11 99999-0000"}),  # needs email, firstname or lastname
        ("companies", {"industry": "RETAIL"}),  # needs name or domain
        ("deals", {"dealname": "X", "pipeline": "default"}),  # needs dealstage
        ("deals", {"dealname": "X", "pipeline": "default", "dealstage": "nonsense"}),  # unknown option
        ("contacts", {"email": "a@b.com", "hs_object_id": "5"}),  # read-only
    ]
    for entity, properties in cases:
        response = api.post(f"/crm/v3/objects/{entity}", json={"properties": properties})
        assert response.status_code == 400, (entity, properties)
        assert response.json()["category"] == "VALIDATION_ERROR"
    created = api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "Piloto", "pipeline": "default", "dealstage": "qualifiedtobuy", "closedate": "1735689600000"}})
    assert created.status_code == 201
    assert created.json()["properties"]["closedate"] == "2025-01-01T00:00:00.000Z"


def test_missing_scope_is_403(make_hubspot: MakeSim, client_for: ClientFor) -> None:
    sim = make_hubspot(tokens=("reader", "admin"), token_scopes={"reader": ("crm.objects.contacts.read",)})
    reader = client_for(sim, token="reader")
    assert reader.get("/crm/v3/objects/contacts").status_code == 200
    assert reader.post(SEARCH, json={}).status_code == 200
    denied = reader.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "Ana"}})
    assert denied.status_code == 403
    assert denied.json()["category"] == "MISSING_SCOPES"
    assert denied.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
    assert reader.get("/crm/v3/objects/deals").status_code == 403
    admin = client_for(sim, token="admin")
    assert admin.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "Ana"}}).status_code == 201


def test_single_object_update_and_delete(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    company_id = sorted(hubspot.records("companies"), key=int)[0]
    hubspot.clock.advance(60)
    patched = api.patch(f"/crm/v3/objects/companies/{company_id}", json={"properties": {"cpf_cnpj": "11.222.333/0001-81"}})
    assert patched.status_code == 200
    assert patched.json()["properties"]["cpf_cnpj"] == "11.222.333/0001-81"
    assert abs(ms(patched.json()["updatedAt"]) - hubspot.clock.now_ms()) < 2000
    deleted = api.delete(f"/crm/v3/objects/companies/{company_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert company_id in hubspot.records("companies", archived=True)


# --------------------------------------------------------------------------------------------
# Data, reproducibility, admin routes, command line
# --------------------------------------------------------------------------------------------


def test_same_seed_and_reference_time_give_identical_data() -> None:
    def build(seed: int) -> HubSpotSimulator:
        return HubSpotSimulator(HubSpotSimConfig(seed=seed, contacts=80, companies=15, deals=25, reference_time=REFERENCE_TIME))

    first, second, other = build(5), build(5), build(6)
    for entity in ("contacts", "companies", "deals"):
        assert first.records(entity) == second.records(entity)
    assert first.records("contacts") != other.records("contacts")
    stamps = [ms(r["updatedAt"]) for r in first.records("contacts").values()]
    reference_ms = int(REFERENCE_TIME.timestamp() * 1000)
    assert max(stamps) <= reference_ms and min(stamps) >= reference_ms - 30 * 86_400_000


def test_generated_data_quality() -> None:
    sim = HubSpotSimulator(HubSpotSimConfig(contacts=2000, companies=300, deals=0, reference_time=REFERENCE_TIME))
    contacts = [r["properties"] for r in sim.records("contacts").values()]
    emails = [c["email"] for c in contacts if c["email"]]
    assert len(emails) == len(set(emails)) and all(e.isascii() for e in emails)
    assert any(c["email"] is None and c["firstname"] for c in contacts)
    assert 100 <= sum(1 for c in contacts if c["phone"] is None) <= 300  # ~10%
    assert 40 <= sum(1 for c in contacts if c["lastname"] is None) <= 170  # ~5%
    names = " ".join(f"{c['firstname']} {c['lastname']}" for c in contacts)
    assert any(ch in names for ch in "ãçêôöøłễ")
    documents = [c["cpf_cnpj"] for c in contacts if c["cpf_cnpj"]]
    assert documents and all(is_valid_cpf(d) for d in documents)
    assert any("." in d for d in documents) and any(d.isdigit() for d in documents)
    companies = [r["properties"] for r in sim.records("companies").values()]
    domains = [c["domain"] for c in companies if c["domain"]]
    assert len(domains) == len(set(domains))
    assert all(is_valid_cnpj(c["cpf_cnpj"]) for c in companies if c["cpf_cnpj"])


def test_datagen_helpers() -> None:
    assert fold_ascii("João Conceição Øyvind Łukasz Nguyễn Zoë Müller François") == "Joao Conceicao Oyvind Lukasz Nguyen Zoe Muller Francois"
    assert is_valid_cpf("529.982.247-25") and not is_valid_cpf("529.982.247-26") and not is_valid_cpf("111.111.111-11")
    assert is_valid_cnpj("11.222.333/0001-81") and not is_valid_cnpj("11.222.333/0001-82")
    data = FakeData(3)
    assert re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", data.cpf(formatted=True))
    assert re.fullmatch(r"\d{2}\.\d{3}\.\d{3}/0001-\d{2}", data.cnpj(formatted=True))

    def people(seed: int) -> list[dict[str, str | None]]:
        generator = FakeData(seed)
        return [generator.person() for _ in range(5)]

    assert people(9) == people(9) and people(9) != people(10)


def test_sim_clock_and_limiters() -> None:
    clock = SimClock(datetime(2025, 1, 1, 23, 59, 59, tzinfo=timezone.utc), frozen=True)
    assert clock.now() == datetime(2025, 1, 1, 23, 59, 59, tzinfo=timezone.utc)
    clock.advance(2)
    assert clock.now_ms() == int(datetime(2025, 1, 2, 0, 0, 1, tzinfo=timezone.utc).timestamp() * 1000)
    clock.set(datetime(2025, 1, 1, 23, 0, 0))
    counter = DailyCounter(2, clock.now)
    assert [counter.try_acquire("k").allowed for _ in range(3)] == [True, True, False]
    assert counter.remaining("other") == 2
    clock.advance(3600)
    assert counter.try_acquire("k").allowed and counter.remaining("k") == 1
    assert DailyCounter(None, clock.now).try_acquire().allowed

    now = [100.0]
    window = SlidingWindowLimiter(2, 10.0, clock=lambda: now[0])
    assert [window.try_acquire().allowed for _ in range(3)] == [True, True, False]
    now[0] += 5
    assert not window.try_acquire().allowed  # rejected calls are not recorded...
    now[0] += 5.01
    assert window.try_acquire().allowed  # ...so the window frees 10 s after the accepted ones


def test_admin_routes(hubspot: HubSpotSimulator, api: httpx.Client) -> None:
    admin = httpx.Client(base_url=hubspot.base_url)  # no token needed
    try:
        health = admin.get("/_simulator/health").json()
        assert health["status"] == "ok" and health["provider"] == "hubspot"
        assert health["objects"]["contacts"] == {"live": 120, "archived": 0}

        api.get("/crm/v3/objects/contacts")
        api.get("/crm/v3/objects/contacts/1")
        stats = admin.get("/_simulator/stats").json()
        assert stats["total_requests"] == 2
        assert stats["by_route"]["GET /crm/v3/objects/{obj}"] == 1
        assert stats["by_status"] == {"200": 1, "404": 1}
        assert admin.post("/_simulator/reset-stats").status_code == 200
        assert hubspot.stats["total_requests"] == 0

        set_faults = admin.post("/_simulator/faults", json={"rate_5xx": 1.0, "statuses_5xx": [502], "fail_next": {"n": 1, "status": 504}})
        assert set_faults.status_code == 200 and set_faults.json()["faults"]["rate_5xx"] == 1.0
        assert api.get("/crm/v3/objects/contacts").status_code == 504
        assert api.get("/crm/v3/objects/contacts").status_code == 502
        assert admin.post("/_simulator/faults", json={}).status_code == 200
        assert api.get("/crm/v3/objects/contacts").status_code == 200
        assert admin.post("/_simulator/faults", json={"rate_5xx": 2}).status_code == 400

        mutated = admin.post("/_simulator/mutate", json={"entity": "contacts", "modify": 5, "create": 3, "archive": 2, "same_timestamp": True})
        assert mutated.status_code == 200
        result = mutated.json()
        assert len(result["modified"]) == 5 and len(result["created"]) == 3 and len(result["archived"]) == 2
        assert hubspot.count("contacts") == 121 and hubspot.count("contacts", archived=True) == 2
        records = hubspot.records("contacts")
        assert len({records[i]["properties"]["lastmodifieddate"] for i in result["modified"] if i in records}) == 1
        assert admin.post("/_simulator/mutate", json={"entity": "tickets", "modify": 1}).status_code == 400

        before = hubspot.clock.now_ms()
        clock = admin.post("/_simulator/clock", json={"advance": 3600}).json()
        assert clock["now_ms"] - before >= 3600 * 1000
    finally:
        admin.close()


def test_responses_carry_content_length_and_keep_alive(api: httpx.Client) -> None:
    first = api.get("/crm/v3/objects/contacts")
    assert int(first.headers["Content-Length"]) == len(first.content)
    assert first.http_version == "HTTP/1.1"
    for _ in range(5):
        assert api.get("/crm/v3/objects/contacts").status_code == 200


def test_stop_closes_the_port(make_hubspot: MakeSim) -> None:
    sim = make_hubspot()
    url = sim.base_url
    assert httpx.get(url + "/_simulator/health").status_code == 200
    sim.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/_simulator/health", timeout=2)


def test_serve_context_manager() -> None:
    sim = HubSpotSimulator(HubSpotSimConfig(contacts=3, companies=0, deals=0))
    with sim.serve() as base_url:
        response = httpx.get(base_url + "/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        assert len(response.json()["results"]) == 3
    assert not sim.running


def test_command_line_entry_point() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_pipelines.simulator", "hubspot", "--port", "0", "--contacts", "25", "--companies", "5",
         "--deals", "5", "--seed", "1", "--rate-limit", "50", "--token", "cli-token"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url), base_url
        response = httpx.get(base_url + "/crm/v3/objects/contacts", params={"limit": 100}, headers={"Authorization": "Bearer cli-token"})
        assert response.status_code == 200
        assert len(response.json()["results"]) == 25
        assert response.headers["X-HubSpot-RateLimit-Max"] == "50"
        assert httpx.get(base_url + "/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}).status_code == 401
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "cli-token" not in (process.stdout.read() if process.stdout else "")


def test_reference_time_defaults_to_now() -> None:
    sim = HubSpotSimulator(HubSpotSimConfig(contacts=50, companies=0, deals=0))
    newest = max(ms(r["updatedAt"]) for r in sim.records("contacts").values())
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    assert now - 31 * 86_400_000 < newest <= now + 1000
    assert abs(sim.clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
