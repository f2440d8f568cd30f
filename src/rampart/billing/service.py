"""Billing rules: plans and quotas, and what a Stripe event does to its tenant, at most once,
in one transaction.

checkout.session.completed        tenant from client_reference_id; binds the Stripe
                                  customer to it if it has none; plan → pro. A tenant
                                  bound to another customer keeps it and its plan: the
                                  event is recorded, logged and counted as a conflict
customer.subscription.created,    the subscription (id, status, current period end,
customer.subscription.updated     cancel_at_period_end) is stored; the plan follows the
                                  status: active, trialing → pro; canceled, unpaid,
                                  incomplete_expired → free; past_due, incomplete, paused
                                  leave it (past_due: the grace period runs)
customer.subscription.deleted     plan → free (the data stays; creation is blocked only
                                  while usage is over the free limits)
invoice.payment_failed            payment_failed_at = the first unresolved failure: the
                                  grace period (BILLING_GRACE_PERIOD_SECONDS) starts;
                                  when it is over, `expire_grace` downgrades to free
invoice.paid                      the flag is cleared (if not raised later)
anything else                     recorded, no effect

The event row, the tenant's new state, the billing_events row and the audit row commit
together (the request's one transaction), so a failure leaves nothing half-written and
Stripe's retry finds no event row and applies it then. Stripe delivers in any order: a
plan or subscription event older (by its own `created`) than the last one applied to the
tenant is recorded, audited as refused, and changes nothing. Events for customers and
tenants we do not know are recorded, not applied.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg
import stripe
from pydantic import ValidationError

from rampart.billing import plans, repository, stripe_api
from rampart.billing.metrics import (
    BILLING_CONFLICTS,
    BILLING_DOWNGRADES,
    PLAN_CHANGES,
    QUOTA_BLOCKS,
    QUOTA_REFUNDS,
    QUOTA_WARNINGS,
    WEBHOOK_DELIVERIES,
)
from rampart.billing.plans import WARNING_RATIO, Metric
from rampart.billing.repository import TenantBilling
from rampart.billing.schemas import (
    AuditEntry,
    AuditPage,
    BillingOut,
    CheckoutSession,
    Invoice,
    PlanLimits,
    StripeEvent,
    Subscription,
    SubscriptionOut,
    UsageOut,
    WebhookAck,
)
from rampart.billing.stripe_verification import PROVIDER, MalformedEvent, problems
from rampart.config import get_settings
from rampart.kit import audit, context
from rampart.kit.db.transaction import Claims, Tx, transaction
from rampart.kit.errors import AppError, NotFound
from rampart.kit.logging import get_logger
from rampart.kit.security.principal import Principal

log = get_logger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
# Every event type that has an effect (docs/billing.md lists them with their tests).
HANDLED_EVENTS = frozenset(
    {"checkout.session.completed", "invoice.paid", "invoice.payment_failed"} | SUBSCRIPTION_EVENTS
)

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
    # Subscription events: the subscription's state to store on the tenant.
    subscription: dict[str, Any] | None = None


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
        if event.type in SUBSCRIPTION_EVENTS:
            subscription = Subscription.model_validate(obj)
            deleted = event.type == "customer.subscription.deleted"
            plan = "free" if deleted else SUBSCRIPTION_PLANS.get(subscription.status)
            period_end = subscription.current_period_end
            state = {
                "subscription_id": subscription.id,
                "subscription_status": "canceled" if deleted else subscription.status,
                "cancel_at_period_end": bool(subscription.cancel_at_period_end),
                "current_period_end": (
                    datetime.fromtimestamp(period_end, UTC) if period_end else None
                ),
            }
            return Intent("plan", customer_id=subscription.customer, plan=plan, subscription=state)
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
    after = await repository.tenant_billing(tx, tenant.id)
    await audit.record(
        tx,
        tenant_id=tenant.id,
        actor_id=None,
        action="billing_event_refused" if reason else "billing_event_applied",
        subject=f"stripe:{event.type}:{event.id}",
        before=tenant.state(),
        after=after.state() if after else None,
        reason=reason,
    )
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
        # The grace period runs from the first unresolved failure: Stripe's retries failing
        # again do not extend it.
        if intent.payment_failed and (flagged is None or happened < flagged):
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
    if intent.subscription is not None:
        values |= intent.subscription
    await repository.update_tenant(tx, tenant.id, values)
    if intent.plan is not None and intent.plan != tenant.plan:
        await change_plan(tx, tenant, intent.plan, event.id, f"Stripe {event.type}")
    return None


async def change_plan(tx: Tx, tenant: TenantBilling, plan: str, cause_id: str, reason: str) -> None:
    """Move the (locked, claims-set) tenant to `plan`: billing_events row (one per cause id),
    audit row, metric. Data is never touched: a downgrade only lowers the limits."""
    trace_id = context.current("trace_id")
    await repository.set_plan(tx, plan, cause_id, str(trace_id) if trace_id else None)
    await audit.record(
        tx,
        tenant_id=tenant.id,
        actor_id=None,
        action="plan_changed",
        subject=f"plan:{tenant.plan}->{plan}",
        before={"plan": tenant.plan},
        after={"plan": plan},
        reason=f"{reason} ({cause_id})",
    )
    PLAN_CHANGES.labels(tenant.plan, plan).inc()
    log.info("plan_changed", from_plan=tenant.plan, to_plan=plan, cause=cause_id)


async def expire_grace() -> int:
    """Downgrade to free every tenant whose payment failed longer ago than the grace period
    (each in its own transaction, idempotent: the cause id names the failure). Returns how
    many were downgraded."""
    grace = get_settings().billing_grace_period_seconds
    async with transaction(None) as tx:
        expired = await repository.grace_expired(tx, grace)
    downgraded = 0
    for tenant_id in expired:
        async with transaction(Claims(tenant_id=str(tenant_id), role="service")) as tx:
            tenant = await repository.lock_tenant(tx, tenant_id)
            failed = tenant.payment_failed_at if tenant else None
            if tenant is None or failed is None or tenant.plan == "free":
                continue
            if datetime.now(UTC) - failed < timedelta(seconds=grace):
                continue  # paid in between, then failed again: a new grace period
            cause = f"grace_{tenant_id.hex}_{int(failed.timestamp())}"
            await change_plan(tx, tenant, "free", cause, "grace period over after a failed payment")
            BILLING_DOWNGRADES.inc()
            downgraded += 1
    return downgraded


# --- plans, usage and quotas ----------------------------------------------------------------


class QuotaExceeded(AppError):
    code, status = "quota_exceeded", 402
    message = "Your plan's limit for this month is reached; upgrade or wait for the reset."


class PlanLimitReached(AppError):
    code, status = "plan_limit_reached", 402
    message = "Your plan's limit is reached; upgrade the plan or make room first."


# For the OpenAPI document of the routes that add members or evidence.
PLAN_LIMIT_RESPONSE = {
    402: {
        "description": "The plan has no room for it (`plan_limit_reached`; `details`: "
        "limit_name, plan, limit, usage)."
    }
}

# What a plan caps at any moment (not per month): the Plan field and its words.
Capacity = Literal["members", "evidence_bytes"]
_CAPACITY_WORDS = {"members": "members", "evidence_bytes": "bytes of evidence"}


async def require_room(
    tx: Tx,
    tenant_id: uuid.UUID,
    capacity: Capacity,
    used_now: Callable[[], Awaitable[int]],
    adding: int,
) -> None:
    """Raise PlanLimitReached (402) unless the tenant's plan has room for `adding` more of
    `capacity`. The tenant row stays locked until commit, so concurrent adds of one tenant
    take turns and each counts (`used_now`, read after the lock) what the others wrote."""
    state = await repository.lock_tenant(tx, tenant_id)
    plan = plans.get(state.plan if state else None)
    limit = getattr(plan, capacity)
    if limit is None:
        return
    used = await used_now()
    if used + adding <= limit:
        return
    QUOTA_BLOCKS.labels(plan.name, capacity).inc()
    details = {"limit_name": capacity, "plan": plan.name, "limit": limit, "usage": used}
    log.warning("plan_limit_reached", adding=adding, **details)
    raise PlanLimitReached(
        f"The {plan.title} plan allows {limit} {_CAPACITY_WORDS[capacity]}; "
        f"{used} in use. Upgrade the plan or make room first.",
        details=details,
    )


@dataclass(frozen=True)
class QuotaNotice:
    """Usage of one metric after a unit was counted."""

    metric: str
    plan: str
    limit: int | None
    used: int
    reset_at: datetime

    @property
    def warning(self) -> bool:
        return self.limit is not None and self.used >= math.ceil(WARNING_RATIO * self.limit)

    def header(self) -> str:
        """The `Quota-Warning` header value."""
        return f'{self.metric}; used={self.used}; limit={self.limit}; reset="{_iso(self.reset_at)}"'


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def consume(
    tx: Tx, actor: Principal, metric: Metric = "assessments"
) -> tuple[QuotaNotice, date]:
    """Count one unit of `metric` for the actor's tenant in this transaction, or raise
    QuotaExceeded (402) when the plan's limit for the month is reached. Returns the usage
    and the period it was counted in (give it back with `refund`)."""
    tenant_id = uuid.UUID(actor.tenant_id)
    plan = plans.get(actor.plan)
    limit = plan.limit(metric)
    period = plans.period_start()
    reset_at = plans.period_end(period)
    used = await repository.consume(tx, tenant_id, metric, period, limit)
    if used is None:
        current = (await repository.usage(tx, tenant_id, period)).get(metric, 0)
        details = {
            "metric": metric,
            "plan": plan.name,
            "limit": limit,
            "usage": current,
            "period_start": period.isoformat(),
            "reset_at": _iso(reset_at),
        }
        QUOTA_BLOCKS.labels(plan.name, metric).inc()
        log.warning("quota_exceeded", **details)

        async def audit_block(again: Tx) -> None:
            await audit.record(
                again,
                tenant_id=tenant_id,
                actor_id=actor.user_id,
                action="quota_blocked",
                subject=f"quota:{metric}",
                before={"usage": current, "limit": limit, "plan": plan.name},
                reason=f"{metric} limit of the {plan.name} plan reached for {period:%Y-%m}",
            )

        tx.keep_on_rollback(audit_block)  # the 402 rolls the request back; the row stays
        raise QuotaExceeded(details=details)
    notice = QuotaNotice(metric, plan.name, limit, used, reset_at)
    if limit and used == math.ceil(WARNING_RATIO * limit):  # crossing it, once a period
        QUOTA_WARNINGS.labels(plan.name, metric).inc()
        log.info("quota_warning", metric=metric, plan=plan.name, used=used, limit=limit)
        await audit.record(
            tx,
            tenant_id=tenant_id,
            actor_id=actor.user_id,
            action="quota_warning",
            subject=f"quota:{metric}",
            after={"usage": used, "limit": limit, "plan": plan.name},
            reason=f"{int(WARNING_RATIO * 100)} % of the {metric} limit used",
        )
    return notice, period


async def refund(
    tx: Tx, tenant_id: uuid.UUID, period: date, metric: Metric = "assessments"
) -> None:
    """Give back a unit counted in `period` (the work failed for good). Call it once per
    unit: the caller marks the unit refunded in the same transaction."""
    await repository.refund(tx, tenant_id, metric, period)
    QUOTA_REFUNDS.labels(metric).inc()
    log.info("quota_refunded", metric=metric, period=period.isoformat())


async def plan_of(tx: Tx, tenant_id: uuid.UUID) -> plans.Plan:
    """The tenant's plan now (RLS: only under its own claims)."""
    state = await repository.tenant_billing(tx, tenant_id)
    return plans.get(state.plan if state else None)


