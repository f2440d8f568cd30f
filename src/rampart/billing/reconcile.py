"""Reconciliation: Stripe is the source of truth; webhooks are how we usually hear of it.

A webhook can be lost for good (our endpoint down for longer than Stripe retries, a bug
that answered 2xx without applying, a secret rotated wrongly). Every run:

1. lists Stripe's events of the last BILLING_RECONCILE_WINDOW_SECONDS whose delivery did
   not succeed (`delivery_success=false`), oldest first, and passes each through the very
   path a webhook takes (`service.handle_stripe_event`: recorded once per event id, older
   events never overwrite newer state) — an event we did apply is a `duplicate`, one we
   missed is applied now and counted as repaired
   (`rampart_billing_reconcile_repaired_total{kind}`);
2. compares each bound customer's newest Stripe subscription with the status we hold;
   what still differs is drift (`rampart_billing_drift_total`, log `billing_drift`): left
   to a human (docs/runbooks/billing-reconciliation-drift.md), never guessed at;
3. downgrades tenants whose grace period after a failed payment is over
   (`service.expire_grace`).

Run it on a schedule (`rampart billing-reconcile --every 900`) or once from cron; several
runs at once are safe (every effect is idempotent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import stripe
import structlog
from pydantic import ValidationError

from rampart.billing import repository, service, stripe_api
from rampart.billing.metrics import (
    BILLING_DRIFT,
    BILLING_RECONCILE_REPAIRED,
    BILLING_RECONCILE_RUNS,
)
from rampart.billing.schemas import StripeEvent
from rampart.billing.stripe_verification import MalformedEvent
from rampart.config import get_settings
from rampart.kit import context
from rampart.kit.db.transaction import transaction
from rampart.kit.errors import AppError
from rampart.kit.logging import get_logger

log = get_logger(__name__)


@dataclass
class Report:
    events_seen: int = 0
    repaired: list[str] = field(default_factory=list)  # event ids applied now
    drift: list[dict[str, Any]] = field(default_factory=list)
    downgraded: int = 0


def _kind(event_type: str) -> str:
    prefix = event_type.split(".")[0]
    if event_type.startswith("customer.subscription."):
        return "subscription"
    return {"checkout": "checkout", "invoice": "invoice"}.get(prefix, "other")


async def _undelivered_events(client: stripe.StripeClient, since: int) -> list[dict]:
    found: list[dict] = []
    params: dict[str, Any] = {"created": {"gte": since}, "delivery_success": False, "limit": 100}
    while True:
        page = await client.v1.events.list_async(params=params)  # type: ignore[arg-type]
        found.extend(event.to_dict() for event in page.data)
        if not page.has_more or not page.data:
            break
        params["starting_after"] = page.data[-1].id
    found.sort(key=lambda event: (event["created"], event["id"]))
    return found


async def _apply_missed(events: list[dict], report: Report) -> None:
    for document in events:
        try:
            event = StripeEvent.model_validate(document)
        except ValidationError as exc:  # one odd event must not stop the others
            log.error("billing_event_unreadable", event_id=document.get("id"), error=str(exc)[:300])
            continue
        # Its own trace id: the audit rows it writes say which run applied it.
        with structlog.contextvars.bound_contextvars(
            trace_id=context.new_trace_id(), reconciliation=True
        ):
            try:
                async with transaction(None) as tx:
                    ack = await service.handle_stripe_event(tx, event, document)
            except MalformedEvent as exc:
                log.error("billing_event_unreadable", event_id=event.id, error=exc.message)
                continue
            if ack.outcome == "applied":
                report.repaired.append(event.id)
                BILLING_RECONCILE_REPAIRED.labels(_kind(event.type)).inc()
                log.warning("billing_event_repaired", event_id=event.id, type=event.type)


async def _compare_subscriptions(client: stripe.StripeClient, report: Report) -> None:
    async with transaction(None) as tx:
        customers = await repository.billing_customers(tx)
    for row in customers:
        page = await client.v1.subscriptions.list_async(
            params={"customer": row["stripe_customer_id"], "status": "all", "limit": 1}
        )
        theirs = page.data[0].status if page.data else None
        ours = row["subscription_status"]
        implied = service.SUBSCRIPTION_PLANS.get(theirs or "")
        # A tenant bound before subscriptions were stored (status NULL) is drift only when
        # its plan contradicts Stripe's status.
        plan_wrong = implied is not None and implied != row["plan"]
        if theirs is not None and (plan_wrong or (ours is not None and theirs != ours)):
            drift = {
                "tenant_id": str(row["tenant_id"]),
                "customer": row["stripe_customer_id"],
                "ours": ours,
                "plan": row["plan"],
                "stripe": theirs,
            }
            report.drift.append(drift)
            BILLING_DRIFT.inc()
            log.error("billing_drift", **drift)


async def reconcile(window_seconds: int | None = None) -> Report:
    """One reconciliation run (see the module docstring)."""
    settings = get_settings()
    window = window_seconds or settings.billing_reconcile_window_seconds
    report = Report()
    try:
        client = stripe_api.client()
        events = await _undelivered_events(client, int(time.time()) - window)
        report.events_seen = len(events)
        await _apply_missed(events, report)
        await _compare_subscriptions(client, report)
        report.downgraded = await service.expire_grace()
    except AppError as exc:  # Stripe or the database unavailable, billing not configured
        BILLING_RECONCILE_RUNS.labels("failed").inc()
        log.error("billing_reconcile_failed", code=exc.code, error=exc.message)
        raise
    except Exception:
        BILLING_RECONCILE_RUNS.labels("failed").inc()
        log.exception("billing_reconcile_failed")
        raise
    BILLING_RECONCILE_RUNS.labels("ok").inc()
    log.info(
        "billing_reconciled",
        events_seen=report.events_seen,
        repaired=len(report.repaired),
        drift=len(report.drift),
        downgraded=report.downgraded,
    )
    return report
