"""Run one job idempotently: the task gets a JobRun, the job row tracks every delivery.

A delivery of a job that already succeeded does nothing; `attempts` counts deliveries, so a
re-delivery after a crash is visible. The domain work marks the job succeeded in its own
final transaction (`run.succeed(session)`), so "work written" and "job done" commit together.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rampart.kit import context
from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.jobs.models import Job
from rampart.kit.logging import get_logger
from rampart.kit.metrics import JOB_DURATION

log = get_logger("rampart.jobs")

# The database is down or saturated: not the job's fault. The task is retried later
# (see kit/jobs/task.py) instead of failing the job.
INFRASTRUCTURE_ERRORS = (sa_exc.OperationalError, sa_exc.TimeoutError)


@dataclass
class JobRun:
    job_id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    trace_id: str | None
    attempts: int
    claims: Claims = field(init=False)

    def __post_init__(self) -> None:
        self.claims = Claims(tenant_id=str(self.tenant_id), role="service")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.claims) as session:
            yield session

    def succeed(self, session: Session) -> None:
        session.execute(
            update(Job)
            .where(Job.id == self.job_id)
            .values(status="succeeded", finished_at=func.now(), last_error=None)
        )


def _start(job_id: uuid.UUID, claims: Claims) -> JobRun | None:
    with transaction(claims) as session:
        job = session.execute(
            select(Job).where(Job.id == job_id).with_for_update()
        ).scalar_one_or_none()
        if job is None or job.status == "succeeded":
            return None
        job.status = "processing"
        job.attempts += 1
        job.started_at = func.now()
        session.flush()
        return JobRun(
            job_id=job.id,
            tenant_id=job.tenant_id,
            type=job.type,
            payload=dict(job.payload),
            trace_id=job.trace_id,
            attempts=job.attempts,
        )


def _fail(run: JobRun, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with run.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == run.job_id)
            .values(status="failed", last_error=error, finished_at=func.now())
        )


def run_job(
    job_id: str,
    tenant_id: str,
    work: Callable[[JobRun], None],
    *,
    trace_id: str | None = None,
    on_failure: Callable[[JobRun, BaseException], None] | None = None,
) -> str:
    """Run `work` for the job unless it already succeeded. Returns the outcome."""
    claims = Claims(tenant_id=str(uuid.UUID(tenant_id)), role="service")
    context.clear()  # a prefork child runs many tasks: start each with a clean context
    context.bind(trace_id=trace_id, tenant_id=claims.tenant_id, job_id=job_id)
    run = _start(uuid.UUID(job_id), claims)
    if run is None:
        log.info("job_skipped", reason="already succeeded or unknown")
        return "skipped"
    context.bind(trace_id=trace_id or run.trace_id, job_type=run.type, attempt=run.attempts)
    log.info("job_started")
    t0 = time.perf_counter()
    try:
        work(run)
    except INFRASTRUCTURE_ERRORS:
        log.warning("job_interrupted", reason="database unavailable; will retry")
        raise
    except Exception as exc:
        log.error("job_failed", error_type=type(exc).__name__, traceback=traceback.format_exc())
        _fail(run, exc)
        if on_failure is not None:
            on_failure(run, exc)
        return "failed"
    finally:
        JOB_DURATION.labels(run.type).observe(time.perf_counter() - t0)
    log.info("job_succeeded", duration_ms=round((time.perf_counter() - t0) * 1000, 1))
    return "succeeded"
