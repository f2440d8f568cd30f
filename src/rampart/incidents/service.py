"""Incident rules: every alert of an Alertmanager notification becomes (or updates) one
incident row, all in the request's one transaction, so a notification is stored whole or
not at all (Alertmanager then retries it).

Identity is Alertmanager's: (fingerprint, startsAt). A repeated notification (repeat
interval, a retry, a group re-sent with one more alert) is the same row with one more
notification counted; `resolved` closes it, a later `firing` with the same start reopens
it. Each stored alert is logged (`incident_firing` / `incident_resolved`) and counted in
`rampart_incident_notifications_total{status,severity}`.
"""

from __future__ import annotations

from rampart.incidents import repository
from rampart.incidents.metrics import INCIDENT_NOTIFICATIONS
from rampart.incidents.models import Incident
from rampart.incidents.schemas import Alert, AlertmanagerPayload, AlertsReceived
from rampart.kit.db.operator import operator_connection
from rampart.kit.db.transaction import Tx
from rampart.kit.logging import get_logger

log = get_logger(__name__)

# Metric label values are bounded: any other severity counts as "other".
SEVERITIES = frozenset({"critical", "warning", "info", "none"})


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


def severity_label(severity: str | None) -> str:
    if not severity:
        return "none"
    return severity if severity in SEVERITIES else "other"


async def _store(tx: Tx, alert: Alert) -> None:
    labels, annotations = alert.labels, alert.annotations
    # The columns are bounded (migration 0007); the full values stay in labels/annotations.
    fields = {
        "alertname": _cut(labels.get("alertname", ""), 200) or "",
        "severity": _cut(labels.get("severity"), 64),
        "service": _cut(labels.get("service"), 200),
    }
    recorded = await repository.record(
        tx,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        status=alert.status,
        ends_at=alert.ends_at if alert.status == "resolved" else None,
        summary=_cut(annotations.get("summary"), 4096),
        description=_cut(annotations.get("description"), 16_384),
        runbook_url=_cut(annotations.get("runbook_url"), 2048),
        labels=labels,
        annotations=annotations,
        **fields,
    )
    INCIDENT_NOTIFICATIONS.labels(alert.status, severity_label(fields["severity"])).inc()
    emit = log.warning if alert.status == "firing" else log.info
    emit(
        f"incident_{alert.status}",
        **fields,
        fingerprint=alert.fingerprint,
        status=alert.status,
        incident_id=recorded.id,
        notifications=recorded.notifications,
        new=recorded.new,
        starts_at=alert.starts_at.isoformat(),
        summary=_cut(annotations.get("summary"), 300),
    )


async def receive(tx: Tx, payload: AlertmanagerPayload) -> AlertsReceived:
    """Store every alert of one notification (the caller's transaction commits them)."""
    for alert in payload.alerts:
        await _store(tx, alert)
    return AlertsReceived(received=len(payload.alerts))


async def list_incidents(*, include_resolved: bool = False, limit: int = 200) -> list[Incident]:
    """For `rampart incidents` (the operator's role): firing incidents (or all), newest
    first."""
    async with operator_connection() as conn:
        return await repository.list_incidents(conn, include_resolved=include_resolved, limit=limit)
