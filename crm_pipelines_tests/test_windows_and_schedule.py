"""Which window a run reads, what the schedule asks for, and how the assets are partitioned."""

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.partitions import integration_partitions, parse_moment, window_key
from crm_pipelines.definitions import defs
from crm_pipelines.storage.store import SyncState
from crm_pipelines.sync.importer import plan_incremental, plan_window

UTC = timezone.utc
FIRST = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 10, 12, tzinfo=UTC)


def test_first_run_of_an_integration_reads_everything():
    w = plan_incremental(SyncState("hubspot", "contacts"), now=NOW)
    assert w.is_full and w.upper == NOW


def test_next_run_reads_from_the_last_synced_point_with_overlap():
    synced = NOW - timedelta(minutes=30)
    w = plan_incremental(SyncState("hubspot", "contacts", synced_through=synced), now=NOW)
    assert w.lower == synced - timedelta(minutes=5) and w.upper == NOW


def test_a_run_after_an_outage_catches_up_with_no_gap():
    synced = NOW - timedelta(hours=7)
    w = plan_incremental(SyncState("hubspot", "contacts", synced_through=synced), now=NOW)
    assert w.lower == synced - timedelta(minutes=5)
    assert "last synced point" in w.reason


def test_a_requested_window_is_read_as_asked_and_never_beyond_now():
    since = NOW - timedelta(days=2)
    w = plan_incremental(SyncState("hubspot", "contacts", synced_through=NOW), now=NOW, since=since, until=since + timedelta(hours=6))
    assert (w.lower, w.upper) == (since - timedelta(minutes=5), since + timedelta(hours=6))
    assert plan_incremental(SyncState("hubspot", "contacts"), now=NOW, since=since, until=NOW + timedelta(days=1)).upper == NOW
    with pytest.raises(ValueError, match="ends"):
        plan_incremental(SyncState("hubspot", "contacts"), now=NOW, since=NOW - timedelta(hours=1), until=NOW - timedelta(hours=2))


def test_full_reads_everything_again():
    assert plan_incremental(SyncState("hubspot", "contacts", synced_through=NOW), now=NOW, full=True).is_full


def test_time_window_planning_for_scripts_still_overlaps():
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    w = plan_window(SyncState("hubspot", "contacts", synced_through=start), start, start + timedelta(minutes=30), first_start=FIRST, now=start + timedelta(hours=1))
    assert w.lower == start - timedelta(minutes=5)


def test_moments_accept_window_keys_dates_and_iso():
    assert parse_moment("2026-05-04-10:30") == datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
    assert parse_moment("2026-05-04") == datetime(2026, 5, 4, tzinfo=UTC)
    assert parse_moment("2026-05-04T10:30:00-03:00") == datetime(2026, 5, 4, 13, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_moment("yesterday")


def test_schedule_tick_requests_one_run_for_the_provider():
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("hubspot_incremental")
    assert schedule.cron_schedule == "*/30 * * * *"
    tick = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repository) as context:
        result = schedule.evaluate_tick(context)
    [request] = result.run_requests
    assert request.run_key == "hubspot:2026-05-04-10:30"
    assert request.tags["crm/trigger"] == "schedule"
    assert schedule.job_name == "hubspot_incremental"
    assert window_key(datetime(2026, 5, 4, 0, 29, 59, tzinfo=UTC)) == "2026-05-04-00:00"


def test_assets_are_partitioned_by_integration_and_pooled():
    for entity in ("contacts", "companies", "deals"):
        for key in (dg.AssetKey(["hubspot", entity]), dg.AssetKey(["hubspot", f"{entity}_export"])):
            asset = defs.get_assets_def(key)
            assert asset.partitions_def == integration_partitions("hubspot")
            assert asset.group_names_by_key[key] == "hubspot"
        assert defs.get_assets_def(dg.AssetKey(["hubspot", entity])).node_def.pool == "hubspot_api"


def test_local_tables_descend_from_every_import_of_their_entity():
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey(["local", "contacts"])).parent_keys
    assert {dg.AssetKey([p, "contacts"]) for p in ("hubspot", "salesforce", "pipedrive", "shopify", "bling", "gestaoclick")} <= parents


def test_dagster_definitions_validate_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "crm_pipelines.definitions"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Validation successful" in proc.stdout + proc.stderr


def test_the_project_is_laid_out_for_the_dg_cli():
    """``dg check defs`` (the successor of ``definitions validate``) loads the project from pyproject's [tool.dg]."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["dg", "check", "defs"], cwd=repo, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "All definitions loaded successfully" in output
    assert "SupersessionWarning" not in output and "BetaWarning" not in output, output[-3000:]
