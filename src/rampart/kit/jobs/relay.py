"""The outbox relay: publishes committed outbox rows to the broker and marks them sent.

It reads every tenant's rows through the SECURITY DEFINER functions app.outbox_claim and
app.outbox_mark_sent (with the sweeper's, below, the only cross-tenant paths for jobs).
Rows are locked with SKIP LOCKED while their batch is published, so several relays can run
side by side and never publish one row twice. A broker outage leaves rows unsent and the
relay retries; a crash between publish and mark re-publishes, which idempotent tasks
absorb.

Woken, not polling: `enqueue` sends NOTIFY on the `rampart_outbox` channel in the
transaction that commits the job (kit/jobs/enqueue.py), and Postgres delivers it at
commit, so a job is published a few milliseconds after it is accepted. The relay still
looks every RELAY_POLL_INTERVAL_SECONDS, in case a notification was lost (the listening
connection dropped, or the relay was busy when it came).

Every JOB_SWEEP_INTERVAL_SECONDS it also purges idempotency keys older than 24 hours
(kit/idempotency.py) and sweeps for stale jobs (app.jobs_republish_stale,
migration 0008): a job still pending or processing JOB_STALE_AFTER_SECONDS after it last
changed, whose outbox row went out, lost its message (Redis restarted without its data, or
Celery dropped it); the function gives it a new outbox row, which the next round publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
from celery import Celery

from rampart.kit import context, tracing
from rampart.kit.db.pool import connect
from rampart.kit.db.transaction import DRIVER_ERRORS, transaction
from rampart.kit.jobs.celery_app import QUEUE
from rampart.kit.jobs.enqueue import OUTBOX_CHANNEL
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import JOBS_REPUBLISHED, OUTBOX_PUBLISHED
from rampart.kit.settings import job_settings

log = get_logger("rampart.relay")


def _publish(celery: Celery, row: Any) -> None:
    """Send one job, in a `queue.publish` span continuing the request that enqueued it
    (the outbox row's traceparent, else its trace_id); the message carries both."""
    headers = row["headers"] or {}
    with tracing.span(
        "queue.publish",
        kind=tracing.SpanKind.PRODUCER,
        traceparent=headers.get("traceparent"),
        trace_id=headers.get("trace_id"),
        attributes={
            "messaging.system": "redis",
            "messaging.operation.type": "send",
            "messaging.destination.name": QUEUE,
            "messaging.message.id": str(row["job_id"]),
            "rampart.task": row["task"],
        },
    ) as publish_span:
        found = tracing.ids(publish_span)
        trace_id = tracing.log_trace_id(publish_span, headers.get("trace_id"))
        context.bind(
            trace_id=trace_id, span_id=found[1] if found else None, job_id=str(row["job_id"])
        )
        message_headers = {"trace_id": trace_id}
        traceparent = tracing.traceparent_of(publish_span)
        if traceparent is not None:
            message_headers["traceparent"] = traceparent
        celery.send_task(
            row["task"],
            args=[str(row["job_id"]), str(row["tenant_id"])],
            task_id=str(row["job_id"]),
            headers=message_headers,
            retry=False,
        )


def _publish_batch(celery: Celery, rows: list[Any], published: list[int]) -> None:
    """Publish in order, appending each published row's id (a thread: kombu blocks)."""
    try:
        for row in rows:
            _publish(celery, row)
            published.append(row["id"])
            OUTBOX_PUBLISHED.labels(row["task"]).inc()
            log.info("outbox_published", task=row["task"])
    finally:
        context.clear()


async def relay_once(celery: Celery, batch_size: int) -> int:
    """Publish one batch; return how many rows were published."""
    published: list[int] = []
    async with transaction(None) as tx:
        rows = await tx.fetch(
            "SELECT id, tenant_id, job_id, task, headers FROM app.outbox_claim($1)", batch_size
        )
        if not rows:
            return 0
        try:
            await asyncio.to_thread(_publish_batch, celery, rows, published)
        finally:
            # Mark what did go out even if the broker failed midway through the batch.
            if published:
                await tx.execute("SELECT app.outbox_mark_sent($1)", published)
    return len(published)


async def sweep_once(stale_after_seconds: int, max_rows: int) -> int:
    """Give stale jobs a new outbox row (one transaction), and purge idempotency keys past
    their 24 hours; return how many jobs were republished."""
    async with transaction(None) as tx:
        # Every tenant's Idempotency-Key rows past their 24 hours (kit/idempotency.py).
        await tx.fetchval("SELECT app.idempotency_purge($1)", max_rows)
        rows = await tx.fetch(
            "SELECT job_id, tenant_id, type, trace_id FROM app.jobs_republish_stale($1, $2)",
            stale_after_seconds,
            max_rows,
        )
    for row in rows:
        JOBS_REPUBLISHED.labels(row["type"]).inc()
        context.bind(
            trace_id=row["trace_id"],
            job_id=str(row["job_id"]),
            job_type=row["type"],
            tenant_id=str(row["tenant_id"]),
        )
        try:
            log.warning("job_republished", stale_after_seconds=stale_after_seconds)
        finally:
            context.clear()
    return len(rows)


class _Wakeup:
    """LISTEN on the outbox channel on a connection of its own; `event` is set by every
    notification. Reconnects (next round) after the connection is lost."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    def _notified(self, *_args: object) -> None:
        self.event.set()

    async def ensure(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            self._conn = await connect()
            await self._conn.add_listener(OUTBOX_CHANNEL, self._notified)
        except DRIVER_ERRORS as exc:
            self._conn = None
            log.warning("relay_listen_failed", error_type=type(exc).__name__, error=str(exc))

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


async def run_relay(celery: Celery, stop: asyncio.Event) -> None:
    settings = job_settings()
    poll = settings.relay_poll_interval_seconds
    backoff = poll
    next_sweep = time.monotonic()
    wakeup = _Wakeup()
    log.info("relay_started")
    try:
        while not stop.is_set():
            await wakeup.ensure()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + settings.job_sweep_interval_seconds
                try:
                    await sweep_once(settings.job_stale_after_seconds, settings.relay_batch_size)
                except Exception as exc:  # the sweep is a safety net: publishing goes on
                    log.warning("job_sweep_failed", error_type=type(exc).__name__, error=str(exc))
            wakeup.event.clear()  # before looking: a commit from now on wakes the next wait
            try:
                count = await relay_once(celery, settings.relay_batch_size)
                backoff = poll
                if count:
                    continue  # more may be waiting
            except Exception as exc:
                log.warning("relay_round_failed", error_type=type(exc).__name__, error=str(exc))
                backoff = min(backoff * 2, 5.0)
            waits = [asyncio.ensure_future(stop.wait())]
            if backoff == poll:  # after a failure, back off even if notified
                waits.append(asyncio.ensure_future(wakeup.event.wait()))
            _done, pending = await asyncio.wait(
                waits, timeout=backoff, return_when=asyncio.FIRST_COMPLETED
            )
            for waiting in pending:
                waiting.cancel()
    finally:
        await wakeup.close()
        log.info("relay_stopped")
