"""The billing domain's metrics: plan changes and Stripe's webhook deliveries (declared
with the kit's rules, kit/metrics/instruments.py)."""

from __future__ import annotations

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
