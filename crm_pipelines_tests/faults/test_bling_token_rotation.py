"""Bling rotates refresh tokens: a second process must start from the newest one, not the configured one."""

from __future__ import annotations

from crm_pipelines.providers.bling.api import BlingAuth
from crm_pipelines_tests.faults.harness import start


def _new_process_auth(sim, env) -> BlingAuth:
    BlingAuth._REGISTRY.clear()  # what a new process starts with
    return BlingAuth.shared(base_url=env["BLING_BASE_URL"], client_id=env["BLING_CLIENT_ID"],
                            client_secret=env["BLING_CLIENT_SECRET"], refresh_token=env["BLING_REFRESH_TOKEN"])


def test_each_process_refreshes_with_the_newest_refresh_token(sqlite_url, monkeypatch):
    from crm_pipelines.providers.bling import PLUGIN

    sim = start("bling", (1, 1, 1))
    try:
        env = PLUGIN.simulator_env(sim)
        monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
        tokens = set()
        for _ in range(3):  # three runs, three processes
            tokens.add(_new_process_auth(sim, env).token())
        assert len(tokens) == 3
        assert env["BLING_REFRESH_TOKEN"] not in sim.current_refresh_tokens  # the configured one died at the first refresh
    finally:
        BlingAuth._REGISTRY.clear()
        sim.stop()
