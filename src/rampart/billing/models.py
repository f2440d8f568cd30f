"""Billing tables. Created by migrations/versions/0003_billing.py; these mirror them.

`webhook_events` has no model on purpose: app_rw has no privilege on it and reaches it
only through `app.webhook_event_record` (see repository.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, FetchedValue, String, column, func, table
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from rampart.kit.db.base import Base


class BillingEvent(Base):
    """One plan change. Append-only: the database refuses UPDATE and DELETE."""

    __tablename__ = "billing_events"
    # app_rw may INSERT but not SELECT these rows: never ask for RETURNING.
    __table_args__ = {"implicit_returning": False}

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, server_default=FetchedValue(), autoincrement=False
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    from_plan: Mapped[str] = mapped_column(String)
    to_plan: Mapped[str] = mapped_column(String)
    stripe_event_id: Mapped[str] = mapped_column(String)
    trace_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The billing columns of `tenants` (accounts owns the table and its model; billing owns
# these columns): a lightweight table clause, so the two mappings cannot collide.
tenant_billing = table(
    "tenants",
    column("id", UUID(as_uuid=True)),
    column("plan", String),
    column("stripe_customer_id", String),
    column("payment_failed_at", DateTime(timezone=True)),
    column("billing_event_at", DateTime(timezone=True)),
)
