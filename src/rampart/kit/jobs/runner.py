"""Run one job idempotently and classify how it ended.

The job row tracks every delivery (`attempts`). A delivery of a job that already succeeded
or was quarantined does nothing. The domain work marks the job succeeded in its own final
transaction (`await run.succeed(tx)`), so "work written" and "job done" commit together.

The delivery is counted in the work's first transaction (`run.transaction()` hands that
one out first): one transaction fewer per job. Work should therefore open it before
anything slow (an LLM call), as the domain steps do: until then that transaction stays
open. If it does not commit, the delivery is counted again on its own before the runner
decides what to do, so a job that keeps failing there still reaches its delivery limit.

How a job ends (docs/resilience.md):
- success → `succeeded`;
- transient error (database unavailable or saturated, `TransientJobError`) with attempts
  left → re-raised, and the task schedules a retry with backoff and jitter;
- definitive error (anything else: bad payload, a bug, invalid output), or a transient one
  with no attempts left → `quarantined`, with a dead letter;
- more deliveries than `JOB_MAX_ATTEMPTS` (a message that keeps killing its worker never
  gets to raise) → quarantined at the start of the next delivery, before running;
- longer than TASK_TIME_LIMIT_SECONDS → cancelled, and handled as a transient error.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from rampart.kit import context
from rampart.kit.db.transaction import Claims, DatabaseUnavailable, Overloaded, Tx, transaction
from rampart.kit.jobs.quarantine import quarantine
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import JOB_DURATION, JOB_RETRIES
from rampart.kit.sentry import report_exception
from rampart.kit.settings import job_settings

log = get_logger("rampart.jobs")


class TransientJobError(Exception):
    """Raised by job work for a temporary failure worth retrying later."""


class DeliveryLimitExceeded(Exception):
    """The job was delivered more times than JOB_MAX_ATTEMPTS without finishing."""


class JobTimeLimitExceeded(TransientJobError):
    """The job ran longer than TASK_TIME_LIMIT_SECONDS and was cancelled."""


TRANSIENT_ERRORS = (DatabaseUnavailable, Overloaded, TransientJobError)
Work = Callable[["JobRun"], Awaitable[None]]
OnFailure = Callable[["JobRun", BaseException], Awaitable[None]]

# One statement: count the delivery unless the job is finished, and read what the run needs.
_START = """
UPDATE jobs SET status = 'processing', attempts = attempts + 1, started_at = now(),
                updated_at = now()
 WHERE id = $1 AND status NOT IN ('succeeded', 'quarantined')
RETURNING type, payload, trace_id, attempts
"""
_SUCCEED = """
UPDATE jobs SET status = 'succeeded', finished_at = now(), last_error = NULL, updated_at = now()
 WHERE id = $1
