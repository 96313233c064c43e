"""Credentials never reach error texts, logs or metadata, even from a server that echoes the request in its 401."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm_pipelines.core.redact import MASK, redact, register, register_basic
from crm_pipelines.providers.registry import plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import import_now
from crm_pipelines_tests.faults.harness import start
from crm_pipelines_tests.faults.test_secrets import secrets_of


class Echo(BaseHTTPRequestHandler):
    """Answers every request 401 with the request itself: path, query, headers and body."""

    def _echo(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        payload = json.dumps({"error": {"message": f"unauthorized: {self.command} {self.path} {dict(self.headers)} {body}",
                                        "description": str(dict(self.headers))}, "message": f"echo {self.path} {body}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = _echo

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_redact_removes_secrets_in_their_travelling_forms():
    register("s3cr3t-token-value", None, "short")
    register_basic("client-id", "client-secret-value")
    text = "Bearer s3cr3t-token-value, q=s3cr3t-token-value&x, Basic Y2xpZW50LWlkOmNsaWVudC1zZWNyZXQtdmFsdWU=, client-secret-value"
    assert redact(text) == f"Bearer {MASK}, q={MASK}&x, Basic {MASK}, {MASK}"
    assert redact("short and sweet") == "short and sweet"


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "pipedrive", "bling", "gestaoclick"])
def test_a_server_echoing_credentials_in_its_401_leaks_none(provider, echo_url, sqlite_url, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    sim = start(provider, (0, 0, 0))
    try:
        env = plugin(provider).simulator_env(sim)
        secrets = secrets_of(provider, sim, env)
        assert secrets
        for key, value in env.items():
            monkeypatch.setenv(key, value.replace(sim.base_url, echo_url))
    finally:
        sim.stop()
    store = LocalStore.open(sqlite_url)
    try:
        with pytest.raises(Exception) as caught:
            import_now(provider, "contacts", store, shared=False)
        state = store.sync_state(provider, "contacts")
        out, err = capfd.readouterr()
        texts = {"error": str(caught.value), "chained": repr(caught.value.__cause__), "logs": caplog.text,
                 "stderr": err + out, "metrics": json.dumps(state.last_metrics, default=str)}
        assert "401" in texts["error"] or "unauthorized" in texts["error"].lower() or "token" in texts["error"].lower(), texts["error"]
        for where, text in texts.items():
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{provider}: {where} holds a secret: {text[:500]}"
    finally:
        store.dispose()
