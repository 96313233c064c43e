"""``crm-pipelines serve`` and ``crm-pipelines jobs list|show|cancel|watch``.

``serve`` runs the webhook receiver and the jobs API in one process. The ``jobs`` commands read
the job rows from the database (``watch`` draws a progress bar from the row, as an application
polling the API would); ``cancel`` goes through the API when it answers, else through the
Dagster instance of ``DAGSTER_HOME``. ``sync``/``export --async`` start their job through the API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from crm_pipelines.cli.tables import print_table

API_URL_ENV = "CRM_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8787"


def api_request(method: str, path: str, body: dict | None = None, *, timeout_s: float = 5.0) -> dict | None:
    """Call the jobs API (``CRM_API_URL``, token ``CRM_API_TOKEN``); None when nothing answers there."""
    import httpx

    from crm_pipelines.jobs.api import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV)
    if not token:
        return None
    url = (os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/") + path
    try:
        response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)
    except httpx.TransportError:
        return None
    if response.status_code >= 400:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text
        raise RuntimeError(f"the jobs API answered {response.status_code}: {message}")
    return response.json()


def _jobs(args: argparse.Namespace):
    from crm_pipelines.jobs.store import JobStore
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open(args.database)
    return store, JobStore(store.engine)


def _refreshed(store, job):
    """The job as its Dagster run stands, when ``DAGSTER_HOME`` names the instance."""
    if job.finished or not os.environ.get("DAGSTER_HOME") or not job.run_id:
        return job
    import dagster as dg

    from crm_pipelines.jobs.service import JobService

    with dg.DagsterInstance.get() as instance:
        return JobService(store, instance, None).refresh(job)


def _row(job) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "state": job.state, "integration": f"{job.provider}/{job.integration_key or '*'}",
        "entity": job.entity or "all", "percent": "" if job.percent is None else f"{job.percent:.0f}%",
        "processed": job.processed, "total": "" if job.total is None else f"{'~' if job.total_is_estimate else ''}{job.total}",
        "created": job.created, "updated": job.updated, "rejected": job.rejected, "trigger": job.trigger,
        "started": job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "",
        "error": (job.error or "")[:60],
    }


def bar_line(job, width: int = 30) -> str:
    """One line of progress for a job, from its row."""
    share = (job.percent or 0.0) / 100
    filled = int(width * min(share, 1.0))
    total = "" if job.total is None else f"/{'~' if job.total_is_estimate else ''}{job.total:,}"
    eta = f" ETA {job.eta_s:,.0f}s" if job.eta_s and not job.finished else ""
    return (f"job {job.id} {job.kind} {job.provider}/{job.integration_key or '*'} [{'#' * filled}{'.' * (width - filled)}] "
            f"{job.percent or 0:.0f}% {job.processed:,}{total}{eta} {job.state}")


def cmd_jobs(args: argparse.Namespace) -> int:
    store, jobs = _jobs(args)
    try:
        if args.action == "list":
            rows = [_refreshed(store, job) for job in jobs.list(state=args.state, provider=args.provider, limit=args.limit)]
            if args.json:
                print(json.dumps([job.to_dict() for job in rows], indent=2))
            elif rows:
                print_table([_row(job) for job in rows], ["id", "kind", "state", "integration", "entity", "percent", "processed", "total",
                                                         "created", "updated", "rejected", "trigger", "started", "error"])
            else:
                print("no jobs")
            return 0
        if args.id is None:
            raise ValueError(f"jobs {args.action} needs a job id")
        if args.action == "show":
            print(json.dumps(_refreshed(store, jobs.get(args.id)).to_dict(), indent=2))
            return 0
        if args.action == "cancel":
            return _cancel(store, jobs, args.id)
        return _watch(store, jobs, args.id, every_s=args.every)
    finally:
        store.dispose()


def _cancel(store, jobs, job_id: int) -> int:
    job = api_request("POST", f"/api/jobs/{job_id}/cancel")
    if job is None:
        import dagster as dg

        from crm_pipelines.jobs.launcher import DagsterLauncher
        from crm_pipelines.jobs.service import JobService

        with dg.DagsterInstance.get() as instance:
            job = JobService(store, instance, DagsterLauncher(instance)).cancel(job_id).to_dict()
    print(f"job {job_id}: {job['state']}" + (" (cancel requested; its run is stopping)" if job["state"] not in ("cancelled", "succeeded", "failed") else ""))
    return 0


def _watch(store, jobs, job_id: int, *, every_s: float) -> int:
    """Redraw the job's bar from its row until it finishes; the exit code says how it ended."""
    tty = sys.stdout.isatty()
    last = ""
    while True:
        job = _refreshed(store, jobs.get(job_id))
        line = bar_line(job)
        if line != last:
            sys.stdout.write(("\r" + line.ljust(110)) if tty else line + "\n")
            sys.stdout.flush()
            last = line
        if job.finished:
            if tty:
                sys.stdout.write("\n")
            if job.error:
                print(f"error: {job.error}")
            return 0 if job.state == "succeeded" else 1
        time.sleep(every_s)


def cmd_serve(args: argparse.Namespace) -> int:
    import gc
    import logging

    import uvicorn

    from crm_pipelines.cli.demo import _dagster_home
    from crm_pipelines.jobs.api import TOKEN_ENV
    from crm_pipelines.webhooks.app import app_from_env

    _dagster_home()
    if not os.environ.get(TOKEN_ENV):
        logging.getLogger(__name__).warning("the jobs API answers 503 until %s is set", TOKEN_ENV)
    if args.database:
        os.environ["CRM_DATABASE_URL"] = args.database
    app = app_from_env(with_jobs=True, with_applier=not args.no_applier)
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    return 0


def add_parsers(sub, common) -> None:
    serve = sub.add_parser("serve", help="the webhook receiver, the webhook applier and the jobs API (/api/jobs, token in CRM_API_TOKEN) in one service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--no-applier", action="store_true", help="leave webhook events to the Dagster sensors (about 20 s) instead of applying them as they arrive")
    common(serve)
    serve.set_defaults(func=cmd_serve)

    jobs = sub.add_parser("jobs", help="syncs, exports and backfills as jobs: list, show, cancel, watch (a progress bar)")
    jobs.add_argument("action", choices=("list", "show", "cancel", "watch"))
    jobs.add_argument("id", nargs="?", type=int, help="job id (show, cancel, watch)")
    jobs.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    jobs.add_argument("--provider")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--every", type=float, default=1.0, help="seconds between two reads of the job (watch)")
    jobs.add_argument("--json", action="store_true")
    common(jobs)
    jobs.set_defaults(func=cmd_jobs)


__all__ = ["add_parsers", "api_request", "bar_line"]