"""


@dataclass
class JobRun:
    job_id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    task: str
    payload: dict[str, Any]
    trace_id: str | None
    attempts: int
    claims: Claims
    _start: Tx | None = field(default=None, repr=False)
    delivery_committed: bool = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """The first call continues the transaction that counted this delivery."""
        started, self._start = self._start, None
        if started is None:
            async with transaction(self.claims) as tx:
                yield tx
            return
        try:
            yield started
        except BaseException:
            await started.rollback()
            raise
        await started.commit()
        self.delivery_committed = True

    async def succeed(self, tx: Tx) -> None:
        await tx.execute(_SUCCEED, self.job_id)

    async def close(self) -> None:
        """Commit the delivery count if the work never used its first transaction."""
        if self._start is not None:
            started, self._start = self._start, None
            await started.commit()
            self.delivery_committed = True


async def _start(job_id: uuid.UUID, claims: Claims, task: str) -> JobRun | None:
    """Count this delivery (uncommitted, see JobRun.transaction) and return the run, or
    None when there is nothing to do."""
    tx = Tx(claims)
    try:
        row = await tx.fetchrow(_START, job_id)
    except BaseException:
        await tx.rollback()
        raise
    if row is None:
        await tx.commit()
        return None
    return JobRun(
        job_id=job_id,
        tenant_id=uuid.UUID(claims.tenant_id),
        type=row["type"],
        task=task,
        payload=dict(row["payload"]),
        trace_id=row["trace_id"],
        attempts=row["attempts"],
        claims=claims,
        _start=tx,
    )


async def _count_delivery(run: JobRun) -> None:
    """The first transaction rolled back with the count in it: count the delivery alone."""
    async with transaction(run.claims) as tx:
        await tx.execute(
            "UPDATE jobs SET attempts = attempts + 1, started_at = now(), updated_at = now()"
            " WHERE id = $1",
            run.job_id,
        )
    run.delivery_committed = True


async def _quarantine(
    run: JobRun, exc: BaseException, tb: str | None, on_failure: OnFailure | None
) -> None:
    async with transaction(run.claims) as tx:
        status = await tx.fetchval("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", run.job_id)
        if status is None or status in ("succeeded", "quarantined"):
            return
        await quarantine(
            tx,
            job_id=run.job_id,
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
            await on_failure(run, exc)
        except Exception:  # the job is safely quarantined; the domain's note is best effort
            log.exception("job_on_failure_hook_failed")


async def run_job(
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
    settings = job_settings()
    max_attempts = settings.job_max_attempts
    claims = Claims(tenant_id=str(uuid.UUID(tenant_id)), role="service")
    context.clear()  # a worker runs many tasks: start each with a clean context
    context.bind(trace_id=trace_id, span_id=span_id, tenant_id=claims.tenant_id, job_id=job_id)
    run = await _start(uuid.UUID(job_id), claims, task)
    if run is None:
        log.info("job_skipped", reason="already succeeded, quarantined or unknown")
        return "skipped"
    context.bind(trace_id=trace_id or run.trace_id, job_type=run.type, attempt=run.attempts)
    if run.attempts > max_attempts:
        await run.close()
        limit = DeliveryLimitExceeded(
            f"delivered {run.attempts} times without finishing (limit {max_attempts}): "
            "the job keeps crashing its worker or kept failing"
        )
        await _quarantine(run, limit, None, on_failure)
        return "quarantined"
    log.info("job_started")
    t0 = time.perf_counter()
    try:
        try:
            async with asyncio.timeout(settings.task_time_limit_seconds):
                await work(run)
            await run.close()
        except TimeoutError as exc:
            raise JobTimeLimitExceeded(
                f"ran longer than TASK_TIME_LIMIT_SECONDS ({settings.task_time_limit_seconds} s)"
            ) from exc
    except TRANSIENT_ERRORS as exc:
        await _settle_delivery(run)
        if run.attempts < max_attempts:
            cause = exc.__cause__ or exc  # e.g. the driver's error behind DatabaseUnavailable
            log.warning(
                "job_transient_error", error_type=type(exc).__name__, error=str(cause)[:300]
            )
            JOB_RETRIES.labels(run.type).inc()
            raise
        await _quarantine(run, exc, traceback.format_exc(), on_failure)
        return "quarantined"
    except Exception as exc:  # definitive: retrying will not fix it
        await _settle_delivery(run)
        await _quarantine(run, exc, traceback.format_exc(), on_failure)
        return "quarantined"
    finally:
        JOB_DURATION.labels(run.type).observe(time.perf_counter() - t0)
    log.info("job_succeeded", duration_ms=round((time.perf_counter() - t0) * 1000, 1))
    return "succeeded"


async def _settle_delivery(run: JobRun) -> None:
    """After a failure: make sure the delivery is counted (best effort: the database may be
    what failed; the next delivery then counts anew)."""
    if run._start is not None:
        started, run._start = run._start, None
        await started.rollback()
    if not run.delivery_committed:
        try:
            await _count_delivery(run)
        except TRANSIENT_ERRORS:
            log.warning("job_delivery_not_counted")
