"""All SQL of incidents: two SECURITY DEFINER functions (migration 0007), the only way the
runtime role reaches the table. No claims are needed or set: incidents belong to no tenant."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from rampart.incidents.models import Incident, Recorded

_RECORD = text(
    "SELECT id, status, notifications FROM app.incident_record("
    ":fingerprint, :starts_at, :status, :ends_at, :alertname, :severity, :service, :summary, "
    ":description, :runbook_url, :labels, :annotations)"
).bindparams(bindparam("labels", type_=JSONB), bindparam("annotations", type_=JSONB))

_COLUMNS = ", ".join(f.name for f in fields(Incident))
_LIST = text(f"SELECT {_COLUMNS} FROM app.incident_list(:include_resolved, :limit)")  # noqa: S608 - column names from the dataclass


def record(
    session: Session,
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
    params: dict[str, Any] = {
        "fingerprint": fingerprint,
        "starts_at": starts_at,
        "status": status,
        "ends_at": ends_at,
        "alertname": alertname,
        "severity": severity,
        "service": service,
        "summary": summary,
        "description": description,
        "runbook_url": runbook_url,
        "labels": labels,
        "annotations": annotations,
    }
    row = session.execute(_RECORD, params).one()
    return Recorded(id=row.id, status=row.status, notifications=row.notifications)


def list_incidents(session: Session, *, include_resolved: bool, limit: int) -> list[Incident]:
    """Firing incidents (or all), newest first, at most `limit` (1000 at most)."""
    rows = session.execute(_LIST, {"include_resolved": include_resolved, "limit": limit})
    return [Incident(**row._mapping) for row in rows]
