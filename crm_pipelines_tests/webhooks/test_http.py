"""The receiver served by uvicorn over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.testclient import TestClient

from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.schema import webhooks
from crm_pipelines.webhooks.app import create_app

from .conftest import SECRETS
from .deliveries import PROVIDERS, body_for, sign


@pytest.fixture
def live_url(engine):
    """The app served by uvicorn on an ephemeral port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, SECRETS), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_every_provider_over_http_row_committed_before_200(live_url, db_url):
    reader = make_engine(db_url)
    try:
        with httpx.Client(base_url=live_url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            for provider in PROVIDERS:
                body = body_for(provider)
                headers = sign(provider, body, SECRETS, uri=f"{live_url}/webhooks/{provider}")
                response = client.post(f"/webhooks/{provider}", content=body, headers=headers)
                assert response.status_code == 200, response.text
                # read at once, through another engine: the rows are already committed
                with reader.connect() as conn:
                    stored = conn.execute(select(webhooks.c.event_id).where(webhooks.c.provider == provider)).all()
                assert len(stored) == response.json()["stored"] == (2 if provider == "hubspot" else 1)

                again = client.post(f"/webhooks/{provider}", content=body, headers=headers)
                assert again.json()["stored"] == 0

                forged = dict(headers)
                forged.update(sign(provider, body + b" ", SECRETS, uri=f"{live_url}/elsewhere"))
                if provider == "pipedrive":
                    forged["Authorization"] = "Basic " + "Zm9yZ2VkOmZvcmdlZA=="
                assert client.post(f"/webhooks/{provider}", content=body, headers=forged).status_code == 401
                with reader.connect() as conn:
                    assert len(conn.execute(select(webhooks.c.id).where(webhooks.c.provider == provider)).all()) == len(stored)
    finally:
        reader.dispose()


def test_no_200_when_the_write_fails(engine, count_rows):
    """If the inbox cannot commit, the provider gets a 5xx (and will redeliver), never a 200."""
    app = create_app(engine, SECRETS)

    def failing_store(*args, **kwargs):
        raise RuntimeError("database unavailable")

    app.state.inbox.store_many_in = failing_store
    body = body_for("bling")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/webhooks/bling", content=body, headers=sign("bling", body, SECRETS))
    assert response.status_code == 500
    assert count_rows() == 0
