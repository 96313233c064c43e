"""The job record of a Dagster run, kept by its steps.

Whoever launched the run (the API, the CLI, the schedule, a sensor, the Dagster UI), its first
step finds or makes the run's row in ``sync_jobs`` from the run's tags, marks it running, writes
its progress every few seconds and its figures when an entity is done; a step that fails writes
the provider's message as the job's error. A job whose entities are all done has succeeded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg

from dagster._core.errors import DagsterError, DagsterExecutionInterruptedError

from crm_pipelines.core.errors import ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.integrations.model import Integration
from crm_pipelines.jobs.progress import JobProgress
from crm_pipelines.jobs.store import JobStore

#: Run tag naming the job row the API or the CLI created before launching the run.
JOB_ID_TAG = "crm/job_id"


def run_entities(context: Any, provider: str, entities: Sequence[str], suffix: str = "") -> list[str]:
    """The entities of ``provider`` whose assets this run materializes (all of them for a whole job)."""
    selected = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    keys = {tuple(k.path) for k in selected}
    chosen = [e for e in entities if (provider, f"{e}{suffix}") in keys]
    return chosen or list(entities)


def job_kind(context: Any, config: Any = None) -> str:
    if getattr(config, "window_start", None) or context.run.tags.get("dagster/backfill"):
        return "backfill"
    return "sync"


def step_progress(context: Any, db: Any, *, kind: str, integration: Integration | None, provider: str, entities: Sequence[str],
                  entity: str | None = None, params: dict | None = None) -> JobProgress:
    """The run's job (made from its tags when nobody made it first), marked running, and its progress writer."""
    jobs = JobStore(db.store().engine)
    job = jobs.for_run(context.run.run_id, dict(context.run.tags), kind=kind, provider=provider, integration=integration,
                       entity=entity if len(entities) == 1 else None, params=params)
    return JobProgress(jobs, job, entities, interrupt=lambda: interrupt_if_cancelled(context))


def finish_if_done(progress: JobProgress) -> None:
    """Every entity of the job is done: it has succeeded."""
    if all(state.get("done") for state in progress.entities.values()):
        progress.jobs.finish(progress.job.id, "succeeded")


def job_failure(progress: JobProgress | None, failure: dg.Failure) -> dg.Failure:
    """Keep the step's failure (the provider's message) as the job's error, and hand the failure back.

    A failure that will not be retried ends the job; a retried one leaves it running with its error
    shown until the retry goes through or fails for good.
    """
    if progress is not None:
        message = failure.description or str(failure)
        if failure.allow_retries is False:
            figures = {k: v for k, v in progress.figures().items() if k not in ("percent", "eta_s")}
            progress.jobs.finish(progress.job.id, "failed", error=message, **figures)
        else:
            progress.jobs.update(progress.job.id, error=message)
    return failure


@contextlib.contextmanager
def job_errors(progress: JobProgress | None) -> Iterator[None]:
    """Whatever fails inside leaves its message on the job (see :func:`job_failure`)."""
    try:
        yield
    except dg.Failure as exc:
        raise job_failure(progress, exc)
    except ProviderError as exc:
        raise job_failure(progress, dg.Failure(description=str(exc), allow_retries=isinstance(exc, RetryableError) and not isinstance(exc, QuotaExhausted))) from exc
    except Exception as exc:
        if progress is not None:
            progress.jobs.update(progress.job.id, error=f"{type(exc).__name__}: {exc}"[:4000])
        raise


class RunCancelled(DagsterExecutionInterruptedError, DagsterError):
    """The run was cancelled while this step worked.

    Dagster turns an interrupt inside a step with a retry policy into a retry (meant for a
    preempted worker), so a cancelled sync would start again after the retry delay. As a
    ``DagsterError`` this passes the retry policy; as an interrupt it then ends the run CANCELED.
    """


@contextlib.contextmanager
def stop_when_cancelled(context: Any) -> Iterator[None]:
    """Let a cancellation interrupt the step for good (see :class:`RunCancelled`); the interrupt
    arrives between two statements, and the batch being written is rolled back with its transaction."""
    try:
        yield
    except DagsterExecutionInterruptedError:
        if run_is_cancelled(context):
            raise RunCancelled("the run was cancelled") from None
        raise


def run_is_cancelled(context: Any) -> bool:
    """Whether the step's run is being cancelled (CANCELING) or was (CANCELED)."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


def interrupt_if_cancelled(context: Any) -> None:
    """Stop the step here, between two pages, when its run is being cancelled.

    Dagster delivers a termination through the run's code server; a server too busy to take it
    leaves the run CANCELING while the step reads on to the end. Reading the run's status at each
    progress write (every few seconds) stops the step anyway, at a page boundary. A run storage
    that does not answer leaves the step working: the next write asks again."""
    try:
        cancelled = run_is_cancelled(context)
    except Exception as exc:  # noqa: BLE001 - a missed check must not fail a sync
        context.log.warning(f"could not read the run's status ({type(exc).__name__}); going on")
        return
    if cancelled:
        context.log.info("the run is being cancelled: this step stops here, its work so far kept")
        raise RunCancelled("the run was cancelled")


#: Providers whose full read (HubSpot's list endpoint) reports no total, while one call gives it:
#: a full read asks for it so the job shows a percent. Salesforce's query and the search paths
#: report their total with the first page (``ReadProgress.expected``); the others are estimated
#: from the records already linked.
ONE_CALL_TOTALS = frozenset({"hubspot"})


def page_reporter(progress: JobProgress, reader: Any, store: Any, integration: Integration, entity: str, full: bool) -> Callable[[int], None]:
    """The callback the importer calls after each page: count read so far, and the reader's total
    (``ReadProgress.expected``) when it has one, else an estimate for a full read."""
    estimate: int | None = None
    if full:
        try:
            estimate = reader.total(entity) if integration.provider in ONE_CALL_TOTALS else store.linked_count(integration, entity) or None
        except Exception:  # a count is a nicety: the read itself reports any real trouble
            estimate = None

    def report(fetched: int) -> None:
        expected = getattr(getattr(reader, "progress", None), "expected", None)
        if expected:
            progress.page(entity, fetched, expected)
        else:
            progress.page(entity, fetched, estimate, estimate=True)

    return report


__all__ = ["JOB_ID_TAG", "finish_if_done", "interrupt_if_cancelled", "job_errors", "job_failure", "job_kind", "page_reporter", "run_entities", "step_progress", "stop_when_cancelled"]
