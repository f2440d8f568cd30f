"""Run the pipeline's jobs in-process (the real runner, real database) for integration tests."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from rampart.assessments import service
from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.jobs import loop
from rampart.kit.jobs.enqueue import enqueue
from rampart.kit.jobs.runner import run_job
from tests.support.db import app_session

STEPS = {
    "score_assessment": (service.SCORE_JOB, service.score_step, service.mark_failed),
    "generate_roadmap": (service.ROADMAP_JOB, service.roadmap_step, service.mark_failed),
}


def jobs(tenant_id: str, *, types: tuple[str, ...] | None = tuple(STEPS)) -> list:
    """The tenant's jobs of `types` (default: the pipeline's, not the mail jobs every
    signup makes; None: all), oldest first."""
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        found = session.execute(
            text("SELECT id, type, status, attempts FROM jobs ORDER BY created_at")
        ).all()
    return [job for job in found if types is None or job.type in types]


def run(job_id: str, job_type: str, tenant_id: str) -> str:
    """One delivery of the job, on the job loop as a worker runs it (kit/jobs/loop.py)."""
    task, step, on_failure = STEPS[job_type]
    return loop.run(run_job(job_id, tenant_id, step, task=task, on_failure=on_failure))


def run_work(job_id: str, tenant_id: str, work, **options) -> str:
    """`run_job` with any work (an async function of the run), on the job loop."""
    return loop.run(run_job(job_id, tenant_id, work, **options))


def run_pending(tenant_id: str) -> None:
    """Run every pending job of the tenant once (a score job enqueues the roadmap job)."""
    for job in jobs(tenant_id):
        if job.status == "pending":
            run(str(job.id), job.type, tenant_id)


def enqueue_poison_job(tenant_id: str) -> str:
    """A score job whose payload can never work (not a UUID): a definitive failure, so the
    runner quarantines it after one try."""

    async def enqueue_it() -> uuid.UUID:
        async with transaction(Claims(tenant_id=tenant_id, role="service")) as tx:
            return await enqueue(
                tx,
                tenant_id=uuid.UUID(tenant_id),
                job_type=service.SCORE_JOB,
                idempotency_key=f"poison:{uuid.uuid4()}",
                payload={"assessment_id": "not-a-uuid"},
            )

    return str(loop.run(enqueue_it()))
