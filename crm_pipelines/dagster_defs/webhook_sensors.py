"""Sensors that turn webhook events in the inbox into targeted syncs.

Each tick reads the provider's inbox rows after the cursor (at most ``MAX_EVENTS``), coalesces
them into the set of record ids per entity (a hundred changes to one contact make one id), and
requests one run of ``<provider>_sync_ids`` for them. The run key is the range of inbox ids, so
a tick repeated after a failure requests the same run, and the cursor is returned with the run
request in one ``SensorResult``. The 30-minute schedule remains the safety net.
"""

import dagster as dg

from crm_pipelines.dagster_defs.imports import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.targeted import sync_ids_job_name
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.webhooks.inbox import WebhookInbox

MAX_EVENTS = 5000


def targeted_run_request(plugin: ProviderPlugin, rows: list[dict]) -> dg.RunRequest | None:
    """One run for every record the rows mention, or None when none maps to an entity."""
    ids: dict[str, set[str]] = {}
    for row in rows:
        target = plugin.webhook_object_types.get(str(row.get("object_type") or "").lower())
        if not target or not row.get("object_id"):
            continue
        for entity in (target,) if isinstance(target, str) else target:
            ids.setdefault(entity, set()).add(str(row["object_id"]))
    if not ids:
        return None
    first, last = rows[0]["id"], rows[-1]["id"]
    config = {"ids": {entity: sorted(values, key=lambda v: (len(v), v)) for entity, values in sorted(ids.items())}, "inbox_range": [first, last]}
    return dg.RunRequest(
        run_key=f"{plugin.name}:inbox:{first}-{last}",
        run_config={"ops": {f"{plugin.name}__sync_ids": {"config": config}}},
        tags={"crm/trigger": "webhook", "crm/provider": plugin.name},
    )


def build_webhook_sensor(plugin: ProviderPlugin) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{plugin.name}_webhooks",
        job_name=sync_ids_job_name(plugin.name),
        minimum_interval_seconds=15,
        required_resource_keys={DB_RESOURCE_KEY},
        description=f"Syncs the {plugin.title} records named by new webhook events, without waiting for the schedule.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = int(context.cursor or 0)
        engine = getattr(context.resources, DB_RESOURCE_KEY).store().engine
        rows = WebhookInbox(engine).read_after(plugin.name, after, MAX_EVENTS)
        if not rows:
            return dg.SensorResult(skip_reason=f"no {plugin.title} webhook events after inbox id {after}")
        request = targeted_run_request(plugin, rows)
        cursor = str(rows[-1]["id"])
        if request is None:
            return dg.SensorResult(skip_reason=f"{len(rows)} events name no synced record", cursor=cursor)
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _sensor
