"""What the API and the CLI do with jobs: start one, read it, list them, cancel one.

A start writes the job row (``queued``) and answers at once; the run is created and submitted
on a worker thread, so the caller never waits on Dagster. A watcher thread keeps unfinished jobs
in step with their runs (a run that ends CANCELED, or fails before its step could say why) and
hands finished jobs that asked for it to the notifier.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from crm_pipelines.jobs.launcher import run_outcome
from crm_pipelines.jobs.model import FINISHED, Job
from crm_pipelines.jobs.store import JobStore
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.check_names import IMPORT_CHECKS
from crm_pipelines.sync.runner import provider_plugin

log = logging.getLogger(__name__)



@dataclass
class JobRequest:
    """A job an application asks for (``entity`` None: every entity of the provider)."""

    kind: str
    provider: str
    store: str | None = None
    integration: str | None = None
    entity: str | None = None
    full: bool = False
    window_start: str | None = None
    window_end: str | None = None
    batch_size: int | None = None
    only_new: bool = False
    dry_run: bool = False
    ids: list[str] = field(default_factory=list)
    callback_url: str | None = None
    notify: bool = False


@dataclass
class LaunchPlan:
    """The Dagster job, assets, run config and tags a request becomes."""

    job_name: str
    asset_keys: list[list[str]] | None
    run_config: dict[str, Any]
    tags: dict[str, str]
    check_names: tuple[str, ...] = ()


def launch_plan(request: JobRequest, job: Job, trigger: str) -> LaunchPlan:
    found = provider_plugin(request.provider, request.entity)
    entities = [request.entity] if request.entity else list(found.entities)
    tags = {"crm/job_id": str(job.id), "crm/trigger": trigger, "crm/provider": found.name, "crm/integration": job.integration_key or "default"}
    if request.kind == "sync_ids":
        config = {"integration": job.integration_key, "ids": {request.entity: list(request.ids)}}
        return LaunchPlan(f"{found.name}_sync_ids", None, {"ops": {f"{found.name}__sync_ids": {"config": config}}}, tags)
    tags["dagster/partition"] = job.integration_key or "default"
    if request.kind == "export":
        config = {"only_new": request.only_new, "dry_run": request.dry_run, **({"batch_size": request.batch_size} if request.batch_size else {})}
        keys = [[found.name, f"{e}_export"] for e in entities]
        ops = {f"{found.name}__{e}_export": {"config": config} for e in entities}
        return LaunchPlan(f"{found.name}_export", keys if request.entity else None, {"ops": ops}, {**tags, "crm/direction": "export"})
    config = {k: v for k, v in (("full", request.full), ("window_start", request.window_start), ("window_end", request.window_end)) if v}
    ops = {f"{found.name}__{e}": {"config": config} for e in entities} if config else {}
    return LaunchPlan(f"{found.name}_import", [[found.name, e] for e in entities] if request.entity else None,
                      {"ops": ops} if ops else {}, tags, IMPORT_CHECKS)


class JobService:
    """Jobs over one database and one Dagster instance."""

    def __init__(self, store: LocalStore, instance: Any, launcher: Any, *, notifier: Callable[[Job], None] | None = None,
                 watch_every_s: float = 1.0) -> None:
        self.store = store
        self.jobs = JobStore(store.engine)
        self.instance = instance
        self.launcher = launcher
        self.notifier = notifier
        self.watch_every_s = watch_every_s
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="job-launch")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- asking for jobs

    def start(self, request: JobRequest, *, trigger: str = "api") -> Job:
        """Write the job (queued) and launch its run in the background; returns at once."""
        found = provider_plugin(request.provider, request.entity)
        if request.kind == "sync" and (request.window_start or request.window_end):
            request.kind = "backfill"
        if request.kind == "sync_ids" and (not request.entity or not request.ids):
            raise ValueError("a sync by id needs an entity and at least one id")
        integration = self.store.integrations.resolve_target(found.name, store=request.store, key=request.integration)
        if not integration.active:
            raise ValueError(f"{integration.label} is disabled; enable it with: crm-pipelines integrations enable {found.name} {integration.key}")
        params = {k: v for k, v in (("full", request.full), ("window_start", request.window_start), ("window_end", request.window_end),
                                     ("batch_size", request.batch_size), ("only_new", request.only_new), ("dry_run", request.dry_run),
                                     ("ids", request.ids)) if v}
        job = self.jobs.create(request.kind, found.name, integration, entity=request.entity, trigger=trigger, params=params,
                               callback_url=request.callback_url, notify=request.notify)
        plan = launch_plan(request, job, trigger)
        self._pool.submit(self._launch, job.id, plan)
        return job

    def _launch(self, job_id: int, plan: LaunchPlan) -> None:
        try:
            if self.jobs.get(job_id).cancel_requested:
                self.jobs.finish(job_id, "cancelled")
                return
            run_id = self.launcher.launch(plan.job_name, tags=plan.tags, run_config=plan.run_config, asset_keys=plan.asset_keys,
                                          check_names=plan.check_names)
            self.jobs.attach_run(job_id, run_id)
        except Exception as exc:
            log.exception("job %s: could not launch %s", job_id, plan.job_name)
            self.jobs.finish(job_id, "failed", error=f"could not launch the run: {exc}")

    def cancel(self, job_id: int) -> Job:
        """Stop a job: its run leaves the queue or is terminated; a finished job stays as it is."""
        job = self.jobs.request_cancel(job_id)
        if job.finished:
            return job
        if job.run_id:
            self.launcher.cancel(job.run_id)
        return self.refresh(self.jobs.get(job_id))

    # --- reading jobs

    def get(self, job_id: int) -> Job:
        return self.refresh(self.jobs.get(job_id))

    def list(self, **filters: Any) -> list[Job]:
        return [self.refresh(job) for job in self.jobs.list(**filters)]

    def refresh(self, job: Job) -> Job:
        """The job as its run stands (the run's final status wins over a row a killed run left behind)."""
        if job.finished or self.instance is None:
            return job
        outcome = run_outcome(self.instance, job)
        if outcome is None:
            return job
        state, error = outcome
        if state in FINISHED:
            self.jobs.finish(job.id, state, error=error)
        elif state == "running" and job.state == "queued":
            self.jobs.update(job.id, state="running")
        else:
            return job
        return self.jobs.get(job.id)

    # --- the service's threads

    def start_threads(self) -> None:
        """Load the code location in the background and start watching jobs (the app's start-up)."""
        warm_up = getattr(self.launcher, "warm_up", None)
        if warm_up is not None:
            self._pool.submit(warm_up)
        self.start_watching()

    def start_watching(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="job-watcher", daemon=True)
            self._watcher.start()

    def watch_once(self) -> tuple[int, int]:
        """Settle unfinished jobs whose runs ended and notify finished ones; (settled, notified)."""
        settled = notified = 0
        for state in ("queued", "running"):
            for job in self.jobs.list(state=state, limit=200):
                settled += self.refresh(job).finished
        if self.notifier is not None:
            for job in self.jobs.to_notify():
                if self.jobs.mark_notified(job.id):
                    notified += 1
                    try:
                        self.notifier(job)
                    except Exception:
                        log.exception("job %s: notification failed", job.id)
        return settled, notified

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_every_s):
            try:
                self.watch_once()
            except Exception:
                log.exception("job watcher")

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        close = getattr(self.launcher, "close", None)
        if close is not None:
            close()


def service_from_env(engine: Any, instance: Any = None) -> JobService:
    """Jobs on ``engine``'s database and the Dagster instance of ``DAGSTER_HOME``, with notifications
    to the alert channels configured in the environment and to each job's callback URL."""
    import dagster as dg

    from crm_pipelines.jobs.launcher import DagsterLauncher
    from crm_pipelines.jobs.notify import JobNotifier

    instance = instance or dg.DagsterInstance.get()
    return JobService(LocalStore(engine), instance, DagsterLauncher(instance), notifier=JobNotifier.from_env())


__all__ = ["JobRequest", "JobService", "LaunchPlan", "launch_plan"]
