"""The parts of Stripe's event payloads we rely on (extra fields are ignored: Stripe adds
fields without notice) and the webhook's answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

# Stripe object ids (`evt_…`, `cus_…`): letters, digits, underscores.
StripeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,255}$")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EventData(_Lenient):
    object: dict[str, Any]


class StripeEvent(_Lenient):
    """A snapshot event: `data.object` is the object as it was when the event happened."""

    id: Annotated[str, Field(pattern=r"^evt_[A-Za-z0-9_]{1,250}$")]
    type: Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,255}$")]
    # Bounded to what a datetime can hold (year 9999).
    created: StrictInt = Field(ge=0, le=253_402_300_799, description="Unix time of the event.")
    data: EventData


class CheckoutSession(_Lenient):
    # We set it to the tenant id when creating the Checkout Session; anything else is
    # an unknown tenant, not an error.
    client_reference_id: str | None = Field(None, max_length=255)
    customer: StripeId | None = None


class Subscription(_Lenient):
    id: StripeId | None = None
    customer: StripeId
    status: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]
    current_period_end: StrictInt | None = Field(None, ge=0, le=253_402_300_799)
    cancel_at_period_end: bool | None = None


class Invoice(_Lenient):
    customer: StripeId | None = None


class WebhookAck(BaseModel):
    event_id: str
    outcome: Literal["applied", "no_effect", "duplicate"] = Field(
        description="applied: the event was applied to its tenant; no_effect: recorded, "
        "but for no known tenant, of a type we ignore, or older than what was applied; "
        "duplicate: this event id was processed before (a redelivery), nothing done."
    )


# --- GET /api/v1/billing ----------------------------------------------------------------------


class UsageOut(BaseModel):
    metric: str = Field(description="What is counted, e.g. `assessments` (per calendar month).")
    used: int
    limit: int | None = Field(description="The plan's limit; null: unlimited.")
    remaining: int | None
    warning: bool = Field(description="At or above 80 % of the limit.")
    exceeded: bool = Field(description="At the limit: creating more answers 402.")
    reset_at: datetime


class PlanLimits(BaseModel):
    assessments_per_month: int | None
    members: int | None
    evidence_bytes: int
    llm_providers: list[str]


class SubscriptionOut(BaseModel):
    status: str | None = Field(
        description="Stripe's subscription status (active, trialing, past_due, canceled, "
        "unpaid, ...); null: never subscribed."
    )
    customer: bool = Field(description="Whether the tenant is bound to a Stripe customer.")
    current_period_end: datetime | None
    cancel_at_period_end: bool
    payment_failed_at: datetime | None
    grace_ends_at: datetime | None = Field(
        description="When a failed payment not paid by then downgrades the tenant to free."
    )


class BillingOut(BaseModel):
    plan: Literal["free", "pro"]
    limits: PlanLimits
    period_start: date
    period_end: datetime
    usage: list[UsageOut]
    subscription: SubscriptionOut


class CheckoutIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"plan": "pro"}})

    plan: Literal["pro"] = Field("pro", description="The plan to subscribe to.")


class RedirectOut(BaseModel):
    url: str = Field(description="Send the browser here (Stripe Checkout or the Portal).")


# --- GET /api/v1/audit -------------------------------------------------------------------------


class AuditEntry(BaseModel):
    id: int
    actor_id: str | None = Field(description="The user who acted; null: Stripe or a job.")
    action: str
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    trace_id: str | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None = Field(description="Pass as `cursor` for older rows; null: last.")
