"""Billing rules: what a Stripe event does to its tenant, at most once, in one transaction.

checkout.session.completed        tenant from client_reference_id; binds the Stripe
                                  customer to it; plan → pro
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

from pydantic import ValidationError
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from rampart.billing import repository
from rampart.billing.repository import TenantBilling
from rampart.billing.schemas import CheckoutSession, Invoice, StripeEvent, Subscription, WebhookAck
from rampart.billing.webhooks import PROVIDER, MalformedEvent, problems
from rampart.kit import context
from rampart.kit.db.transaction import Claims, set_claims
from rampart.kit.logging import get_logger
from rampart.kit.metrics import PLAN_CHANGES, WEBHOOK_DELIVERIES

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


def _tenant(session: Session, intent: Intent | None) -> TenantBilling | None:
    """The tenant the event names, locked, with its claims set for the writes to come."""
    if intent is None:
        return None
    tenant_id = intent.tenant_id
    if tenant_id is None and intent.customer_id:
        tenant_id = repository.tenant_for_customer(session, intent.customer_id)
    if tenant_id is None:
        return None
    set_claims(session, Claims(tenant_id=str(tenant_id), role="service"))
    context.bind(tenant_id=str(tenant_id))
    return repository.lock_tenant(session, tenant_id)


def handle_stripe_event(session: Session, event: StripeEvent, document: dict) -> WebhookAck:
    """Record the event and apply it, unless its id was recorded before."""
    intent = intent_of(event)
    tenant = _tenant(session, intent)
    try:
        new = repository.record_event(
            session,
            provider=PROVIDER,
            event_id=event.id,
            type=event.type,
            tenant_id=tenant.id if tenant else None,
            payload=document,
        )
    except DataError as exc:  # e.g. a \u0000 escape: valid JSON that jsonb cannot hold
        WEBHOOK_DELIVERIES.labels(PROVIDER, "malformed").inc()
        raise MalformedEvent("The webhook body cannot be stored.") from exc
    log_fields: dict[str, Any] = {"provider": PROVIDER, "event_id": event.id, "type": event.type}
    if not new:
        return _ack(event, "duplicate", log_fields)
    if intent is None or tenant is None:
        reason = "ignored_type" if intent is None else "unknown_tenant"
        return _ack(event, "no_effect", {**log_fields, "reason": reason})
    reason = _apply(session, tenant, intent, event)
    if reason:
        return _ack(event, "no_effect", {**log_fields, "reason": reason})
    return _ack(event, "applied", log_fields)


def _ack(
    event: StripeEvent, outcome: Literal["applied", "no_effect", "duplicate"], fields: dict
) -> WebhookAck:
    WEBHOOK_DELIVERIES.labels(PROVIDER, outcome).inc()
    log.info("webhook_" + outcome, **fields)
    return WebhookAck(event_id=event.id, outcome=outcome)


def _apply(
    session: Session, tenant: TenantBilling, intent: Intent, event: StripeEvent
) -> str | None:
    """Write the event's effect on the tenant; the reason when it has none."""
    happened = datetime.fromtimestamp(event.created, UTC)
    if intent.kind == "payment":
        flagged = tenant.payment_failed_at
        if intent.payment_failed and (flagged is None or flagged < happened):
            repository.update_tenant(session, tenant.id, {"payment_failed_at": happened})
        elif not intent.payment_failed and flagged is not None and flagged <= happened:
            repository.update_tenant(session, tenant.id, {"payment_failed_at": None})
        return None
    if tenant.billing_event_at is not None and happened < tenant.billing_event_at:
        return "stale"  # a newer plan event was applied already
    values: dict[str, Any] = {"billing_event_at": happened}
    customer = intent.customer_id
    if intent.bind_customer and customer and customer != tenant.stripe_customer_id:
        owner = repository.tenant_for_customer(session, customer)
        if owner is not None and owner != tenant.id:
            log.error("stripe_customer_of_another_tenant", other_tenant_id=str(owner))
            return "customer_conflict"
        values["stripe_customer_id"] = customer
    if intent.plan is not None and intent.plan != tenant.plan:
        values["plan"] = intent.plan
        repository.append_billing_event(
            session,
            tenant_id=tenant.id,
            from_plan=tenant.plan,
            to_plan=intent.plan,
            event_id=event.id,
        )
        PLAN_CHANGES.labels(tenant.plan, intent.plan).inc()
        log.info("plan_changed", from_plan=tenant.plan, to_plan=intent.plan, event_id=event.id)
    repository.update_tenant(session, tenant.id, values)
    return None