def assessments_rate_limit(plan: str | None) -> str:
    """The per-user assessment creation rate of `plan` (`limits` notation)."""
    return plans.get(plan).assessments_rate_limit


async def overview(tx: Tx, actor: Principal) -> BillingOut:
    """The tenant's plan, period, usage against each limit and subscription (owners and
    admins only: the route checks Action.MANAGE_BILLING). A read: never blocked by a quota."""
    tenant_id = uuid.UUID(actor.tenant_id)
    state = await repository.tenant_billing(tx, tenant_id)
    if state is None:
        raise NotFound("Tenant not found.")
    plan = plans.get(state.plan)
    period = plans.period_start()
    reset_at = plans.period_end(period)
    used = await repository.usage(tx, tenant_id, period)
    usage = []
    for metric in plans.METRICS:
        limit, count = plan.limit(metric), used.get(metric, 0)
        notice = QuotaNotice(metric, plan.name, limit, count, reset_at)
        usage.append(
            UsageOut(
                metric=metric,
                used=count,
                limit=limit,
                remaining=None if limit is None else max(limit - count, 0),
                warning=notice.warning,
                exceeded=limit is not None and count >= limit,
                reset_at=reset_at,
            )
        )
    grace = get_settings().billing_grace_period_seconds
    failed = state.payment_failed_at
    return BillingOut(
        plan=plan.name,
        limits=PlanLimits(
            assessments_per_month=plan.assessments_per_month,
            members=plan.members,
            evidence_bytes=plan.evidence_bytes,
            llm_providers=sorted(plan.llm_providers | {"offline"}),
        ),
        period_start=period,
        period_end=reset_at,
        usage=usage,
        subscription=SubscriptionOut(
            status=state.subscription_status,
            customer=state.stripe_customer_id is not None,
            current_period_end=state.current_period_end,
            cancel_at_period_end=state.cancel_at_period_end,
            payment_failed_at=failed,
            grace_ends_at=failed + timedelta(seconds=grace) if failed else None,
        ),
    )


