"""All SQL of incidents: two SECURITY DEFINER functions (migration 0007), the only way in.
The API (app_rw) records through `app.incident_record`; listing (`app.incident_list`) is
the operator's (rampart_operator, migration 0010). No claims are needed or set: incidents
belong to no tenant."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import asyncpg

from rampart.incidents.models import Incident, Recorded
from rampart.kit.db.transaction import Tx

_RECORD = (
    "SELECT id, status, notifications FROM app.incident_record("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
_COLUMNS = ", ".join(f.name for f in fields(Incident))
_LIST = f"SELECT {_COLUMNS} FROM app.incident_list($1, $2)"  # noqa: S608 - dataclass fields


async def record(
    tx: Tx,
    *,
    fingerprint: str,
    starts_at: datetime,
    status: str,
    ends_at: datetime | None,
    alertname: str,
    severity: str | None,
    service: str | None,
    summary: str | None,
    description: str | None,
    runbook_url: str | None,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> Recorded:
    """Insert the alert's incident, or update the one with its fingerprint and start time.

    Concurrent notifications of one alert wait on the unique index: one row, every
    notification counted."""
    row = await tx.fetchrow(
        _RECORD,
        fingerprint,
        starts_at,
        status,
        ends_at,
        alertname,
        severity,
        service,
        summary,
        description,
        runbook_url,
        labels,
        annotations,
    )
    return Recorded(id=row["id"], status=row["status"], notifications=row["notifications"])


async def list_incidents(
    conn: asyncpg.Connection, *, include_resolved: bool, limit: int
) -> list[Incident]:
    """Firing incidents (or all), newest first, at most `limit` (1000 at most)."""
    rows = await conn.fetch(_LIST, include_resolved, limit)
    return [Incident(**dict(row)) for row in rows]
