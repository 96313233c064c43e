"""Starting and cancelling a job's Dagster run through the instance (``DAGSTER_HOME``).

The code location is loaded once, when the service starts (Dagster runs it in a code server
process); each launch then costs a run record and a call to that server, well under a second.
The run goes through the instance's run coordinator: queued for the daemon in production
(``dagster.yaml``), launched at once with the default coordinator.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from crm_pipelines.jobs.model import Job

log = logging.getLogger(__name__)

LOCATION_NAME = "crm_pipelines"
DEFINITIONS_MODULE = "crm_pipelines.definitions"

#: Dagster run statuses as job states (a run still waiting for the daemon is a queued job).
RUN_STATES = {
    "NOT_STARTED": "queued", "QUEUED": "queued", "STARTING": "running", "STARTED": "running", "CANCELING": "running",
    "SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "cancelled",
}


class DagsterLauncher:
    """Creates and submits runs of this project's jobs, cancels them and reads their status."""

    def __init__(self, instance: Any, *, workspace_file: str | None = None) -> None:
        self.instance = instance
        self.workspace_file = workspace_file or os.environ.get("CRM_DAGSTER_WORKSPACE") or None
        self._context: Any = None
        self._lock = threading.Lock()

    def _workspace(self) -> Any:
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget, WorkspaceFileTarget

        with self._lock:
            if self._context is None:
                target = (WorkspaceFileTarget(paths=[self.workspace_file]) if self.workspace_file
                          else ModuleTarget(DEFINITIONS_MODULE, None, None, LOCATION_NAME))
                self._context = WorkspaceProcessContext(self.instance, target)
            return self._context

    def warm_up(self) -> None:
        """Load the code location now (the first launch would otherwise wait for it)."""
        self._code_location(self._workspace().create_request_context())

    def _code_location(self, request: Any) -> Any:
        names = request.code_location_names
        name = LOCATION_NAME if LOCATION_NAME in names else names[0]
        error = request.get_code_location_error(name)
        if error is not None:
            raise RuntimeError(f"the Dagster code location {name} did not load: {error.message.strip().splitlines()[-1]}")
        return request.get_code_location(name)

    def launch(self, job_name: str, *, tags: Mapping[str, str], run_config: Mapping[str, Any] | None = None,
               asset_keys: list[list[str]] | None = None, check_names: tuple[str, ...] = ()) -> str:
        """Create the run of ``job_name`` and submit it; its run id. With ``asset_keys``, only
        those assets and their checks named ``check_names`` (not every check of the asset)."""
        import dagster as dg
        from dagster._core.definitions.selector import JobSubsetSelector

        request = self._workspace().create_request_context()
        location = self._code_location(request)
        repository = next(iter(location.get_repositories().values()))
        selector = JobSubsetSelector(
            location_name=location.name, repository_name=repository.name, job_name=job_name, op_selection=None,
            asset_selection=[dg.AssetKey(k) for k in asset_keys] if asset_keys else None,
            asset_check_selection=[dg.AssetCheckKey(dg.AssetKey(k), name) for k in asset_keys for name in check_names] if asset_keys else None,
        )
        remote_job = location.get_job(selector)
        run_config = dict(run_config or {})
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=self.instance)
        snapshot = plan.execution_plan_snapshot
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config, resolved_op_selection=remote_job.resolved_op_selection,
            step_keys_to_execute=snapshot.step_keys_to_execute, op_selection=None, status=None, root_run_id=None, parent_run_id=None,
            tags={**remote_job.tags, **tags}, job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(), asset_selection=frozenset(selector.asset_selection) if selector.asset_selection else None,
            asset_check_selection=selector.asset_check_selection, asset_graph=repository.asset_graph,
        )
        self.instance.submit_run(run.run_id, request)
        return run.run_id

    def cancel(self, run_id: str) -> bool:
        """Ask the run to stop (a queued run leaves the queue; a started one is terminated).

        A code server that does not answer the termination within Dagster's 60 s (a busy machine)
        is logged, not raised: the run is already marked CANCELING, as the UI shows it, and the job
        keeps its cancel request, so the caller gets the job as it stands instead of an error. The
        run's steps read that status between pages and stop by themselves.
        Returns whether the termination was delivered.
        """
        from dagster._core.errors import DagsterUserCodeUnreachableError

        try:
            return bool(self.instance.run_coordinator.cancel_run(run_id))
        except DagsterUserCodeUnreachableError as exc:
            log.warning("run %s: the code server did not take its termination (%s); its steps stop at their next progress write", run_id, exc)
            return False

    def close(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.__exit__(None, None, None)
                self._context = None


def run_outcome(instance: Any, job: Job) -> tuple[str, str | None] | None:
    """The state the job's run is in, and for a failed run its first step failure (None: no run yet)."""
    if not job.run_id:
        return None
    run = instance.get_run_by_id(job.run_id)
    if run is None:
        return None
    state = RUN_STATES.get(run.status.value, "running")
    error = None
    if state == "failed" and not job.error:
        error = _failure_message(instance, job.run_id)
    return state, error


def _failure_message(instance: Any, run_id: str) -> str:
    from dagster import DagsterEventType

    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if data is not None and getattr(data, "user_failure_data", None) and data.user_failure_data.description:
            return data.user_failure_data.description
        if data is not None and data.error:
            return data.error.message.strip()
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records:
        return record.event_log_entry.message or "the run failed"
    return "the run failed"


__all__ = ["DagsterLauncher", "RUN_STATES", "run_outcome"]
