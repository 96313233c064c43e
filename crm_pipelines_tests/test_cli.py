"""Every ``crm-pipelines`` command, against the HubSpot simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from crm_pipelines.cli import main
from crm_pipelines.core.processes import stop_group as stop_group_id
from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.helpers.processes import group_members, stop_group

TOKEN = "cli-token"


@pytest.fixture
def env(start_hubspot_sim, db_url, monkeypatch):
    sim = start_hubspot_sim(seed=8, contacts=250, companies=30, deals=40, tokens=(TOKEN,), burst_limit=1000)
    monkeypatch.setenv("HUBSPOT_BASE_URL", sim.base_url)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("CRM_DATABASE_URL", db_url)
    monkeypatch.delenv("CRM_CONFLICT_STRATEGIES", raising=False)
    store = LocalStore.open(db_url)
    yield sim, store
    store.dispose()


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def add_local(store, *rows):
    now = datetime.now(timezone.utc)
    with store.engine.begin() as conn:
        blank = {"email": None, "first_name": None, "phone": None, "document": None}
        return conn.execute(insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True),
                            [{**blank, "created_at": now, "updated_at": now, **r} for r in rows]).scalars().all()


def test_sync_status_and_budgets(env, capsys):
    sim, store = env
    code, out, err = run(capsys, "sync", "hubspot", "--full")
    assert code == 0, err
    assert "hubspot/contacts: processed 250, created 250" in out
    for entity in ("contacts", "companies", "deals"):
        assert set(store.linked_records("hubspot", entity)) == set(sim.records(entity))
    sim.modify("contacts", n=7)
    time.sleep(0.1)  # the simulator stamps changes a few ms ahead; a sync reads up to its own now
    code, out, _ = run(capsys, "sync", "hubspot", "contacts")
    assert code == 0 and "updated 7" in out
    code, out, _ = run(capsys, "status", "hubspot")
    assert code == 0 and "contacts" in out and "success" in out and "250" in out
    code, out, _ = run(capsys, "budgets")
    assert code == 0 and "ten-secondly" in out


def test_export_dry_run_then_for_real_then_rejects_and_retry(env, capsys):
    sim, store = env
    good, bad = add_local(store, {"email": "nova@exemplo.com.br", "first_name": "Conceição"}, {"email": "sem-arroba", "first_name": "Antônio"})
    code, out, _ = run(capsys, "export", "hubspot", "contacts", "--dry-run")
    assert code == 0 and "would create 2" in out
    assert len(sim.records("contacts")) == 250
    code, out, _ = run(capsys, "export", "hubspot", "contacts", "--only-new", "--batch-size", "50")
    assert code == 0 and "created 1" in out and "rejected 1" in out
    assert "crm-pipelines rejects list hubspot" in out
    code, out, _ = run(capsys, "rejects", "list", "hubspot")
    assert code == 0 and str(bad) in out and "export" in out
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == bad).values(email="antonio@exemplo.com.br"))
    code, out, _ = run(capsys, "rejects", "retry", "hubspot", "contacts")
    assert code == 0 and "retried 1, still rejected 0" in out
    emails = {o["properties"].get("email") for o in sim.records("contacts").values()}
    assert {"nova@exemplo.com.br", "antonio@exemplo.com.br"} <= emails


def test_conflicts_list_and_resolve(env, capsys, monkeypatch):
    sim, store = env
    monkeypatch.setenv("CRM_CONFLICT_STRATEGIES", "hubspot.contacts=manual")
    assert run(capsys, "sync", "hubspot", "contacts", "--full")[0] == 0
    [external_id] = sim.modify("contacts", n=1)
    local_id = store.linked_records("hubspot", "contacts")[external_id]["id"]
    with store.engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == local_id).values(job_title="Diretora local", updated_at=datetime.now(timezone.utc)))
    code, out, _ = run(capsys, "sync", "hubspot", "contacts")
    assert code == 0 and "conflicts 1" in out
    code, out, _ = run(capsys, "conflicts", "list")
    assert code == 0 and "waiting" in out and "Diretora local" in out
    conflict_id = int(out.splitlines()[2].split()[0])
    code, out, _ = run(capsys, "conflicts", "resolve", str(conflict_id), "--field", "job_title=local")
    assert code == 0 and "resolved: merged" in out
    with store.engine.connect() as conn:
        assert conn.execute(select(contacts.c.job_title).where(contacts.c.id == local_id)).scalar_one() == "Diretora local"
    code, _, err = run(capsys, "conflicts", "resolve", str(conflict_id), "--take", "provider")
    assert code == 1 and "already resolved" in err
    code, out, _ = run(capsys, "conflicts", "list")
    assert "(nothing)" in out


def test_dedupe_dry_run_policy_and_manual_merge(env, capsys):
    _, store = env
    a, b, c, d = add_local(store, {"email": "ana@exemplo.com.br"}, {"email": "ANA@exemplo.com.br", "phone": "11 5555"},
                           {"document": "529.982.247-25"}, {"document": "52998224725"})
    code, out, _ = run(capsys, "dedupe", "contacts", "--dry-run", "--policy", "keep_latest")
    assert code == 0 and "2 groups of duplicates (dry run" in out and f"would keep {b}" in out
    code, out, _ = run(capsys, "dedupe", "contacts")
    assert code == 0 and "review (manual)" in out
    code, out, _ = run(capsys, "dedupe", "contacts", "--merge", str(c), str(d))
    assert code == 0 and f"kept contacts {c}, merged [{d}]" in out
    code, out, _ = run(capsys, "dedupe", "contacts", "--policy", "keep_latest")
    assert code == 0 and f"kept {b}, merged [{a}]" in out and "1 groups" in out


def test_errors_are_one_line_and_exit_non_zero(env, capsys, monkeypatch):
    code, _, err = run(capsys, "sync", "nowhere")
    assert code == 1 and err.strip() == "crm-pipelines sync: error: unknown provider 'nowhere'; expected one of " + err.split("expected one of ")[1].strip()
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "wrong-token")
    code, _, err = run(capsys, "sync", "hubspot", "contacts")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "401" in err and "wrong-token" not in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_async_launches_through_dagster_and_returns(env, capsys, tmp_path, monkeypatch):
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    code, out, err = run(capsys, "sync", "hubspot", "--async")
    assert code == 0, err
    assert "queued: hubspot_import" in out and "crm-pipelines jobs watch" in out
    with dg.DagsterInstance.get() as instance:
        [queued] = instance.get_runs()
        assert queued.job_name == "hubspot_import" and queued.tags["crm/trigger"] == "cli" and queued.tags["crm/job_id"]
        assert queued.status == dg.DagsterRunStatus.QUEUED  # the daemon would run it
    code, _, err = run(capsys, "export", "hubspot", "contacts", "--async")
    assert code == 1 and "covers every entity" in err
    code, out, err = run(capsys, "export", "hubspot", "--async", "--dry-run")
    assert code == 0, err
    with dg.DagsterInstance.get() as instance:
        export_run = next(r for r in instance.get_runs() if r.job_name == "hubspot_export")
        configs = export_run.run_config["ops"]
        assert set(configs) == {"hubspot__contacts_export", "hubspot__companies_export", "hubspot__deals_export"}
        assert all(c["config"]["dry_run"] for c in configs.values())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_async_says_in_one_line_what_to_set(env, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "sync", "hubspot", "--async")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "set DAGSTER_HOME" in err
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    code, _, err = run(capsys, "export", "hubspot", "--async", "--dry-run")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "HUBSPOT_ACCESS_TOKEN" in err and "drop --async" in err
    (home / "dev.env").write_text("export HUBSPOT_ACCESS_TOKEN=x\n")  # what a running `crm-pipelines dev` leaves
    code, _, err = run(capsys, "sync", "hubspot", "--async")
    assert code == 1 and f"source {home / 'dev.env'}" in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sandbox_serves_every_simulator_until_terminated(db_url, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "crm_pipelines.cli", "sandbox", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env=dict(os.environ))
    try:
        lines = []
        while not any(line.startswith("  export GESTAOCLICK_SECRET_ACCESS_TOKEN=") for line in lines):
            line = proc.stdout.readline()
            assert line, f"sandbox stopped: {proc.stderr.read()[-2000:]}"
            lines.append(line)
        exports = dict(line.strip()[len("export "):].split("=", 1) for line in lines if line.startswith("  export "))
        # The HubSpot simulator answers the real path with the printed token.
        response = httpx.get(f"{exports['HUBSPOT_BASE_URL']}/crm/v3/objects/contacts", params={"limit": 1},
                             headers={"Authorization": f"Bearer {exports['HUBSPOT_ACCESS_TOKEN']}"}, timeout=10)
        assert response.status_code == 200 and len(response.json()["results"]) == 1
        assert {"SALESFORCE_LOGIN_URL", "PIPEDRIVE_API_TOKEN", "SHOPIFY_ACCESS_TOKEN", "BLING_REFRESH_TOKEN"} <= set(exports)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.slow
def test_demo_runs_and_reconciles(db_url, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    done = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "demo", "--providers", "hubspot,pipedrive", "--records", "300",
                           "--changes", "5", "--database", db_url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("Reconciliation"):]
    rows = [line.split() for line in table.splitlines()[3:12]]
    # Two stores: the default one on both providers, and loja_b on its own HubSpot account.
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("hubspot", "default", "contacts"), ("hubspot", "default", "companies"), ("hubspot", "default", "deals"),
        ("hubspot", "loja_b", "contacts"), ("hubspot", "loja_b", "companies"), ("hubspot", "loja_b", "deals"),
        ("pipedrive", "default", "contacts"), ("pipedrive", "default", "companies"), ("pipedrive", "default", "deals")]
    assert all(r[3] == r[4] and r[5] == "0" and r[6] == "0" for r in rows), table
    assert rows[0][3] == "300" and rows[3][3] == "300"
    # The same people in both HubSpot accounts: the same e-mails, a record in each store.
    overlap = next(line for line in table.splitlines() if "e-mails are in both stores" in line)
    assert int(overlap.split("); ")[1].split()[0]) > 0, overlap


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_demo_output_is_its_tables_with_a_linked_column(db_url, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "crm_pipelines.cli", "demo", "--providers", "hubspot", "--records", "60", "--changes", "3",
                           "--database", db_url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert " - dagster - " not in done.stdout + done.stderr and "DEBUG" not in done.stdout + done.stderr
    assert "Warning" not in done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("asset "))
    assert header.split()[:6] == ["asset", "processed", "created", "updated", "linked", "unchanged"]


def test_importing_the_definitions_warns_nothing_about_beta_apis():
    import subprocess
    import sys

    code = ("import warnings, dagster as dg; [warnings.simplefilter('error', c) for c in (dg.BetaWarning, dg.PreviewWarning)]; "
            "import crm_pipelines.definitions as d; d.defs.get_repository_def()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dev_serves_the_ui_until_terminated(db_url, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time as clock

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"), CRM_DATABASE_URL=db_url)
    dagster_group = None
    log = tmp_path / "dev.log"
    proc = subprocess.Popen([sys.executable, "-m", "crm_pipelines.cli", "dev", "--providers", "hubspot", "--ui-port", str(port)],
                            cwd=Path(__file__).resolve().parents[1], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = clock.monotonic() + 180
        while clock.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            clock.sleep(1)
        else:
            pytest.fail("the Dagster UI did not come up")
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } jobs { name } } } } }"
        jobs = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30).json()
        names = {j["name"] for node in jobs["data"]["repositoriesOrError"]["nodes"] for j in node["jobs"]}
        assert {"hubspot_import", "hubspot_export", "bling_import"} <= names
        # The same code location name as production's workspace.yaml: schedule and sensor state carries over.
        assert {node["location"]["name"] for node in jobs["data"]["repositoriesOrError"]["nodes"]} == {"crm_pipelines"}
        settings = (tmp_path / "home" / "dev.env").read_text()  # other shells source it for --async
        assert "export HUBSPOT_ACCESS_TOKEN=" in settings and f"export DAGSTER_HOME={tmp_path / 'home'}" in settings
        # `kill PID` of the wrapper alone stops dagster dev and everything it started.
        dagster_group = next(p for p in _children(proc.pid) if "dagster dev" in p[1])[0]
        assert group_members(dagster_group), "dagster dev runs in its own process group"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0  # dagster dev stops its daemon and code servers first
        assert not group_members(dagster_group), f"left running after kill {proc.pid}: {group_members(dagster_group)}"
        assert not (tmp_path / "home" / "dev.env").exists()
    finally:
        stop_group(proc)
        if dagster_group:
            stop_group_id(dagster_group, timeout_s=10)


def _children(pid: int) -> list[tuple[int, str]]:
    """(process group, command line) of ``pid``'s direct children."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if entry.name.isdigit() and int(fields[1]) == pid:
                found.append((int(fields[2]), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")))
        except (OSError, ValueError, IndexError):
            continue
    return found
