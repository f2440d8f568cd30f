"""Declare a job task: a Celery task that runs a domain step through the job runner.

Transient errors are retried by Celery with exponential backoff and full jitter, bounded by
JOB_MAX_ATTEMPTS deliveries (the runner quarantines after that). A task that still raises
(the database was down even for the quarantine write) is not acknowledged: Redis hands it
out again after the visibility timeout, so accepted work is never dropped.
"""

from __future__ import annotations

import random

from celery import Task, shared_task

from rampart.config import get_settings
from rampart.kit.jobs.runner import TRANSIENT_ERRORS, OnFailure, Work, run_job


def _trace_id(task: Task) -> str | None:
    request = task.request
    return getattr(request, "trace_id", None) or (request.headers or {}).get("trace_id")


def retry_delay(retries: int) -> float:
    """Exponential backoff with jitter: base·2^n capped, then scaled by 0.5–1.0."""
    settings = get_settings()
    ceiling = min(settings.job_retry_max_seconds, settings.job_retry_base_seconds * 2**retries)
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security


def job_task(name: str, work: Work, on_failure: OnFailure | None = None) -> Task:
    @shared_task(name=name, bind=True, max_retries=None)
    def task(self: Task, job_id: str, tenant_id: str) -> str:
        try:
            return run_job(
                job_id,
                tenant_id,
                work,
                task=name,
                trace_id=_trace_id(self),
                on_failure=on_failure,
            )
        except TRANSIENT_ERRORS as exc:
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    return task
