"""Enqueue background work inside the caller's transaction: a job row and an outbox row
commit with the domain rows or not at all. The relay publishes committed outbox rows, so
accepted work survives a broker outage and nothing is published for a rolled-back request."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from rampart.kit import context, tracing
from rampart.kit.jobs.models import Job, OutboxRow


def enqueue(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    job_type: str,
    task: str,
    idempotency_key: str,
    payload: dict[str, Any],
) -> uuid.UUID:
    """Create the job (once per idempotency key) and its outbox row; return the job id."""
    trace_id = context.current("trace_id")
    job_id = uuid.uuid4()
    inserted = session.execute(
        pg_insert(Job)
        .values(
            id=job_id,
            tenant_id=tenant_id,
            type=job_type,
            idempotency_key=idempotency_key,
            payload=payload,
            trace_id=trace_id,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(Job.id)
    ).scalar_one_or_none()
    if inserted is None:
        # Already requested: the existing job is (or was) on its way; don't publish twice.
        return session.execute(
            select(Job.id).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
        ).scalar_one()
    headers = {"trace_id": trace_id}
    traceparent = tracing.current_traceparent()  # the relay's publish span continues it
    if traceparent is not None and traceparent.split("-")[1] == trace_id:
        headers["traceparent"] = traceparent
    session.execute(
        insert(OutboxRow).values(tenant_id=tenant_id, job_id=job_id, task=task, headers=headers)
    )
    return job_id
