"""The outbox relay: publishes committed outbox rows to the broker and marks them sent.

It reads every tenant's rows through the SECURITY DEFINER functions app.outbox_claim and
app.outbox_mark_sent (with the sweeper's, below, the only cross-tenant paths for jobs).
Rows are locked with SKIP LOCKED, so several relays can run. A broker outage leaves rows
unsent and the relay retries; a crash between publish and mark re-publishes, which
idempotent tasks absorb.

Every JOB_SWEEP_INTERVAL_SECONDS it also sweeps for stale jobs (app.jobs_republish_stale,
migration 0008): a job still pending or processing JOB_STALE_AFTER_SECONDS after it last
changed, whose outbox row went out, lost its message (Redis restarted without its data, or
Celery dropped it); the function gives it a new outbox row, which the next round publishes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery
from sqlalchemy import text

from rampart.config import get_settings
from rampart.kit import context, tracing
from rampart.kit.db.transaction import transaction
from rampart.kit.jobs.celery_app import QUEUE
from rampart.kit.logging import get_logger
from rampart.kit.metrics import JOBS_REPUBLISHED, OUTBOX_PUBLISHED

log = get_logger("rampart.relay")


def _publish(celery: Celery, row: Any) -> None:
    """Send one job, in a `queue.publish` span continuing the request that enqueued it
    (the outbox row's traceparent, else its trace_id); the message carries both."""
    headers = row.headers or {}
    with tracing.span(
        "queue.publish",
        kind=tracing.SpanKind.PRODUCER,
        traceparent=headers.get("traceparent"),
        trace_id=headers.get("trace_id"),
        attributes={
            "messaging.system": "redis",
            "messaging.operation.type": "send",
            "messaging.destination.name": QUEUE,
            "messaging.message.id": str(row.job_id),
            "rampart.task": row.task,
        },
    ) as publish_span:
        found = tracing.ids(publish_span)
        trace_id = tracing.log_trace_id(publish_span, headers.get("trace_id"))
        context.bind(trace_id=trace_id, span_id=found[1] if found else None, job_id=str(row.job_id))
        message_headers = {"trace_id": trace_id}
        traceparent = tracing.traceparent_of(publish_span)
        if traceparent is not None:
            message_headers["traceparent"] = traceparent
        celery.send_task(
            row.task,
            args=[str(row.job_id), str(row.tenant_id)],
            task_id=str(row.job_id),
            headers=message_headers,
            retry=False,
        )


def relay_once(celery: Celery, batch_size: int) -> int:
    """Publish one batch; return how many rows were published."""
    published: list[int] = []
    with transaction(None) as session:
        rows = session.execute(
            text("SELECT id, tenant_id, job_id, task, headers FROM app.outbox_claim(:n)"),
            {"n": batch_size},
        ).all()
        try:
            for row in rows:
                _publish(celery, row)
                published.append(row.id)
                OUTBOX_PUBLISHED.labels(row.task).inc()
                log.info("outbox_published", task=row.task)
        finally:
            # Mark what did go out even if the broker failed midway through the batch.
            if published:
                session.execute(text("SELECT app.outbox_mark_sent(:ids)"), {"ids": published})
            context.clear()
    return len(published)


def sweep_once(stale_after_seconds: int, max_rows: int) -> int:
    """Give stale jobs a new outbox row (one transaction); return how many."""
    with transaction(None) as session:
        rows = session.execute(
            text(
                "SELECT job_id, tenant_id, type, trace_id FROM app.jobs_republish_stale(:stale, :n)"
            ),
            {"stale": stale_after_seconds, "n": max_rows},
        ).all()
    for row in rows:
        JOBS_REPUBLISHED.labels(row.type).inc()
        context.bind(
            trace_id=row.trace_id,
            job_id=str(row.job_id),
            job_type=row.type,
            tenant_id=str(row.tenant_id),
        )
        try:
            log.warning("job_republished", stale_after_seconds=stale_after_seconds)
        finally:
            context.clear()
    return len(rows)


def run_relay(celery: Celery, stop: threading.Event | None = None) -> None:
    settings = get_settings()
    stop = stop or threading.Event()
    backoff = settings.relay_poll_interval_seconds
    next_sweep = time.monotonic()
    log.info("relay_started")
    while not stop.is_set():
        if time.monotonic() >= next_sweep:
            next_sweep = time.monotonic() + settings.job_sweep_interval_seconds
            try:
                sweep_once(settings.job_stale_after_seconds, settings.relay_batch_size)
            except Exception as exc:  # the sweep is a safety net: publishing goes on
                log.warning("job_sweep_failed", error_type=type(exc).__name__, error=str(exc))
        try:
            count = relay_once(celery, settings.relay_batch_size)
            backoff = settings.relay_poll_interval_seconds
            if count:
                continue  # more may be waiting
        except Exception as exc:
            log.warning("relay_round_failed", error_type=type(exc).__name__, error=str(exc))
            backoff = min(backoff * 2, 5.0)
        stop.wait(backoff)
    log.info("relay_stopped")
