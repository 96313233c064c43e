"""Which window a run reads, and which partition the schedule asks for."""

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import dagster as dg

from crm_pipelines.dagster_defs.partitions import SYNC_PARTITIONS, closed_window_key, sync_start
from crm_pipelines.definitions import defs
from crm_pipelines.storage.store import SyncState
from crm_pipelines.sync.importer import plan_window

UTC = timezone.utc
FIRST = datetime(2026, 1, 1, tzinfo=UTC)


def test_first_partition_reads_everything_before_it():
    w = plan_window(SyncState("hubspot", "contacts"), FIRST, FIRST + timedelta(days=30), first_start=FIRST, now=FIRST + timedelta(days=40))
    assert w.lower is None and w.is_full


def test_window_overlaps_the_previous_one():
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    state = SyncState("hubspot", "contacts", synced_through=start)
    w = plan_window(state, start, start + timedelta(minutes=30), first_start=FIRST, now=start + timedelta(hours=1))
    assert w.lower == start - timedelta(minutes=5)
    assert w.upper == start + timedelta(minutes=30)


def test_open_window_is_read_until_now():
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    now = start + timedelta(minutes=12)
    w = plan_window(SyncState("hubspot", "contacts", synced_through=start), start, start + timedelta(minutes=30), first_start=FIRST, now=now)
    assert w.upper == now


def test_gap_since_last_sync_is_caught_up():
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    last = start - timedelta(hours=3)
    state = SyncState("hubspot", "contacts", synced_through=last)
    w = plan_window(state, start, start + timedelta(minutes=30), first_start=FIRST, now=start + timedelta(hours=1))
    assert w.lower == last - timedelta(minutes=5)
    assert "catching up" in w.reason
    no_catch_up = plan_window(state, start, start + timedelta(minutes=30), first_start=FIRST, catch_up=False)
    assert no_catch_up.lower == start - timedelta(minutes=5)


def test_schedule_tick_requests_the_window_that_just_closed():
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("hubspot_incremental")
    assert schedule.cron_schedule == "*/30 * * * *"
    tick = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repository) as context:
        result = schedule.evaluate_tick(context)
    [request] = result.run_requests
    assert request.partition_key == "2026-05-04-10:00"
    assert request.run_key == "hubspot:2026-05-04-10:00"
    assert closed_window_key(datetime(2026, 5, 4, 0, 0, 5, tzinfo=UTC)) == "2026-05-03-23:30"


def test_partitions_include_the_open_window():
    now = datetime.now(UTC)
    with dg.partition_loading_context(effective_dt=now):
        last = SYNC_PARTITIONS.get_last_partition_key()
    window = SYNC_PARTITIONS.time_window_for_partition_key(last)
    assert window.start <= now < window.end
    assert SYNC_PARTITIONS.get_first_partition_key() == sync_start().strftime("%Y-%m-%d-%H:%M")


def test_import_assets_are_partitioned_pooled_and_single_run_backfilled():
    for entity in ("contacts", "companies", "deals"):
        asset = defs.get_assets_def(dg.AssetKey(["hubspot", entity]))
        assert asset.partitions_def == SYNC_PARTITIONS
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()
        assert asset.group_names_by_key[dg.AssetKey(["hubspot", entity])] == "hubspot"
        assert asset.node_def.pool == "hubspot_api"


def test_dagster_definitions_validate_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "crm_pipelines.definitions"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Validation successful" in proc.stdout + proc.stderr
