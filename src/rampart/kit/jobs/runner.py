"""Run one job idempotently and classify how it ended.

The job row tracks every delivery (`attempts`). A delivery of a job that already succeeded
or was quarantined does nothing. The domain work marks the job succeeded in its own final
transaction (`run.succeed(session)`), so "work written" and "job done" commit together.

How a job ends (docs/resilience.md):
- success → `succeeded`;
- transient error (database down or saturated, `TransientJobError`) with attempts left →
  re-raised, and the task schedules a retry with backoff and jitter;
- definitive error (anything else: bad payload, a bug, invalid output), or a transient one
  with no attempts left → `quarantined`, with a dead letter;
- more deliveries than `JOB_MAX_ATTEMPTS` (a message that keeps killing its worker never
  gets to raise) → quarantined at the start of the next delivery, before running.
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

from rampart.config import get_settings
from rampart.kit import context
from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.jobs.models import Job
from rampart.kit.jobs.quarantine import quarantine
from rampart.kit.logging import get_logger
from rampart.kit.metrics import JOB_DURATION, JOB_RETRIES
from rampart.kit.sentry import report_exception

log = get_logger("rampart.jobs")


class TransientJobError(Exception):
    """Raised by job work for a temporary failure worth retrying later."""


class DeliveryLimitExceeded(Exception):
    """The job was delivered more times than JOB_MAX_ATTEMPTS without finishing."""


TRANSIENT_ERRORS = (sa_exc.OperationalError, sa_exc.TimeoutError, TransientJobError)
Work = Callable[["JobRun"], None]
OnFailure = Callable[["JobRun", BaseException], None]


@dataclass
class JobRun:
    job_id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    task: str
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


def _locked_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()


def _start(job_id: uuid.UUID, claims: Claims, task: str) -> JobRun | None:
    """Count this delivery and return the run, or None when there is nothing to do."""
    with transaction(claims) as session:
        job = _locked_job(session, job_id)
        if job is None or job.status in ("succeeded", "quarantined"):
            return None
        job.status = "processing"
        job.attempts += 1
        job.started_at = func.now()
        session.flush()
        return JobRun(
            job_id=job.id,
            tenant_id=job.tenant_id,
            type=job.type,
            task=task,
            payload=dict(job.payload),
            trace_id=job.trace_id,
            attempts=job.attempts,
        )


def _quarantine(run: JobRun, exc: BaseException, tb: str | None, on_failure: OnFailure | None):
    with run.transaction() as session:
        job = _locked_job(session, run.job_id)
        if job is None or job.status in ("succeeded", "quarantined"):
            return
        quarantine(
            session,
            job=job,
            task=run.task,
            error_class=type(exc).__name__,
            error_message=str(exc) or type(exc).__name__,
            traceback=tb,
        )
    log.error("job_quarantined", error_type=type(exc).__name__, attempts=run.attempts)
    # The task returns normally after this, so Celery's Sentry integration never sees the
    # error: report it here, once, with the job's context (trace_id, tenant_id, job_id).
    report_exception(exc)
    if on_failure is not None:
        try:
            on_failure(run, exc)
        except Exception:  # the job is safely quarantined; the domain's note is best effort
            log.exception("job_on_failure_hook_failed")


def run_job(
    job_id: str,
    tenant_id: str,
    work: Work,
    *,
    task: str,
    trace_id: str | None = None,
    on_failure: OnFailure | None = None,
    span_id: str | None = None,
) -> str:
    """Run `work` for the job; return the outcome (raises only transient errors to retry)."""
    max_attempts = get_settings().job_max_attempts
    claims = Claims(tenant_id=str(uuid.UUID(tenant_id)), role="service")
    context.clear()  # a prefork child runs many tasks: start each with a clean context
    context.bind(trace_id=trace_id, span_id=span_id, tenant_id=claims.tenant_id, job_id=job_id)
    run = _start(uuid.UUID(job_id), claims, task)
    if run is None:
        log.info("job_skipped", reason="already succeeded, quarantined or unknown")
        return "skipped"
    context.bind(trace_id=trace_id or run.trace_id, job_type=run.type, attempt=run.attempts)
    if run.attempts > max_attempts:
        limit = DeliveryLimitExceeded(
            f"delivered {run.attempts} times without finishing (limit {max_attempts}): "
            "the job keeps crashing its worker or kept failing"
        )
        _quarantine(run, limit, None, on_failure)
        return "quarantined"
    log.info("job_started")
    t0 = time.perf_counter()
    try:
        work(run)
    except TRANSIENT_ERRORS as exc:
        if run.attempts < max_attempts:
            log.warning("job_transient_error", error_type=type(exc).__name__, error=str(exc)[:300])
            JOB_RETRIES.labels(run.type).inc()
            raise
        _quarantine(run, exc, traceback.format_exc(), on_failure)
        return "quarantined"
    except Exception as exc:  # definitive: retrying will not fix it
        _quarantine(run, exc, traceback.format_exc(), on_failure)
        return "quarantined"
    finally:
        JOB_DURATION.labels(run.type).observe(time.perf_counter() - t0)
    log.info("job_succeeded", duration_ms=round((time.perf_counter() - t0) * 1000, 1))
    return "succeeded"
