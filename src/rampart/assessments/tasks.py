"""Celery tasks: thin wrappers that run the service's steps through the job runner."""

from __future__ import annotations

from celery import Task, shared_task

from rampart.assessments import service
from rampart.kit.jobs.runner import run_job


def _trace_id(task: Task) -> str | None:
    request = task.request
    return getattr(request, "trace_id", None) or (request.headers or {}).get("trace_id")


@shared_task(name=service.SCORE_TASK, bind=True)
def score_assessment(self: Task, job_id: str, tenant_id: str) -> str:
    return run_job(
        job_id,
        tenant_id,
        service.score_step,
        trace_id=_trace_id(self),
        on_failure=service.mark_failed,
    )


@shared_task(name=service.ROADMAP_TASK, bind=True)
def generate_roadmap(self: Task, job_id: str, tenant_id: str) -> str:
    return run_job(
        job_id,
        tenant_id,
        service.roadmap_step,
        trace_id=_trace_id(self),
        on_failure=service.mark_failed,
    )
