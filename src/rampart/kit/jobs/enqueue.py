"""Enqueue background work inside the caller's transaction: a job row and an outbox row
commit with the domain rows or not at all. The relay publishes committed outbox rows, so
accepted work survives a broker outage and nothing is published for a rolled-back request.

One statement, one round trip: the job is inserted once per idempotency key, and the
outbox row only if the job is new (a repeated request finds the job on its way and
publishes nothing twice). The relay is woken by NOTIFY at commit (kit/jobs/relay.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from rampart.kit import context, tracing
from rampart.kit.db.transaction import Tx

OUTBOX_CHANNEL = "rampart_outbox"

_ENQUEUE = """
WITH new_job AS (
  INSERT INTO jobs (id, tenant_id, type, idempotency_key, payload, trace_id)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
  RETURNING id
), queued AS (
  INSERT INTO outbox (tenant_id, job_id, task, headers)
  SELECT $2, id, $7, $8 FROM new_job
), woken AS (
  SELECT pg_notify('rampart_outbox', '') FROM new_job  -- OUTBOX_CHANNEL
)
SELECT coalesce(
  (SELECT id FROM new_job, woken),
  (SELECT id FROM jobs WHERE tenant_id = $2 AND idempotency_key = $4)
)
"""


async def enqueue(
    tx: Tx,
    *,
    tenant_id: uuid.UUID,
    job_type: str,
    idempotency_key: str,
    payload: dict[str, Any],
) -> uuid.UUID:
    """Create the job (once per idempotency key) and its outbox row; return the job id.
    The outbox row's task is the job type: one name (kit/jobs/task.py)."""
    trace_id = context.current("trace_id")
    headers: dict[str, Any] = {"trace_id": trace_id}
    traceparent = tracing.current_traceparent()  # the relay's publish span continues it
    if traceparent is not None and traceparent.split("-")[1] == trace_id:
        headers["traceparent"] = traceparent
    job_id = await tx.fetchval(
        _ENQUEUE,
        uuid.uuid4(),
        tenant_id,
        job_type,
        idempotency_key,
        payload,
        trace_id,
        job_type,
        headers,
    )
    if job_id is None:
        # A concurrent transaction inserted the key after this statement's snapshot was
        # taken (ON CONFLICT waited for it): a new statement sees its job.
        job_id = await tx.fetchval(
            "SELECT id FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant_id,
            idempotency_key,
        )
    return job_id