# --- Checkout and the Customer Portal ----------------------------------------------------------


async def _ensure_customer(tx: Tx, state: TenantBilling, actor: Principal) -> str:
    """The tenant's Stripe customer, created and bound now if it has none (the tenant row is
    locked: concurrent checkouts of one tenant make one customer)."""
    if state.stripe_customer_id:
        return state.stripe_customer_id
    try:
        customer = await stripe_api.client().v1.customers.create_async(
            params={"metadata": {"tenant_id": str(state.id)}},
            options={"idempotency_key": f"rampart-customer-{state.id}"},
        )
    except stripe.StripeError as exc:
        log.warning("stripe_call_failed", call="customers.create", error=str(exc)[:200])
        raise stripe_api.StripeUnavailable() from exc
    await repository.update_tenant(tx, state.id, {"stripe_customer_id": customer.id})
    await audit.record(
        tx,
        tenant_id=state.id,
        actor_id=actor.user_id,
        action="stripe_customer_bound",
        subject=f"customer:{customer.id}",
        before={"customer": None},
        after={"customer": customer.id},
        reason="first checkout",
    )
    return customer.id


class AlreadySubscribed(AppError):
    code, status = "already_subscribed", 409
    message = "The tenant already has an active subscription; use the billing portal."


class NoCustomer(AppError):
    code, status = "no_customer", 409
    message = "The tenant has no Stripe customer yet; start a checkout first."


