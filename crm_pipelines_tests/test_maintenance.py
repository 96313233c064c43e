"""The maintenance job removes finished runs and processed webhook events past retention."""

from __future__ import annotations


import dagster as dg

from crm_pipelines.dagster_defs.database import LocalDatabaseResource
from crm_pipelines.dagster_defs.maintenance import maintenance_job
from crm_pipelines.webhooks.inbox import WebhookInbox


@dg.op
def noop() -> None:
    pass


@dg.job
def small_job():
    noop()


def test_old_runs_and_processed_events_are_deleted(sqlite_url):
    instance = dg.DagsterInstance.ephemeral()
    kept_job_runs = [small_job.execute_in_process(instance=instance).run_id for _ in range(3)]
    db = LocalDatabaseResource(url=sqlite_url)
    inbox = WebhookInbox(db.store().engine)
    inbox.store("hubspot", [{"event_id": "old", "subscription_type": "contact.creation", "object_type": "contact", "object_id": "1", "occurred_at": None}], b"[]")
    inbox.store("hubspot", [{"event_id": "new", "subscription_type": "contact.creation", "object_type": "contact", "object_id": "2", "occurred_at": None}], b"[]")
    rows = inbox.read_after("hubspot", 0, 10)
    inbox.mark_processed([rows[0]["id"]])

    # Retention of 30 days: nothing is old enough.
    result = maintenance_job.execute_in_process(instance=instance, resources={"crm_db": db})
    assert result.output_for_node("purge_old_runs_and_events") == {"runs_deleted": 0, "webhook_events_deleted": 0}

    # Retention of 0 days: every finished run goes (not the one running), and the processed event.
    result = maintenance_job.execute_in_process(
        instance=instance, resources={"crm_db": db},
        run_config={"ops": {"purge_old_runs_and_events": {"config": {"run_retention_days": 0, "inbox_retention_days": 0}}}},
    )
    assert result.output_for_node("purge_old_runs_and_events") == {"runs_deleted": 4, "webhook_events_deleted": 1}
    remaining = {r.run_id for r in instance.get_runs()}
    assert remaining == {result.run_id}
    assert not remaining & set(kept_job_runs)
    assert [r["event_id"] for r in inbox.read_after("hubspot", 0, 10)] == ["new"]
    db.store().dispose()
