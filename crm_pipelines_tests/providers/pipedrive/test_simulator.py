"""The Pipedrive simulator over raw HTTP: paging, delta filters, limits, headers, errors, switches."""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm_pipelines.providers.pipedrive.simulator import iso

from .conftest import REFERENCE_TIME, TOKEN

UTC = timezone.utc


@pytest.fixture
def sim(start_pipedrive_sim):
    return start_pipedrive_sim(seed=4, persons=1300, organizations=30, deals=60, reference_time=REFERENCE_TIME, burst_limit=1000, daily_token_budget=0)


def page_all(api, path, **params):
    ids, cursor, pages = [], None, 0
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        body = api.get(path, params=query).json()
        assert body["success"] is True
        ids += [o["id"] for o in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if not cursor:
            return ids, pages


def test_cursor_paging_returns_every_record_once_with_null_cursor_at_the_end(sim, http):
    api = http(sim)
    ids, pages = page_all(api, "/api/v2/persons", limit=500)
    assert sorted(ids) == sorted(int(i) for i in sim.records("persons")) and len(ids) == len(set(ids)) == 1300
    assert pages == 3
    default = api.get("/api/v2/persons").json()
    assert len(default["data"]) == 100  # default limit


def test_limit_above_500_is_clamped_or_rejected(start_pipedrive_sim, http):
    clamp = start_pipedrive_sim(persons=700, rate_limits_enabled=False)
    assert len(http(clamp).get("/api/v2/persons", params={"limit": 900}).json()["data"]) == 500
    reject = start_pipedrive_sim(persons=10, rate_limits_enabled=False, list_limit_oversize="reject")
    response = http(reject).get("/api/v2/persons", params={"limit": 900})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and "500" in body["error"] and body["data"] is None


def test_updated_since_is_inclusive_and_updated_until_exclusive(sim, http):
    api = http(sim)
    stamps = {int(i): o["update_time"] for i, o in sim.records("persons").items()}
    pivot = sorted(stamps.values())[600]
    at_pivot = {i for i, s in stamps.items() if s == pivot}
    before, _ = page_all(api, "/api/v2/persons", updated_until=pivot, sort_by="update_time", limit=500)
    since, _ = page_all(api, "/api/v2/persons", updated_since=pivot, sort_by="update_time", limit=500)
    assert at_pivot <= set(since) and not at_pivot & set(before)
    assert set(before) | set(since) == set(stamps) and not set(before) & set(since)
    ordered = [stamps[i] for i in since]
    assert ordered == sorted(ordered)


def test_fractional_seconds_and_bad_dates_are_rejected(sim, http, start_pipedrive_sim):
    api = http(sim)
    response = api.get("/api/v2/persons", params={"updated_since": "2025-01-01T10:20:00.500Z"})
    assert response.status_code == 400 and "fractional" in response.json()["error"]
    assert api.get("/api/v2/persons", params={"updated_since": "yesterday"}).status_code == 400
    lenient = start_pipedrive_sim(persons=5, rate_limits_enabled=False, reject_fractional_seconds=False)
    assert http(lenient).get("/api/v2/persons", params={"updated_since": "2025-01-01T10:20:00.500Z"}).status_code == 200


def test_equal_update_times_page_by_id_without_loss(sim, http):
    api = http(sim)
    sim.clock.freeze()
    changed = set(map(int, sim.modify("persons", n=700)))
    stamp = iso(sim.clock.timestamp())
    ids, pages = page_all(api, "/api/v2/persons", updated_since=stamp, sort_by="update_time", limit=100)
    assert set(ids) == changed and len(ids) == 700 and pages == 7
    assert ids == sorted(ids)  # ties broken by id


def test_ids_filter_and_status_deleted_for_deals(sim, http):
    api = http(sim)
    some = sorted(sim.records("deals"), key=int)[:3]
    body = api.get("/api/v2/deals", params={"ids": ",".join(some)}).json()
    assert sorted(str(o["id"]) for o in body["data"]) == some
    assert api.get("/api/v2/persons", params={"ids": ",".join(str(i) for i in range(1, 102))}).status_code == 400
    gone = sim.delete("deals", [some[0]])
    assert [o["id"] for o in api.get("/api/v2/deals", params={"ids": ",".join(some)}).json()["data"]] == [int(some[1]), int(some[2])]
    deleted = api.get("/api/v2/deals", params={"status": "deleted"}).json()["data"]
    assert [str(o["id"]) for o in deleted] == gone and deleted[0]["is_deleted"] is True


def test_get_of_a_deleted_record_is_flagged_or_404(sim, http, start_pipedrive_sim):
    api = http(sim)
    [gone] = sim.delete("persons", 1)
    flagged = api.get(f"/api/v2/persons/{gone}")
    assert flagged.status_code == 200 and flagged.json()["data"]["is_deleted"] is True
    other = start_pipedrive_sim(persons=5, rate_limits_enabled=False, deleted_get="404")
    [gone] = other.delete("persons", 1)
    response = http(other).get(f"/api/v2/persons/{gone}")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Person not found", "error_info": "Please check developers.pipedrive.com", "data": None, "additional_data": None, "errorCode": 404}


def test_auth_header_query_token_and_401_body(sim, http):
    assert http(sim).get("/api/v2/persons", params={"limit": 1}).status_code == 200
    assert http(sim, token=None).get("/api/v2/persons", params={"limit": 1, "api_token": TOKEN}).status_code == 200
    response = http(sim, token="wrong").get("/api/v2/persons")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized access" and response.json()["errorCode"] == 401


def test_create_update_delete_and_validation_errors(sim, http):
    api = http(sim)
    keys = sim.field_keys("persons")
    created = api.post("/api/v2/persons", json={"name": "Ana Souza", "emails": [{"value": "ana@x.com.br", "primary": True}], "custom_fields": {keys["crm_record_id"]: "contacts:1"}}).json()["data"]
    assert (created["first_name"], created["last_name"]) == ("Ana", "Souza")
    assert created["custom_fields"][keys["crm_record_id"]] == "contacts:1"
    assert list(created["custom_fields"]) == list(keys.values())  # the company's field order, whatever the hash seed
    patched = api.patch(f"/api/v2/persons/{created['id']}", json={"first_name": "Ána"}).json()["data"]
    assert patched["name"] == "Ána Souza"
    missing_name = api.post("/api/v2/persons", json={"emails": []})
    assert missing_name.status_code == 400 and missing_name.json()["error"] == "Name must be given"
    bad_email = api.post("/api/v2/persons", json={"name": "X", "emails": [{"value": "not-an-email"}]})
    assert bad_email.status_code == 400 and "email" in bad_email.json()["error"].lower()
    unknown_field = api.post("/api/v2/persons", json={"name": "X", "custom_fields": {"f" * 40: "1"}})
    assert unknown_field.status_code == 400
    bad_stage = api.post("/api/v2/deals", json={"title": "T", "stage_id": 99})
    assert bad_stage.status_code == 400 and "Stage" in bad_stage.json()["error"]
    assert api.delete(f"/api/v2/persons/{created['id']}").json() == {"success": True, "data": {"id": created["id"]}}
    assert api.patch(f"/api/v2/persons/{created['id']}", json={"name": "Y"}).status_code == 404


def test_search_exact_match_on_custom_fields(sim, http):
    api = http(sim)
    person = next(o for o in sim.records("persons").values() if o["emails"])
    email = person["emails"][0]["value"]
    items = api.get("/api/v2/persons/search", params={"term": email, "fields": "email", "exact_match": "true"}).json()["data"]["items"]
    assert [i["item"]["id"] for i in items] == [person["id"]] and items[0]["item"]["emails"] == [email]
    assert api.get("/api/v2/persons/search", params={"term": "x"}).status_code == 400  # 2 characters without exact_match
    assert api.get("/api/v2/persons/search", params={"term": "ana", "fields": "title"}).status_code == 400


def test_fields_endpoint_lists_custom_fields_with_40_char_keys(sim, http):
    data = http(sim).get("/v1/personFields").json()["data"]
    custom = {f["name"]: f["key"] for f in data if f["edit_flag"]}
    assert set(custom) == {"Company", "Job title", "Lifecycle stage", "CPF/CNPJ", "crm_record_id", "Favorite color", "Loyalty tier", "Lead channel"}
    assert all(len(k) == 40 for k in custom.values())


def test_burst_limit_headers_429_body_and_retry_after_switch(start_pipedrive_sim, http):
    for retry_after in (False, True):
        sim = start_pipedrive_sim(persons=5, burst_limit=5, retry_after_on_429=retry_after)
        api = http(sim)
        first = api.get("/api/v2/persons/1")
        assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("5", "4")
        assert first.headers["x-ratelimit-reset"] == "2"
        assert first.headers["x-daily-ratelimit-token-limit"] == "30000"
        assert first.headers["x-daily-ratelimit-token-remaining"] == "29999"
        for _ in range(4):
            assert api.get("/api/v2/persons/1").status_code == 200
        over = api.get("/api/v2/persons/1")
        assert over.status_code == 429
        assert over.json() == {"success": False, "error": "Request over limit", "error_info": "Please check developers.pipedrive.com", "data": None, "additional_data": None, "errorCode": 429}
        assert over.headers["x-ratelimit-remaining"] == "0" and 1 <= int(over.headers["x-ratelimit-reset"]) <= 2
        assert ("Retry-After" in over.headers) is retry_after
        assert sim.stats["rate_limited_total"] == 1
        assert over.headers["x-daily-ratelimit-token-remaining"] == "29995"  # a refused call costs nothing


def test_burst_counted_in_tokens_when_switched(start_pipedrive_sim, http):
    sim = start_pipedrive_sim(persons=5, burst_limit=25, burst_unit="tokens")
    api = http(sim)
    assert api.get("/api/v2/persons").headers["x-ratelimit-remaining"] == "15"  # a list costs 10
    assert api.get("/api/v2/persons").status_code == 200
    assert api.get("/api/v2/persons").status_code == 429
    assert api.get("/api/v2/persons/1").status_code == 200  # 1 token still fits


def test_search_has_its_own_window(start_pipedrive_sim, http):
    sim = start_pipedrive_sim(persons=5, burst_limit=100, search_burst_limit=3)
    api = http(sim)
    codes = [api.get("/api/v2/persons/search", params={"term": "ana"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert api.get("/api/v2/persons").status_code == 200


def test_daily_token_budget_resets_at_midnight_and_headers_switch(start_pipedrive_sim, http):
    sim = start_pipedrive_sim(persons=5, burst_limit=100, daily_token_budget=25, clock_start=datetime(2025, 3, 1, 23, 59, 0, tzinfo=UTC), freeze_clock=True)
    api = http(sim)
    assert [api.get("/api/v2/persons").status_code for _ in range(3)] == [200, 200, 429]
    over = api.get("/api/v2/persons")
    assert over.json()["error"] == "Daily token budget exceeded" and over.headers["x-daily-ratelimit-token-remaining"] == "5"
    assert api.get("/api/v2/persons/1").status_code == 200  # a 1-token call still fits
    sim.clock.advance(120)
    assert api.get("/api/v2/persons").status_code == 200
    quiet = start_pipedrive_sim(persons=5, send_daily_headers=False)
    assert "x-daily-ratelimit-token-limit" not in http(quiet).get("/api/v2/persons").headers
    plan = start_pipedrive_sim(persons=1, plan="ultimate", seats=3)
    assert http(plan).get("/api/v2/persons/1").headers["x-daily-ratelimit-token-limit"] == str(30_000 * 7 * 3)


def test_injected_faults_use_pipedrive_bodies(sim, http):
    api = http(sim)
    sim.fail_next(1, 503)
    response = api.get("/api/v2/persons")
    assert response.status_code == 503 and response.json()["success"] is False
    sim.fail_next(1, 429)
    assert api.get("/api/v2/persons").json()["error"] == "Request over limit"


class _Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(receiver.deliveries) <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/pipedrive"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_webhooks_v2_bodies_basic_auth_and_retries(start_pipedrive_sim, http):
    import json

    from crm_pipelines.webhooks.parsing import parse_pipedrive

    receiver = _Receiver(fail_first=1)
    try:
        sim = start_pipedrive_sim(persons=3, rate_limits_enabled=False, webhook_url=receiver.url, webhook_user="hook", webhook_password="s3cret", webhook_retry_base_s=0.05)
        api = http(sim)
        created = api.post("/api/v2/persons", json={"name": "Zoë Müller"}).json()["data"]
        api.patch(f"/api/v2/persons/{created['id']}", json={"name": "Zoë Müller-Lüdenscheidt"})
        api.delete(f"/api/v2/persons/{created['id']}")
        assert _wait(lambda: len(receiver.deliveries) >= 4)
        auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()
        assert all(h["authorization"] == auth for h, _ in receiver.deliveries)
        bodies = [json.loads(b) for _, b in receiver.deliveries]
        assert bodies[0]["meta"]["attempt"] == 1 and bodies[1]["meta"]["attempt"] == 2  # the first try got a 500
        assert bodies[0]["meta"]["id"] == bodies[1]["meta"]["id"]
        create, change, delete = bodies[1], bodies[2], bodies[3]
        assert (create["meta"]["action"], create["meta"]["entity"], create["previous"]) == ("create", "person", None)
        assert create["data"]["name"] == "Zoë Müller" and create["meta"]["entity_id"] == str(created["id"])
        assert change["previous"]["name"] == "Zoë Müller" and change["data"]["name"] == "Zoë Müller-Lüdenscheidt"
        assert delete["meta"]["action"] == "delete" and delete["data"] is None
        rows = parse_pipedrive(receiver.deliveries[3][1], {})
        assert rows[0]["object_type"] == "person" and rows[0]["object_id"] == str(created["id"])
    finally:
        receiver.close()


def test_webhooks_v1_switch(start_pipedrive_sim):
    import json

    receiver = _Receiver()
    try:
        sim = start_pipedrive_sim(persons=3, rate_limits_enabled=False, webhook_url=receiver.url, webhook_version="1.0")
        [record_id] = sim.modify("persons", n=1)
        assert _wait(lambda: len(receiver.deliveries) >= 1)
        body = json.loads(receiver.deliveries[0][1])
        assert body["event"] == "updated.person" and body["meta"]["id"] == int(record_id) and body["current"]["active_flag"] is True
        assert "authorization" not in receiver.deliveries[0][0]
    finally:
        receiver.close()
