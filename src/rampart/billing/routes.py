"""Webhook endpoints. Public by nature (Stripe holds no token): the signature is the
authentication, so nothing reads or parses the body before it has verified."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from rampart.billing import service, stripe_verification
from rampart.billing.schemas import AuditPage, BillingOut, CheckoutIn, RedirectOut, WebhookAck
from rampart.kit import idempotency
from rampart.kit.security.permissions import requires
from rampart.kit.security.principal import Principal
from rampart.kit.security.request_tx import AnonymousTx, TenantTx
from rampart.kit.security.roles import Action

# Owners and admins; reads need no confirmed email, writes do.
BillingReader = Annotated[
    Principal,
    requires(Action.MANAGE_BILLING, "Only owners and admins see billing.", verified=False),
]
BillingManager = Annotated[
    Principal, requires(Action.MANAGE_BILLING, "Only owners and admins manage billing.")
]
AuditReader = Annotated[
    Principal, requires(Action.READ_AUDIT, "Only owners read the audit trail.", verified=False)
]

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


async def _raw_body(request: Request) -> bytes:
    """The exact bytes Stripe signed."""
    return await request.body()


@router.post(
    "/stripe",
    response_model=WebhookAck,
    responses={
        400: {"description": "Signed, but not a valid Stripe event (`malformed_event`)."},
        401: {"description": "Stripe-Signature missing, wrong, or outside the time window."},
        409: {"description": "This exact delivery was received before (`webhook_replayed`)."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "id": "evt_1Example",
                        "object": "event",
                        "type": "checkout.session.completed",
                        "data": {
                            "object": {
                                "id": "cs_test_Example",
                                "object": "checkout.session",
                                "client_reference_id": "<your tenant id>",
                                "customer": "cus_Example",
                                "mode": "subscription",
                                "payment_status": "paid",
                            }
                        },
                    },
                }
            },
        }
    },
)
async def stripe_webhook(
    payload: Annotated[bytes, Depends(_raw_body)],
    tx: AnonymousTx,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    event, document = await stripe_verification.verify_stripe(payload, stripe_signature)
    return await service.handle_stripe_event(tx, event, document)


# --- the tenant's billing: plan, usage, Checkout, Portal -------------------------------------

account_router = APIRouter(prefix="/api/v1/billing", tags=["billing"])
_OWNERS_ADMINS = {403: {"description": "Only owners and admins see and manage billing."}}
_STRIPE_DOWN = {503: {"description": "Stripe did not answer (`stripe_unavailable`)."}}


@account_router.get("", response_model=BillingOut, responses=_OWNERS_ADMINS)
async def billing_overview(actor: BillingReader, tx: TenantTx) -> BillingOut:
    return await service.overview(tx, actor)


@account_router.post(
    "/checkout",
    response_model=RedirectOut,
    responses={**_OWNERS_ADMINS, **_STRIPE_DOWN, 409: {"description": "Already subscribed."}},
)
async def billing_checkout(
    data: CheckoutIn,
    actor: BillingManager,
    tx: TenantTx,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> RedirectOut:
    return RedirectOut(url=await service.start_checkout(tx, actor, data.plan, idempotency_key))


@account_router.post(
    "/portal",
    response_model=RedirectOut,
    responses={**_OWNERS_ADMINS, **_STRIPE_DOWN, 409: {"description": "No customer yet."}},
)
async def billing_portal(actor: BillingManager, tx: TenantTx) -> RedirectOut:
    return RedirectOut(url=await service.open_portal(tx, actor))


# --- the audit trail -----------------------------------------------------------------------

audit_router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@audit_router.get(
    "",
    response_model=AuditPage,
    responses={403: {"description": "Only owners read the audit trail."}},
)
async def audit_trail(
    _actor: AuditReader,
    tx: TenantTx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="`next_cursor` of a page.")
    ] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
) -> AuditPage:
    return await service.audit_trail(tx, limit=limit, before=cursor, action=action)
