"""The incidents domain's metrics (declared with the kit's rules, kit/metrics/instruments.py)."""

from __future__ import annotations

from rampart.kit.metrics.instruments import counter

INCIDENT_NOTIFICATIONS = counter(
    "rampart_incident_notifications_total",
    "Alerts received from Alertmanager on the incident webhook, by status (firing, resolved) "
    "and severity (critical, warning, info, none, other).",
    ["status", "severity"],
)
