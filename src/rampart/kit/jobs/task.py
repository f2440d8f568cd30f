"""Declare a job task: a Celery task that runs a domain step through the job runner, on
the worker's event loop (kit/jobs/loop.py).

A job type has one name: the jobs row's `type`, the outbox row's `task`, the Celery task
name, the `job_type` metric label and log key (the domain's `*_JOB` constant, equal to the
task function's name). Names a job type had before are `aliases`: the worker registers
them too, so a message published under an old name (in the broker, or by an API or relay
of the previous release during a rolling deploy) still runs, as the canonical job
(docs/migrations.md, "Renaming a job type").

Transient errors are retried by Celery after the project's one backoff (exponential with
jitter, capped at JOB_RETRY_MAX_SECONDS: kit/resilience/retry.py `backoff`), bounded by
JOB_MAX_ATTEMPTS deliveries (the runner quarantines after that). A task that still raises
(the database was down even for the quarantine write) is rejected by Celery without
requeue: its job row stays pending/processing until the relay's stale-job sweeper
publishes it again (docs/resilience.md, "Stale-job sweeper" and "Known gaps").
"""

from __future__ import annotations

from celery import Task, shared_task

from rampart.kit import tracing
from rampart.kit.jobs import loop
from rampart.kit.jobs.runner import TRANSIENT_ERRORS, OnFailure, Work, run_job
from rampart.kit.resilience.retry import backoff_seconds
from rampart.kit.settings import job_settings


def _header(task: Task, name: str) -> str | None:
    request = task.request
    return getattr(request, name, None) or (request.headers or {}).get(name)


def retry_delay(retries: int) -> float:
    """The countdown before the next delivery, after `retries` retries so far."""
    settings = job_settings()
    return backoff_seconds(
        retries + 1,
        base_seconds=settings.job_retry_base_seconds,
        max_seconds=settings.job_retry_max_seconds,
    )


async def _consume(
    name: str,
    work: Work,
    on_failure: OnFailure | None,
    job_id: str,
    tenant_id: str,
    *,
    trace_id: str | None,
    traceparent: str | None,
    queue: str,
    retries: int,
) -> str:
    # One trace from the request: continue the relay's publish span (kit/tracing.py).
    with tracing.span(
        "queue.consume",
        kind=tracing.SpanKind.CONSUMER,
        traceparent=traceparent,
        trace_id=trace_id,
        attributes={
            "messaging.system": "redis",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
            "rampart.task": name,
            "rampart.retries": retries,
        },
    ) as consume_span:
        found = tracing.ids(consume_span)
        return await run_job(
            job_id,
            tenant_id,
            work,
            task=name,
            trace_id=tracing.log_trace_id(consume_span, trace_id) if trace_id else None,
            span_id=found[1] if found else None,
            on_failure=on_failure,
        )


def job_task(
    name: str, work: Work, on_failure: OnFailure | None = None, *, aliases: tuple[str, ...] = ()
) -> Task:
    """The task `name` (the job type), also registered under each of `aliases`."""
    for alias in aliases:
        _register(alias, name, work, on_failure)
    return _register(name, name, work, on_failure)


def _register(registered: str, name: str, work: Work, on_failure: OnFailure | None) -> Task:
    @shared_task(name=registered, bind=True, max_retries=None)
    def task(self: Task, job_id: str, tenant_id: str) -> str:
        try:
            return loop.run(
                _consume(
                    name,
                    work,
                    on_failure,
                    job_id,
                    tenant_id,
                    trace_id=_header(self, "trace_id"),
                    traceparent=_header(self, "traceparent"),
                    queue=(self.request.delivery_info or {}).get("routing_key", ""),
                    retries=self.request.retries,
                )
            )
        except TRANSIENT_ERRORS as exc:
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    return task
