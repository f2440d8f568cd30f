"""Billing rules: what a Stripe event does to its tenant, at most once, in one transaction.

checkout.session.completed        tenant from client_reference_id; binds the Stripe
                                  customer to it if it has none; plan → pro. A tenant
                                  bound to another customer keeps it and its plan: the
                                  event is recorded, logged and counted as a conflict
customer.subscription.updated     plan follows the status: active, trialing → pro;
                                  canceled, unpaid, incomplete_expired → free; others
                                  (past_due, incomplete, paused) leave it
customer.subscription.deleted     plan → free
invoice.payment_failed            tenant flagged (payment_failed_at)
invoice.paid                      the flag is cleared (if not raised later)
anything else                     recorded, no effect

The event row, the tenant's new state and the billing_events row commit together (the
request's one transaction), so a failure leaves nothing half-written and Stripe's retry
finds no event row and applies it then. Stripe delivers in any order: a plan event older
than the last one applied to the tenant is recorded and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from pydantic import ValidationError

from rampart.billing import repository
from rampart.billing.metrics import BILLING_CONFLICTS, PLAN_CHANGES, WEBHOOK_DELIVERIES
from rampart.billing.repository import TenantBilling
from rampart.billing.schemas import CheckoutSession, Invoice, StripeEvent, Subscription, WebhookAck
from rampart.billing.stripe_verification import PROVIDER, MalformedEvent, problems
from rampart.kit import context
from rampart.kit.db.transaction import Claims, Tx
from rampart.kit.logging import get_logger

log = get_logger(__name__)

SUBSCRIPTION_PLANS = {
    "active": "pro",
    "trialing": "pro",
    "canceled": "free",
    "unpaid": "free",
    "incomplete_expired": "free",
}


@dataclass(frozen=True)
class Intent:
    """What an event asks of which tenant (named directly, or through its customer)."""

    kind: Literal["plan", "payment"]
    tenant_id: uuid.UUID | None = None
    customer_id: str | None = None
    plan: str | None = None  # kind "plan": the plan it implies; None leaves the plan alone
    bind_customer: bool = False
    payment_failed: bool = False  # kind "payment": raise (True) or clear (False) the flag


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def intent_of(event: StripeEvent) -> Intent | None:
    """The event's intent, None for types we ignore; MalformedEvent (400) if the object
    does not have the shape its type promises."""
    obj = event.data.object
    try:
        if event.type == "checkout.session.completed":
            checkout = CheckoutSession.model_validate(obj)
            return Intent(
                "plan",
                tenant_id=_uuid(checkout.client_reference_id),
                customer_id=checkout.customer,
                plan="pro",
                bind_customer=True,
            )
        if event.type in ("customer.subscription.updated", "customer.subscription.deleted"):
            subscription = Subscription.model_validate(obj)
            deleted = event.type == "customer.subscription.deleted"
            plan = "free" if deleted else SUBSCRIPTION_PLANS.get(subscription.status)
            return Intent("plan", customer_id=subscription.customer, plan=plan)
        if event.type in ("invoice.payment_failed", "invoice.paid"):
            invoice = Invoice.model_validate(obj)
            failed = event.type == "invoice.payment_failed"
            return Intent("payment", customer_id=invoice.customer, payment_failed=failed)
    except ValidationError as exc:
        WEBHOOK_DELIVERIES.labels(PROVIDER, "malformed").inc()
        details = problems(exc, ("data", "object"))
        raise MalformedEvent(f"Not a valid {event.type} event.", details=details) from exc
    return None


async def _tenant(tx: Tx, intent: Intent | None) -> TenantBilling | None:
    """The tenant the event names, locked, with its claims set for the writes to come."""
    if intent is None:
        return None
    tenant_id = intent.tenant_id
    if tenant_id is None and intent.customer_id:
        tenant_id = await repository.tenant_for_customer(tx, intent.customer_id)
    if tenant_id is None:
        return None
    await tx.set_claims(Claims(tenant_id=str(tenant_id), role="service"))
    context.bind(tenant_id=str(tenant_id))
    return await repository.lock_tenant(tx, tenant_id)


async def handle_stripe_event(tx: Tx, event: StripeEvent, document: dict) -> WebhookAck:
    """Record the event and apply it, unless its id was recorded before."""
    intent = intent_of(event)
    tenant = await _tenant(tx, intent)
    try:
        new = await repository.record_event(
            tx,
            provider=PROVIDER,
            event_id=event.id,
            type=event.type,
            tenant_id=tenant.id if tenant else None,
            payload=document,
        )
    except asyncpg.DataError as exc:  # e.g. a \u0000 escape: valid JSON jsonb cannot hold
        WEBHOOK_DELIVERIES.labels(PROVIDER, "malformed").inc()
        raise MalformedEvent("The webhook body cannot be stored.") from exc
    log_fields: dict[str, Any] = {"provider": PROVIDER, "event_id": event.id, "type": event.type}
    if not new:
        return _ack(event, "duplicate", log_fields)
    if intent is None or tenant is None:
        reason = "ignored_type" if intent is None else "unknown_tenant"
        return _ack(event, "no_effect", {**log_fields, "reason": reason})
    reason = await _apply(tx, tenant, intent, event)
    if reason:
        return _ack(event, "no_effect", {**log_fields, "reason": reason})
    return _ack(event, "applied", log_fields)


def _ack(
    event: StripeEvent, outcome: Literal["applied", "no_effect", "duplicate"], fields: dict
) -> WebhookAck:
    WEBHOOK_DELIVERIES.labels(PROVIDER, outcome).inc()
    log.info("webhook_" + outcome, **fields)
    return WebhookAck(event_id=event.id, outcome=outcome)


async def _apply(tx: Tx, tenant: TenantBilling, intent: Intent, event: StripeEvent) -> str | None:
    """Write the event's effect on the tenant; the reason when it has none."""
    happened = datetime.fromtimestamp(event.created, UTC)
    if intent.kind == "payment":
        flagged = tenant.payment_failed_at
        if intent.payment_failed and (flagged is None or flagged < happened):
            await repository.update_tenant(tx, tenant.id, {"payment_failed_at": happened})
        elif not intent.payment_failed and flagged is not None and flagged <= happened:
            await repository.update_tenant(tx, tenant.id, {"payment_failed_at": None})
        return None
    if tenant.billing_event_at is not None and happened < tenant.billing_event_at:
        return "stale"  # a newer plan event was applied already
    values: dict[str, Any] = {"billing_event_at": happened}
    customer = intent.customer_id
    if intent.bind_customer and customer and customer != tenant.stripe_customer_id:
        owner = await repository.tenant_for_customer(tx, customer)
        if tenant.stripe_customer_id is not None or (owner is not None and owner != tenant.id):
            # A tenant keeps the customer it is bound to (a second checkout, or a forged
            # client_reference_id, must not move it), and a customer belongs to one tenant.
            BILLING_CONFLICTS.inc()
            log.error(
                "stripe_customer_conflict",
                event_id=event.id,
                bound_customer_id=tenant.stripe_customer_id,
                event_customer_id=customer,
                other_tenant_id=str(owner) if owner and owner != tenant.id else None,
            )
            return "customer_conflict"
        values["stripe_customer_id"] = customer
    await repository.update_tenant(tx, tenant.id, values)
    if intent.plan is not None and intent.plan != tenant.plan:
        trace_id = context.current("trace_id")
        await repository.set_plan(tx, intent.plan, event.id, str(trace_id) if trace_id else None)
        PLAN_CHANGES.labels(tenant.plan, intent.plan).inc()
        log.info("plan_changed", from_plan=tenant.plan, to_plan=intent.plan, event_id=event.id)
    return None
