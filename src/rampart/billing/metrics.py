"""The billing domain's metrics (declared with the kit's rules, kit/metrics/instruments.py):
plan changes, Stripe's webhook deliveries, quotas and reconciliation counters; and the
billing gauges read from Postgres when Prometheus scrapes the relay (like
kit/jobs/relay_gauges.py: shared state, so one process reports it).

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
from rampart.kit.metrics.instruments import counter

PLAN_CHANGES = counter(
    "rampart_plan_changes_total",
    "Tenant plan changes made by billing events.",
    ["from_plan", "to_plan"],
)
BILLING_CONFLICTS = counter(
    "rampart_billing_customer_conflicts_total",
    "Stripe checkouts that named a tenant already bound to another customer, or a customer "
    "bound to another tenant: recorded with no effect (a second checkout or a forged "
    "client_reference_id); each one is logged as stripe_customer_conflict.",
)
WEBHOOK_DELIVERIES = counter(
    "rampart_webhook_deliveries_total",
    "Webhook deliveries by outcome: applied, no_effect, duplicate (event id seen before), "
    "replayed (exact delivery seen before), bad_signature, malformed.",
    ["provider", "outcome"],
)
QUOTA_BLOCKS = counter(
    "rampart_quota_blocks_total",
    "Requests refused with 402 quota_exceeded, by the tenant's plan and metered metric.",
    ["plan", "metric"],
)
QUOTA_WARNINGS = counter(
    "rampart_quota_warnings_total",
    "Tenants crossing the warning share (80 %) of a plan limit, by plan and metric.",
    ["plan", "metric"],
)
QUOTA_REFUNDS = counter(
    "rampart_quota_refunds_total",
    "Metered units given back (a failed or quarantined assessment), by metric.",
    ["metric"],
)
BILLING_RECONCILE_RUNS = counter(
    "rampart_billing_reconcile_runs_total",
    "Billing reconciliation runs against Stripe, by outcome (ok, failed).",
    ["outcome"],
)
BILLING_RECONCILE_REPAIRED = counter(
    "rampart_billing_reconcile_repaired_total",
    "Stripe events reconciliation applied that no webhook had delivered (drift repaired), "
    "by event type family (checkout, subscription, invoice, other).",
    ["kind"],
)
BILLING_DRIFT = counter(
    "rampart_billing_drift_total",
    "Tenants whose subscription state differed from Stripe's after reconciliation "
    "applied the missed events (left for a human: runbook billing-reconciliation-drift).",
)
BILLING_DOWNGRADES = counter(
    "rampart_billing_grace_downgrades_total",
    "Tenants downgraded to free because their payment failed longer ago than the grace period.",
)

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
