"""Quarantine (dead letters): where a job goes when it failed for good.

Written by the worker inside the job's tenant; read, replayed and discarded by the operator
(`rampart dlq`) through the app.dlq_* SECURITY DEFINER functions (migration 0002), which
only the operator role may run (migration 0010).
"""

from __future__ import annotations

import uuid
from typing import Any

from asyncpg import Record

from rampart.kit.db.operator import operator_connection
from rampart.kit.db.transaction import Tx
from rampart.kit.metrics.instruments import JOBS_QUARANTINED

_QUARANTINE = """
WITH job AS (
  UPDATE jobs SET status = 'quarantined', last_error = left($2, 2000), finished_at = now(),
                  updated_at = now()
   WHERE id = $1
  RETURNING id, tenant_id, type, attempts, payload, trace_id
)
INSERT INTO dead_letters (tenant_id, job_id, job_type, task, error_class, error_message,
                          traceback, attempts, payload, trace_id)
SELECT tenant_id, id, type, $3, $4, left($5, 4000), $6, attempts, payload, trace_id FROM job
RETURNING job_type
"""


async def quarantine(
    tx: Tx,
    *,
    job_id: uuid.UUID,
    task: str,
    error_class: str,
    error_message: str,
    traceback: str | None,
) -> None:
    """Mark the job quarantined and keep everything needed to understand and replay it."""
    job_type = await tx.fetchval(
        _QUARANTINE,
        job_id,
        f"{error_class}: {error_message}",
        task,
        error_class,
        error_message,
        traceback,
    )
    if job_type is not None:
        JOBS_QUARANTINED.labels(job_type).inc()


# --- operator side: every tenant, through the definer functions ---------------------------


async def list_dead_letters(include_closed: bool = False) -> list[Record]:
    async with operator_connection() as conn:
        return await conn.fetch("SELECT * FROM app.dlq_list($1)", include_closed)


async def show_dead_letter(dead_letter_id: int) -> Record | None:
    async with operator_connection() as conn:
        return await conn.fetchrow("SELECT * FROM app.dlq_show($1)", dead_letter_id)


async def replay(dead_letter_id: int) -> bool:
    async with operator_connection() as conn:
        return bool(await conn.fetchval("SELECT app.dlq_replay($1)", dead_letter_id))


async def discard(dead_letter_id: int) -> bool:
    async with operator_connection() as conn:
        return bool(await conn.fetchval("SELECT app.dlq_discard($1)", dead_letter_id))


def as_dict(row: Record) -> dict[str, Any]:
    return dict(row)
