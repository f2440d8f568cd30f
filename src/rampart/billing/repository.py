"""All SQL of billing.

The webhook does not know its tenant up front, so two steps go through SECURITY DEFINER
functions (cross-tenant path 4): recording the event (`app.webhook_event_record`) and
finding the tenant of a Stripe customer (`app.stripe_customer_tenant`). Everything else
runs under RLS with the claims of the tenant the event names; the plan itself changes only
through `app.tenant_set_plan`, which writes the billing_events row (migration 0010).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rampart.kit.db.transaction import Tx

# Columns app_rw may update on tenants (migration 0010's column grants).
_BOOKKEEPING = frozenset({"stripe_customer_id", "payment_failed_at", "billing_event_at"})


@dataclass(frozen=True)
class TenantBilling:
    id: uuid.UUID
    plan: str
    stripe_customer_id: str | None
    payment_failed_at: datetime | None
    billing_event_at: datetime | None


async def record_event(
    tx: Tx,
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
    return bool(
        await tx.fetchval(
            "SELECT app.webhook_event_record($1, $2, $3, $4, $5)",
            provider,
            event_id,
            type,
            tenant_id,
            payload,
        )
    )


async def tenant_for_customer(tx: Tx, customer_id: str) -> uuid.UUID | None:
    return await tx.fetchval("SELECT app.stripe_customer_tenant($1)", customer_id)


async def lock_tenant(tx: Tx, tenant_id: uuid.UUID) -> TenantBilling | None:
    """The tenant's billing state, locked until commit (RLS: only under its own claims)."""
    row = await tx.fetchrow(
        "SELECT id, plan, stripe_customer_id, payment_failed_at, billing_event_at"
        " FROM tenants WHERE id = $1 FOR UPDATE",
        tenant_id,
    )
    return TenantBilling(*row) if row else None


async def update_tenant(tx: Tx, tenant_id: uuid.UUID, values: dict[str, Any]) -> None:
    if not _BOOKKEEPING.issuperset(values):
        raise ValueError(f"not a billing bookkeeping column: {sorted(set(values) - _BOOKKEEPING)}")
    names = list(values)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    await tx.execute(
        f"UPDATE tenants SET {assignments} WHERE id = $1",  # noqa: S608 - checked names
        tenant_id,
        *values.values(),
    )


async def set_plan(tx: Tx, plan: str, event_id: str, trace_id: str | None) -> str:
    """Change the claims' tenant's plan and write its billing_events row; the old plan."""
    return await tx.fetchval("SELECT app.tenant_set_plan($1, $2, $3)", plan, event_id, trace_id)
