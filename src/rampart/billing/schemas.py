"""The parts of Stripe's event payloads we rely on (extra fields are ignored: Stripe adds
fields without notice) and the webhook's answer."""

from __future__ import annotations

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
    customer: StripeId
    status: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]


class Invoice(_Lenient):
    customer: StripeId | None = None


class WebhookAck(BaseModel):
    event_id: str
    outcome: Literal["applied", "no_effect", "duplicate"] = Field(
        description="applied: the event was applied to its tenant; no_effect: recorded, "
        "but for no known tenant, of a type we ignore, or older than what was applied; "
        "duplicate: this event id was processed before (a redelivery), nothing done."
    )
