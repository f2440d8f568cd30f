"""All SQL of evidence."""

from __future__ import annotations

import uuid
from typing import Any

from asyncpg import Record

from rampart.kit.db.transaction import Tx

_COLUMNS = "id, assessment_id, filename, content_type, size_bytes, sha256, created_at"


async def add(tx: Tx, values: dict[str, Any]) -> Record:
    """Insert the row (constraint errors surface here, before the file is stored)."""
    return await tx.fetchrow(
        "INSERT INTO evidence (id, tenant_id, assessment_id, uploaded_by, filename,"  # noqa: S608
        " content_type, size_bytes, sha256, storage_key, trace_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        f" RETURNING {_COLUMNS}",
        values["id"],
        values["tenant_id"],
        values["assessment_id"],
        values["uploaded_by"],
        values["filename"],
        values["content_type"],
        values["size_bytes"],
        values["sha256"],
        values["storage_key"],
        values["trace_id"],
    )


async def list_for_assessment(tx: Tx, assessment_id: uuid.UUID) -> list[Record]:
    return await tx.fetch(
        f"SELECT {_COLUMNS} FROM evidence WHERE assessment_id = $1"  # noqa: S608 - constants
        " ORDER BY created_at, id",
        assessment_id,
    )


async def stored_bytes(tx: Tx) -> int:
    """Bytes of evidence the claims' tenant stores."""
    return await tx.fetchval("SELECT coalesce(sum(size_bytes), 0)::bigint FROM evidence")
