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
from datetime import date, datetime
from typing import Any

import asyncpg

from rampart.kit.db.transaction import Tx

# Columns app_rw may update on tenants (migration 0010's column grants).
_BOOKKEEPING = frozenset(
    {
        "stripe_customer_id",
        "payment_failed_at",
        "billing_event_at",
        # migration 0015
        "subscription_id",
        "subscription_status",
        "current_period_end",
        "cancel_at_period_end",
    }
)
_STATE = (
    "id, plan, stripe_customer_id, payment_failed_at, billing_event_at, subscription_id,"
    " subscription_status, current_period_end, cancel_at_period_end"
)


@dataclass(frozen=True)
class TenantBilling:
    id: uuid.UUID
    plan: str
    stripe_customer_id: str | None
    payment_failed_at: datetime | None
    billing_event_at: datetime | None
    subscription_id: str | None = None
    subscription_status: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False

    def state(self) -> dict[str, Any]:
        """What the audit trail shows as before/after."""
        return {
            "plan": self.plan,
            "subscription_status": self.subscription_status,
            "payment_failed_at": self.payment_failed_at,
            "cancel_at_period_end": self.cancel_at_period_end,
            "current_period_end": self.current_period_end,
        }


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
        f"SELECT {_STATE} FROM tenants WHERE id = $1 FOR UPDATE",  # noqa: S608 - constants
        tenant_id,
    )
    return TenantBilling(*row) if row else None


async def tenant_billing(tx: Tx, tenant_id: uuid.UUID) -> TenantBilling | None:
    """The tenant's billing state, not locked (RLS: only under its own claims)."""
    row = await tx.fetchrow(
        f"SELECT {_STATE} FROM tenants WHERE id = $1",  # noqa: S608 - constants
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


# --- usage metering (usage_counters, migration 0015) --------------------------------------

# "No limit" as a number the counter can never reach.
UNLIMITED = 2**31 - 1


async def consume(
    tx: Tx, tenant_id: uuid.UUID, metric: str, period: date, limit: int | None
) -> int | None:
    """Count one unit unless the limit is reached: the new usage, or None (refused).

    One statement. The row lock it takes serializes concurrent callers of one tenant, and
    each one re-checks `used < limit` on the newest row: at limit - 1, exactly one wins.
    """
    if limit is not None and limit <= 0:
        return None
    return await tx.fetchval(
        "INSERT INTO usage_counters (tenant_id, metric, period_start, used)"
        " VALUES ($1, $2, $3, 1)"
        " ON CONFLICT (tenant_id, metric, period_start) DO UPDATE"
        " SET used = usage_counters.used + 1, updated_at = now()"
        " WHERE usage_counters.used < $4"
        " RETURNING used",
        tenant_id,
        metric,
        period,
        UNLIMITED if limit is None else limit,
    )


async def refund(tx: Tx, tenant_id: uuid.UUID, metric: str, period: date) -> None:
    await tx.execute(
        "UPDATE usage_counters SET used = greatest(used - 1, 0), updated_at = now()"
        " WHERE tenant_id = $1 AND metric = $2 AND period_start = $3",
        tenant_id,
        metric,
        period,
    )


async def usage(tx: Tx, tenant_id: uuid.UUID, period: date) -> dict[str, int]:
    rows = await tx.fetch(
        "SELECT metric, used FROM usage_counters WHERE tenant_id = $1 AND period_start = $2",
        tenant_id,
        period,
    )
    return {row["metric"]: row["used"] for row in rows}


# --- cross-tenant reads for background jobs (definer functions, migration 0015) ------------


async def billing_customers(tx: Tx) -> list[asyncpg.Record]:
    return await tx.fetch("SELECT * FROM app.billing_customers()")


async def grace_expired(tx: Tx, grace_seconds: int) -> list[uuid.UUID]:
    rows = await tx.fetch("SELECT tenant_id FROM app.billing_grace_expired($1)", grace_seconds)
    return [row["tenant_id"] for row in rows]


async def audit_page(
    tx: Tx, *, limit: int, before: int | None, action: str | None
) -> list[asyncpg.Record]:
    """The claims' tenant's audit rows, newest first (42501 unless the caller is an owner)."""
    return await tx.fetch("SELECT * FROM app.audit_page($1, $2, $3)", limit, before, action)
