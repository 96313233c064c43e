"""The run queue of this project: Dagster's queued coordinator, with the tags every run must carry.

A run launched from an asset page (``__ASSET_JOB``: a materialization or a backfill of some
integrations) carries none of the tags the schedule, the sensors and the CLI set. Run limits per
provider and priorities depend on them, so the coordinator adds them when the run is queued:

* ``crm/provider`` (and ``crm/integration`` for a one-partition run), read from the run's assets;
* ``dagster/priority``: webhook-triggered runs first (10), then the schedule's (5), manual runs
  (0), and backfills and exports last (-5), unless the run already says otherwise.

Configure it in ``dagster.yaml`` in place of ``QueuedRunCoordinator`` (same settings).
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster._core.run_coordinator.base import SubmitRunContext
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun

from crm_pipelines.providers.registry import PROVIDERS

PRIORITY = {"webhook": 10, "schedule": 5, "manual": 0, "backfill": -5, "export": -5}


def crm_tags(run: DagsterRun) -> dict[str, str]:
    """The tags a run of this project's assets should carry that it does not carry yet."""
    tags: Mapping[str, str] = run.tags
    added: dict[str, str] = {}
    providers = {key.path[0] for key in (run.asset_selection or ()) if key.path and key.path[0] in PROVIDERS}
    if "crm/provider" not in tags and len(providers) == 1:
        added["crm/provider"] = next(iter(providers))
    partition = tags.get("dagster/partition")
    if "crm/integration" not in tags and partition and (providers or tags.get("crm/provider")):
        added["crm/integration"] = partition
    exports = any(key.path[-1].endswith("_export") for key in (run.asset_selection or ()) if key.path)
    if "dagster/priority" not in tags:
        if tags.get("dagster/backfill"):
            kind = "backfill"
        elif tags.get("crm/trigger") in ("webhook", "schedule"):
            kind = tags["crm/trigger"]
        elif exports or tags.get("crm/direction") == "export":
            kind = "export"
        else:
            kind = "manual"
        added["dagster/priority"] = str(PRIORITY[kind])
    return added


class CrmRunCoordinator(QueuedRunCoordinator):
    """:class:`QueuedRunCoordinator` that tags each run with its provider, integration and priority."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        added = crm_tags(run)
        if added:
            self._instance.add_run_tags(run.run_id, added)
            run = run.with_tags({**run.tags, **added})
            context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)


__all__ = ["CrmRunCoordinator", "crm_tags"]
