"""The accounts domain's metrics (declared with the kit's rules, kit/metrics/instruments.py)."""

from __future__ import annotations

from rampart.kit.metrics.instruments import counter

SIGNUPS = counter("rampart_signups_total", "Tenants created through signup.")
