"""The outbox relay: publishes committed outbox rows to the broker and marks them sent.

It reads every tenant's rows through the SECURITY DEFINER functions app.outbox_claim and
app.outbox_mark_sent (the only cross-tenant path for jobs). Rows are locked with SKIP
LOCKED, so several relays can run. A broker outage leaves rows unsent and the relay retries;
a crash between publish and mark re-publishes, which idempotent tasks absorb.
"""

from __future__ import annotations

import threading

from celery import Celery
from sqlalchemy import text

from rampart.config import get_settings
from rampart.kit import context
from rampart.kit.db.transaction import transaction
from rampart.kit.logging import get_logger
from rampart.kit.metrics import OUTBOX_PUBLISHED

log = get_logger("rampart.relay")


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
                trace_id = (row.headers or {}).get("trace_id")
                context.bind(trace_id=trace_id, job_id=str(row.job_id))
                celery.send_task(
                    row.task,
                    args=[str(row.job_id), str(row.tenant_id)],
                    task_id=str(row.job_id),
                    headers={"trace_id": trace_id},
                    retry=False,
                )
                published.append(row.id)
                OUTBOX_PUBLISHED.labels(row.task).inc()
                log.info("outbox_published", task=row.task)
        finally:
            # Mark what did go out even if the broker failed midway through the batch.
            if published:
                session.execute(text("SELECT app.outbox_mark_sent(:ids)"), {"ids": published})
            context.clear()
    return len(published)


def run_relay(celery: Celery, stop: threading.Event | None = None) -> None:
    settings = get_settings()
    stop = stop or threading.Event()
    backoff = settings.relay_poll_interval_seconds
    log.info("relay_started")
    while not stop.is_set():
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
