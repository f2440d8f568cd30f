"""All SQL of billing.

The webhook does not know its tenant up front, so two steps go through SECURITY DEFINER
functions (cross-tenant path 4): recording the event (`app.webhook_event_record`) and
finding the tenant of a Stripe customer (`app.stripe_customer_tenant`). Everything else
runs under RLS with the claims of the tenant the event names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from rampart.billing.models import BillingEvent, tenant_billing
from rampart.kit import context


@dataclass(frozen=True)
class TenantBilling:
    id: uuid.UUID
    plan: str
    stripe_customer_id: str | None
    payment_failed_at: datetime | None
    billing_event_at: datetime | None


_RECORD = text(
    "SELECT app.webhook_event_record(:provider, :event_id, :type, :tenant_id, :payload)"
).bindparams(bindparam("payload", type_=JSONB))


def record_event(
    session: Session,
    *,
    provider: str,
    event_id: str,
    type: str,
    tenant_id: uuid.UUID | None,
    payload: dict[str, Any],
) -> bool:
    """Record a delivered event; False when (provider, event_id) was recorded before.

    A concurrent delivery of the same event waits on the unique index until the first
    commits, then gets False: one effect per event id, whatever the timing.
    """
    params = {
        "provider": provider,
        "event_id": event_id,
        "type": type,
        "tenant_id": tenant_id,
        "payload": payload,
    }
    return bool(session.execute(_RECORD, params).scalar_one())


def tenant_for_customer(session: Session, customer_id: str) -> uuid.UUID | None:
    return session.execute(
        text("SELECT app.stripe_customer_tenant(:customer_id)"), {"customer_id": customer_id}
    ).scalar_one()


def lock_tenant(session: Session, tenant_id: uuid.UUID) -> TenantBilling | None:
    """The tenant's billing state, locked until commit (RLS: only under its own claims)."""
    row = session.execute(
        select(
            tenant_billing.c.id,
            tenant_billing.c.plan,
            tenant_billing.c.stripe_customer_id,
            tenant_billing.c.payment_failed_at,
            tenant_billing.c.billing_event_at,
        )
        .where(tenant_billing.c.id == tenant_id)
        .with_for_update()
    ).first()
    return TenantBilling(*row) if row else None


def update_tenant(session: Session, tenant_id: uuid.UUID, values: dict[str, Any]) -> None:
    session.execute(update(tenant_billing).where(tenant_billing.c.id == tenant_id).values(**values))


def append_billing_event(
    session: Session, *, tenant_id: uuid.UUID, from_plan: str, to_plan: str, event_id: str
) -> None:
    session.execute(
        insert(BillingEvent).values(
            tenant_id=tenant_id,
            from_plan=from_plan,
            to_plan=to_plan,
            stripe_event_id=event_id,
            trace_id=context.current("trace_id"),
        )
    )
