"""'Job finished' notifications: to the alert channels for jobs with ``notify``, and a POST of the
job to its ``callback_url`` (retried a few times; the body is the job as ``GET /api/jobs/{id}``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

from crm_pipelines.alerts.notify import Alert, Channels, send
from crm_pipelines.jobs.model import Job

log = logging.getLogger(__name__)


def job_alert(job: Job) -> Alert:
    target = f"{job.provider}/{job.integration_key or 'all'}" + (f"/{job.entity}" if job.entity else "")
    figures = f"{job.processed} processed, {job.created} created, {job.updated} updated, {job.rejected} rejected"
    details = figures + (f"\nerror: {job.error}" if job.error else "") + (f"\nDagster run {job.run_id}" if job.run_id else "")
    return Alert(rule="job_finished", title=f"job {job.id} ({job.kind} {target}) {job.state}", details=details)


@dataclass
class JobNotifier:
    """Delivers a finished job's notification; failures are logged, never raised."""

    channels: Channels
    attempts: int = 3
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> JobNotifier:
        return cls(Channels.from_env())

    def __call__(self, job: Job) -> None:
        if job.notify:
            send(job_alert(job), self.channels, timeout_s=self.timeout_s)
        if job.callback_url:
            self.callback(job)

    def callback(self, job: Job) -> bool:
        for attempt in range(self.attempts):
            try:
                response = httpx.post(job.callback_url, json=job.to_dict(), timeout=self.timeout_s)
                if response.status_code < 300:
                    return True
                log.warning("job %s: callback answered HTTP %d", job.id, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("job %s: callback unreachable (%s)", job.id, type(exc).__name__)
            time.sleep(min(2**attempt, 10))
        return False


__all__ = ["JobNotifier", "job_alert"]
