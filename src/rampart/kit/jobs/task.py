"""Declare a job task: a Celery task that runs a domain step through the job runner.

Infrastructure errors (database down or saturated) retry with exponential backoff and
jitter, so accepted work waits for the database instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Task, shared_task

from rampart.kit.jobs.runner import INFRASTRUCTURE_ERRORS, JobRun, run_job


def _trace_id(task: Task) -> str | None:
    request = task.request
    return getattr(request, "trace_id", None) or (request.headers or {}).get("trace_id")


def job_task(
    name: str,
    work: Callable[[JobRun], None],
    on_failure: Callable[[JobRun, BaseException], None] | None = None,
) -> Task:
    @shared_task(
        name=name,
        bind=True,
        autoretry_for=INFRASTRUCTURE_ERRORS,
        retry_backoff=2,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=30,
    )
    def task(self: Task, job_id: str, tenant_id: str) -> str:
        return run_job(job_id, tenant_id, work, trace_id=_trace_id(self), on_failure=on_failure)

    return task
