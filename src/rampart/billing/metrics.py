"""Billing gauges read from Postgres when Prometheus scrapes the relay (like
kit/ops_metrics.py: shared state, so one process reports it).

- `rampart_tenants{plan}`: tenants per plan.
- `rampart_subscriptions{status}`: tenants per Stripe subscription status (`none`: never
  subscribed).
- `rampart_mrr_cents{plan}`: monthly recurring revenue by plan, from the plans' prices
  (billing/plans.py): tenants on the plan whose subscription is active or past_due (still
  billed) times the plan's monthly price.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from rampart.billing import plans
from rampart.kit.db.pool import connect
from rampart.kit.logging import get_logger

log = get_logger("rampart.metrics")

BILLED = frozenset({"active", "past_due"})


async def _summary() -> list[tuple[str, str, int]]:
    conn = await connect()
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = 2000")
            rows = await conn.fetch("SELECT * FROM app.billing_summary()")
    finally:
        conn.terminate()
    return [(r["plan"], r["subscription_status"], int(r["tenants"])) for r in rows]


def figures(rows: list[tuple[str, str, int]]) -> dict[str, dict[str, float]]:
    by_plan = {name: 0.0 for name in plans.all_plans()}
    by_status: dict[str, float] = {}
    mrr = {name: 0.0 for name in plans.all_plans()}
    for plan, status, count in rows:
        by_plan[plan] = by_plan.get(plan, 0.0) + count
        by_status[status] = by_status.get(status, 0.0) + count
        if status in BILLED:
            mrr[plan] = mrr.get(plan, 0.0) + count * plans.get(plan).monthly_price_cents
    return {"plan": by_plan, "status": by_status, "mrr": mrr}


class BillingCollector:
    """A prometheus_client collector; register it on the relay's registry only."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        try:
            found = figures(asyncio.run(_summary()))
        except Exception as exc:  # a scrape must never fail
            log.warning("billing_metrics_unavailable", error=str(exc)[:200])
            return
        tenants = GaugeMetricFamily("rampart_tenants", "Tenants per plan.", labels=["plan"])
        for plan, count in sorted(found["plan"].items()):
            tenants.add_metric([plan], count)
        yield tenants
        subscriptions = GaugeMetricFamily(
            "rampart_subscriptions",
            "Tenants per Stripe subscription status (`none`: never subscribed).",
            labels=["status"],
        )
        for status, count in sorted(found["status"].items()):
            subscriptions.add_metric([status], count)
        yield subscriptions
        mrr = GaugeMetricFamily(
            "rampart_mrr_cents",
            "Monthly recurring revenue by plan in minor units (cents), from the plans' prices.",
            labels=["plan"],
        )
        for plan, cents in sorted(found["mrr"].items()):
            mrr.add_metric([plan], cents)
        yield mrr
