"""Bling's rotated refresh token survives between commands on the default SQLite database."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from crm_pipelines.cli import main
from crm_pipelines.providers.bling.api import BlingAuth
from crm_pipelines.providers.bling.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN
from crm_pipelines.storage.schema import oauth_tokens
from crm_pipelines_tests.faults.harness import TEST_SECRET_KEY


def test_two_syncs_in_a_row_on_the_default_database_keep_the_rotated_token(start_bling_sim, tmp_path, monkeypatch, capsys):
    sim = start_bling_sim(contacts=4, companies=6, deals=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CRM_SECRET_KEY", raising=False)
    for name, value in {"BLING_BASE_URL": sim.base_url + "/Api/v3", "BLING_CLIENT_ID": DEFAULT_CLIENT_ID,
                        "BLING_CLIENT_SECRET": DEFAULT_CLIENT_SECRET, "BLING_REFRESH_TOKEN": DEFAULT_REFRESH_TOKEN}.items():
        monkeypatch.setenv(name, value)
    for attempt in range(2):
        BlingAuth._REGISTRY.clear()  # each command is a new process: it knows only BLING_REFRESH_TOKEN and the database
        code = main(["sync", "bling", "companies"])
        out = capsys.readouterr()
        assert code == 0, f"sync {attempt + 1}: {out.err}"
        assert "invalid_grant" not in out.err + out.out
    assert DEFAULT_REFRESH_TOKEN not in sim.current_refresh_tokens  # the configured token died with the first rotation
    engine = create_engine(f"sqlite:///{tmp_path / 'crm_pipelines.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth_tokens)).scalar() == 1
    engine.dispose()


@pytest.mark.postgres
def test_on_postgres_the_token_is_kept_with_a_key_and_never_spent_without_one(start_bling_sim, postgres_url, tmp_path, monkeypatch, capsys):
    sim = start_bling_sim(contacts=2, companies=3, deals=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_DATABASE_URL", postgres_url)
    monkeypatch.delenv("CRM_SECRET_KEY", raising=False)
    for name, value in {"BLING_BASE_URL": sim.base_url + "/Api/v3", "BLING_CLIENT_ID": DEFAULT_CLIENT_ID,
                        "BLING_CLIENT_SECRET": DEFAULT_CLIENT_SECRET, "BLING_REFRESH_TOKEN": DEFAULT_REFRESH_TOKEN}.items():
        monkeypatch.setenv(name, value)
    BlingAuth._REGISTRY.clear()
    assert main(["sync", "bling", "companies"]) == 1
    err = capsys.readouterr().err
    assert "CRM_SECRET_KEY" in err and len(err.strip().splitlines()) == 1
    assert DEFAULT_REFRESH_TOKEN in sim.current_refresh_tokens  # not spent on a rotation nobody could keep

    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET_KEY)
    for _ in range(2):
        BlingAuth._REGISTRY.clear()
        assert main(["sync", "bling", "companies"]) == 0, capsys.readouterr().err
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth_tokens)).scalar() == 1
    engine.dispose()


def test_a_stores_integration_keeps_its_rotated_token_in_that_stores_database(start_bling_sim, tmp_path, monkeypatch):
    from crm_pipelines.storage.store import LocalStore
    from crm_pipelines.sync.runner import import_now

    sim = start_bling_sim(contacts=4, companies=6, deals=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)  # the environment's database would be ./crm_pipelines.db
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET_KEY)
    store = LocalStore.open(f"sqlite:///{tmp_path / 'lojas.db'}")
    store.integrations.add_store("loja_a")
    store.integrations.add("bling", store="loja_a", connection={"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                                                               "refresh_token": DEFAULT_REFRESH_TOKEN, "base_url": sim.base_url + "/Api/v3"})
    import_now(store.integrations.get("bling", "loja_a"), "companies", store)
    assert DEFAULT_REFRESH_TOKEN not in sim.current_refresh_tokens  # rotated
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth_tokens)).scalar() == 1
    assert not (tmp_path / "crm_pipelines.db").exists()
    store.dispose()
