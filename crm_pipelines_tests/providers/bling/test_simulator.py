"""The Bling simulator over HTTP: OAuth, paging, delta filters, limits and error bodies, switches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, local_text

BASIC = "Basic " + base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()


def token(sim, refresh=DEFAULT_REFRESH_TOKEN):
    r = httpx.post(sim.base_url + "/Api/v3/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}, headers={"Authorization": BASIC})
    return r


def api(sim):
    body = token(sim).json()
    return httpx.Client(base_url=sim.base_url + "/Api/v3", headers={"Authorization": f"Bearer {body['access_token']}"})


def test_oauth_refresh_rotates_the_refresh_token_and_tokens_expire(start_bling_sim):
    sim = start_bling_sim(contacts=3, companies=0, deals=0)
    first = token(sim).json()
    assert first["token_type"] == "Bearer" and first["expires_in"] == 21600
    again = token(sim)  # the old refresh token died with the rotation
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_grant"
    bad_client = httpx.post(sim.base_url + "/Api/v3/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, headers={"Authorization": "Basic eDp5"})
    assert bad_client.status_code == 401
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert httpx.get(sim.base_url + "/Api/v3/contatos", headers=headers).status_code == 200
    sim.clock.advance(21601)
    expired = httpx.get(sim.base_url + "/Api/v3/contatos", headers=headers)
    assert expired.status_code == 401 and expired.json()["error"]["type"] == "invalid_token"


def test_paging_cap_and_summary_shape(start_bling_sim):
    sim = start_bling_sim(contacts=230, companies=5, deals=0)
    with api(sim) as c:
        pages = [c.get("/contatos", params={"pagina": p, "limite": 100, "tipoPessoa": 1}).json() for p in (1, 2, 3)]
        assert set(pages[0]) == {"data"}
        assert [len(p["data"]) for p in pages] == [100, 100, 30]
        ids = [i["id"] for p in pages for i in p["data"]]
        assert len(set(ids)) == 230 and ids == sorted(ids)
        assert set(pages[0]["data"][0]) == {"id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular"}
        assert len(c.get("/contatos", params={"limite": 500, "tipoPessoa": 1}).json()["data"]) == 100  # clamped
        full = c.get(f"/contatos/{ids[0]}").json()["data"]
        assert full["tipo"] == "F" and "email" in full and "endereco" in full


def test_page_cap_reject_switch_and_full_list_shape(start_bling_sim):
    sim = start_bling_sim(contacts=5, companies=0, deals=0, page_cap_mode="reject", list_shape="full")
    with api(sim) as c:
        r = c.get("/contatos", params={"limite": 101})
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "VALIDATION_ERROR" and r.json()["error"]["fields"][0]["element"] == "limite"
        assert "email" in c.get("/contatos", params={"limite": 100}).json()["data"][0]


def test_delta_filter_is_local_time_inclusive_to_the_second(start_bling_sim):
    sim = start_bling_sim(contacts=50, companies=0, deals=0)
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=10)
    ids = sim.modify("contacts", 7, at=moment)
    with api(sim) as c:
        same = c.get("/contatos", params={"dataAlteracaoInicial": local_text(int(moment.timestamp())), "dataAlteracaoFinal": local_text(int(moment.timestamp()))}).json()["data"]
        assert sorted(str(i["id"]) for i in same) == sorted(ids)
        after = c.get("/contatos", params={"dataAlteracaoInicial": local_text(int(moment.timestamp()) + 1)}).json()["data"]
        assert after == []
        # UTC text would be three hours off: the filter is local (America/Sao_Paulo) time.
        utc_text = moment.strftime("%Y-%m-%d %H:%M:%S")
        assert c.get("/contatos", params={"dataAlteracaoInicial": utc_text, "dataAlteracaoFinal": utc_text}).json()["data"] == []
        wide = c.get("/contatos", params={"dataAlteracaoInicial": "2020-01-01", "dataAlteracaoFinal": "2022-01-02"})
        assert wide.status_code == 400 and wide.json()["error"]["type"] == "VALIDATION_ERROR"


def test_excluded_contatos_are_listed_with_criterio_2(start_bling_sim):
    sim = start_bling_sim(contacts=20, companies=0, deals=0)
    gone = list(sim.records("contacts"))[:3]
    sim.delete("contacts", gone)
    with api(sim) as c:
        live = {str(i["id"]) for i in c.get("/contatos", params={"tipoPessoa": 1}).json()["data"]}
        excluded = {str(i["id"]) for i in c.get("/contatos", params={"criterio": 2, "tipoPessoa": 1}).json()["data"]}
    assert excluded == set(gone) and not live & excluded and len(live) == 17


def test_rate_limits_per_second_and_per_day_with_error_bodies(start_bling_sim):
    sim = start_bling_sim(contacts=2, companies=0, deals=0, per_second=3, daily_limit=5)
    with api(sim) as c:
        statuses = [c.get("/contatos").status_code for _ in range(4)]
        assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
        body = c.get("/contatos").json()["error"]
        assert body["type"] == "TOO_MANY_REQUESTS" and body["period"] == "second" and body["message"]
        sim._per_second.reset()
        c.get("/contatos"), c.get("/contatos")
        sim._per_second.reset()
        daily = c.get("/contatos")
        assert daily.status_code == 429 and daily.json()["error"]["period"] == "day"


def test_validation_error_envelope_lists_every_field(start_bling_sim):
    sim = start_bling_sim(contacts=0, companies=0, deals=0)
    with api(sim) as c:
        r = c.post("/contatos", json={"nome": "", "tipo": "F", "numeroDocumento": "123.456.789-00", "email": "x"})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["type"] == "VALIDATION_ERROR" and {f["element"] for f in error["fields"]} == {"nome", "numeroDocumento", "email"}
        created = c.post("/contatos", json={"nome": "Antônio Conceição", "tipo": "J", "numeroDocumento": "11.222.333/0001-81"})
        assert created.status_code == 201 and set(created.json()) == {"data"}
        new_id = created.json()["data"]["id"]
        assert c.put(f"/contatos/{new_id}", json={"nome": "Antônio Conceição Ltda"}).status_code == 204
        assert c.get(f"/contatos/{new_id}").json()["data"]["nome"] == "Antônio Conceição Ltda"
        assert c.get("/contatos/1").status_code == 404
        assert c.get("/contatos/1").json()["error"]["type"] == "RESOURCE_NOT_FOUND"
        order = c.post("/pedidos/vendas", json={"contato": {"id": new_id}, "itens": []})
        assert order.status_code == 400 and order.json()["error"]["fields"][0]["element"] == "itens"


def test_list_order_switch_and_injected_faults(start_bling_sim):
    sim = start_bling_sim(contacts=10, companies=0, deals=0, list_order="updated")
    changed = sim.modify("contacts", 1, at=datetime.now(timezone.utc) + timedelta(minutes=1))
    with api(sim) as c:
        assert str(c.get("/contatos").json()["data"][0]["id"]) == changed[0]
        sim.fail_next(1, 503)
        assert c.get("/contatos").status_code == 503
        sim.fail_next(1, 429)
        r = c.get("/contatos")
        assert r.status_code == 429 and r.json()["error"]["type"] == "TOO_MANY_REQUESTS"


def test_webhooks_are_signed_with_the_client_secret_and_retried(start_bling_sim):
    received, lock = [], threading.Lock()
    failures = {"left": 1}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                if failures["left"]:
                    failures["left"] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                received.append((body, self.headers["X-Bling-Signature-256"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sim = start_bling_sim(contacts=3, companies=1, deals=1, webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
        sim.modify("contacts", 1)
        sim.delete("deals", list(sim.records("deals")))
        assert sim.webhooks.flush(10)
        events = [json.loads(b) for b, _ in received]
        assert {e["event"] for e in events} == {"contact.updated", "order.deleted"}
        for body, signature in received:
            assert signature == "sha256=" + hmac.new(DEFAULT_CLIENT_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert all({"eventId", "date", "version", "event", "companyId", "data"} <= set(e) for e in events)
        assert sim.webhooks.stats.failed_attempts == 1
    finally:
        server.shutdown()
