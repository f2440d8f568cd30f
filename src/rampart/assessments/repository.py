"""All SQL of assessments. Every read sees live assessments only: a soft-deleted one is
gone for the API (404, not listed) and for the pipeline (its jobs find nothing to do)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from asyncpg import Record

from rampart.kit.db import live_rows
from rampart.kit.db.transaction import Tx

COLUMNS = (
    "id, tenant_id, created_by, answers, context, status, overall_score, dimension_scores, "
    "provider, model, degraded, score_duration_ms, roadmap_id, error, trace_id, created_at, "
    "updated_at, finished_at"
)
_LIVE = live_rows.live()
# finished_at is the database's (trigger of migration 0014), not ours to set.
_UPDATABLE = frozenset(COLUMNS.split(", ")) - {
    "id", "tenant_id", "created_by", "created_at", "finished_at"
}


async def insert(
    tx: Tx,
    *,
    assessment_id: uuid.UUID,
    tenant_id: uuid.UUID,
    created_by: uuid.UUID,
    answers: dict[str, int],
    context: str | None,
    trace_id: str | None,
) -> None:
    await tx.execute(
        "INSERT INTO assessments (id, tenant_id, created_by, answers, context, trace_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        assessment_id,
        tenant_id,
        created_by,
        answers,
        context,
        trace_id,
    )


async def get(tx: Tx, assessment_id: uuid.UUID) -> Record | None:
    return await tx.fetchrow(
        f"SELECT {COLUMNS} FROM assessments WHERE id = $1 AND {_LIVE}",  # noqa: S608 - constants
        assessment_id,
    )


async def get_for_update(tx: Tx, assessment_id: uuid.UUID) -> Record | None:
    return await tx.fetchrow(
        f"SELECT {COLUMNS} FROM assessments WHERE id = $1 AND {_LIVE} FOR UPDATE",  # noqa: S608
        assessment_id,
    )


async def list_recent(
    tx: Tx, *, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[Record]:
    """Newest first, keyset-paginated on (created_at, id): stable under concurrent inserts."""
    if before is None:
        return await tx.fetch(
            f"SELECT {COLUMNS} FROM assessments WHERE {_LIVE}"  # noqa: S608 - constants
            " ORDER BY created_at DESC, id DESC LIMIT $1",
            limit,
        )
    return await tx.fetch(
        f"SELECT {COLUMNS} FROM assessments WHERE {_LIVE}"  # noqa: S608 - constants
        " AND (created_at, id) < ($2::timestamptz, $3::uuid)"
        " ORDER BY created_at DESC, id DESC LIMIT $1",
        limit,
        *before,
    )


async def update(tx: Tx, assessment_id: uuid.UUID, **values: Any) -> None:
    """Set columns (names from our own code, never from input) and `updated_at`."""
    names = list(values)
    if not _UPDATABLE.issuperset(names):
        raise ValueError(f"not an updatable column: {sorted(set(names) - _UPDATABLE)}")
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    await tx.execute(
        f"UPDATE assessments SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
        assessment_id,
        *values.values(),
    )


async def soft_delete(tx: Tx, assessment_id: uuid.UUID) -> None:
    await live_rows.soft_delete(tx, "assessments", assessment_id)