async def start_checkout(tx: Tx, actor: Principal, plan_name: str, key: str | None) -> str:
    """A Stripe Checkout Session for `plan_name`, created by us: our customer, our tenant id
    as client_reference_id, an idempotency key on the call. Its URL. (The route checks
    Action.MANAGE_BILLING.)"""
    tenant_id = uuid.UUID(actor.tenant_id)
    state = await repository.lock_tenant(tx, tenant_id)
    if state is None:
        raise NotFound("Tenant not found.")
    if state.plan == plan_name and state.subscription_status in ("active", "trialing"):
        raise AlreadySubscribed()
    plan = plans.get(plan_name)
    customer = await _ensure_customer(tx, state, actor)
    return_url = get_settings().billing_return_url
    # Stripe keys are at most 255 characters: the client's key (up to 255) is hashed in.
    client_key = hashlib.sha256(key.encode()).hexdigest()[:32] if key else uuid.uuid4().hex
    idempotency_key = f"rampart-checkout-{tenant_id}-{client_key}"
    try:
        session = await stripe_api.client().v1.checkout.sessions.create_async(
            params={
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(tenant_id),
                "line_items": [{"price": plan.price_id, "quantity": 1}],
                "success_url": f"{return_url}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
                "cancel_url": f"{return_url}?checkout=canceled",
                "metadata": {"tenant_id": str(tenant_id), "plan": plan.name},
                "subscription_data": {"metadata": {"tenant_id": str(tenant_id)}},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        log.warning("stripe_call_failed", call="checkout.sessions.create", error=str(exc)[:200])
        raise stripe_api.StripeUnavailable() from exc
    log.info("checkout_started", checkout_session_id=session.id, plan=plan.name)
    return session.url


async def open_portal(tx: Tx, actor: Principal) -> str:
    """A Stripe billing portal session's URL (the route checks Action.MANAGE_BILLING)."""
    state = await repository.tenant_billing(tx, uuid.UUID(actor.tenant_id))
    if state is None or not state.stripe_customer_id:
        raise NoCustomer()
    try:
        session = await stripe_api.client().v1.billing_portal.sessions.create_async(
            params={
                "customer": state.stripe_customer_id,
                "return_url": get_settings().billing_return_url,
            }
        )
    except stripe.StripeError as exc:
        log.warning(
            "stripe_call_failed", call="billing_portal.sessions.create", error=str(exc)[:200]
        )
        raise stripe_api.StripeUnavailable() from exc
    return session.url


# --- the audit trail (owners: the route checks Action.READ_AUDIT) ------------------------------


async def audit_trail(tx: Tx, *, limit: int, before: int | None, action: str | None) -> AuditPage:
    rows = await repository.audit_page(tx, limit=limit + 1, before=before, action=action)
    page, more = rows[:limit], len(rows) > limit
    return AuditPage(
        items=[
            AuditEntry(
                id=row["id"],
                actor_id=str(row["actor_id"]) if row["actor_id"] else None,
                action=row["action"],
                subject=row["subject"],
                before=row["before_state"],
                after=row["after_state"],
                reason=row["reason"],
                trace_id=row["trace_id"],
                created_at=row["created_at"],
            )
            for row in page
        ],
        next_cursor=page[-1]["id"] if more and page else None,
    )
