"""The incidents table (migrations/versions/0007_incidents.py), as rows come back from it.

No ORM model on purpose: app_rw has no privilege on `incidents` and reaches it only through
`app.incident_record` and `app.incident_list` (see repository.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Incident:
    id: int
    fingerprint: str
    alertname: str
    severity: str | None
    service: str | None
    status: str
    summary: str | None
    description: str | None
    runbook_url: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    first_received_at: datetime
    last_received_at: datetime
    notifications: int
    resolved_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in self.__dict__.items()
        }


@dataclass(frozen=True)
class Recorded:
    """What storing one alert did: its row, now in `status`, after `notifications`."""

    id: int
    status: str
    notifications: int

    @property
    def new(self) -> bool:
        return self.notifications == 1
