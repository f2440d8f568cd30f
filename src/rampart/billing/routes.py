"""Webhook endpoints. Public by nature (Stripe holds no token): the signature is the
authentication, so nothing reads or parses the body before it has verified."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from rampart.billing import service, stripe_verification
from rampart.billing.schemas import WebhookAck
from rampart.kit.security.request_tx import AnonymousTx

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
