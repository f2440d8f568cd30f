"""All SQL of roadmaps."""

from __future__ import annotations

import uuid
from typing import Any

from asyncpg import Record

from rampart.kit.db.live_rows import live
from rampart.kit.db.transaction import Tx


async def get(tx: Tx, roadmap_id: uuid.UUID) -> Record | None:
    """The roadmap, unless its assessment was soft-deleted: then it is gone with it (404)."""
    return await tx.fetchrow(
        "SELECT r.id, r.assessment_id, r.items, r.provider, r.model, r.degraded,"  # noqa: S608
        " r.duration_ms, r.created_at"
        " FROM roadmaps r JOIN assessments a ON a.id = r.assessment_id"
        f" WHERE r.id = $1 AND {live('a')}",
        roadmap_id,
    )


async def insert_once(tx: Tx, values: dict[str, Any]) -> uuid.UUID:
    """Insert the assessment's roadmap unless it has one; return the roadmap's id either way.

    The unique assessment_id makes a second roadmap impossible, even for two deliveries of
    the same job racing each other.
    """
    inserted = await tx.fetchval(
        "INSERT INTO roadmaps (id, tenant_id, assessment_id, items, provider, model, degraded,"
        " duration_ms, trace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (assessment_id) DO NOTHING RETURNING id",
        values["id"],
        values["tenant_id"],
        values["assessment_id"],
        values["items"],
        values["provider"],
        values["model"],
        values["degraded"],
        values["duration_ms"],
        values["trace_id"],
    )
    if inserted is not None:
        return inserted
    return await tx.fetchval(
        "SELECT id FROM roadmaps WHERE assessment_id = $1", values["assessment_id"]
    )
