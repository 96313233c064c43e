"""Sensors that turn webhook events in the inbox into targeted syncs, one run per integration.

Each tick reads the provider's inbox rows after the cursor (at most ``MAX_EVENTS``), groups them
by the integration their account belongs to, coalesces each group into the set of record ids per
entity (a hundred changes to one contact make one id), and requests one run of
``<provider>_sync_ids`` per integration. Events of an account no integration knows are never
applied (``crm-pipelines webhooks unrouted`` lists them). The run key is the integration and the
range of inbox ids, so a tick repeated after a failure requests the same runs, and the cursor is
returned with the run requests in one ``SensorResult``. The schedule remains the safety net.
"""

import dagster as dg

from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.targeted import sync_ids_job_name
from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.webhooks.applier import record_ids
from crm_pipelines.webhooks.inbox import WebhookInbox

MAX_EVENTS = 5000


def targeted_run_request(plugin: ProviderPlugin, rows: list[dict], integration_key: str = "default") -> dg.RunRequest | None:
    """One run for every record the rows (of one integration) mention, or None when none maps to an entity."""
    ids = record_ids(plugin, rows)
    if not ids:
        return None
    first, last = rows[0]["id"], rows[-1]["id"]
    config = {"integration": integration_key, "ids": ids, "inbox_range": [first, last]}
    return dg.RunRequest(
        run_key=f"{plugin.name}:{integration_key}:inbox:{first}-{last}",
        run_config={"ops": {f"{plugin.name}__sync_ids": {"config": config}}},
        tags={"crm/trigger": "webhook", "crm/provider": plugin.name, "crm/integration": integration_key, "dagster/priority": "10"},
    )


def build_webhook_sensor(plugin: ProviderPlugin) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{plugin.name}_webhooks",
        job_name=sync_ids_job_name(plugin.name),
        minimum_interval_seconds=15,
        required_resource_keys={DB_RESOURCE_KEY},
        description=f"Syncs the {plugin.title} records named by new webhook events, per integration, without waiting for the schedule.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = int(context.cursor or 0)
        store = getattr(context.resources, DB_RESOURCE_KEY).store()
        rows = WebhookInbox(store.engine).read_after(plugin.name, after, MAX_EVENTS)
        if not rows:
            return dg.SensorResult(skip_reason=f"no {plugin.title} webhook events after inbox id {after}")
        cursor = str(rows[-1]["id"])
        # Rows the webhook applier (crm-pipelines serve) has applied already need no run.
        rows = [row for row in rows if row.get("processed_at") is None]
        if not rows:
            return dg.SensorResult(skip_reason="every new event was applied by the webhook applier", cursor=cursor)
        by_integration: dict[int, list[dict]] = {}
        unrouted = 0
        for row in rows:
            if row.get("integration_id") is None:
                unrouted += 1
            else:
                by_integration.setdefault(row["integration_id"], []).append(row)
        keys = {i.id: i.key for i in store.integrations.list(provider=plugin.name)}
        requests = [r for integration_id, group in sorted(by_integration.items()) if integration_id in keys
                    for r in [targeted_run_request(plugin, group, keys[integration_id])] if r is not None]
        if unrouted:
            context.log.warning("%d %s events name an account no integration knows; not applied (crm-pipelines webhooks unrouted)", unrouted, plugin.title)
        if not requests:
            return dg.SensorResult(skip_reason=f"{len(rows)} events name no synced record of a known integration", cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor
