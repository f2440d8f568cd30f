"""Stripe webhook verification and replay protection, in the order they run:

1. Signature: the `stripe` SDK verifies `Stripe-Signature` (HMAC-SHA256 of "<t>.<raw body>"
   keyed with STRIPE_WEBHOOK_SECRET) over the raw body bytes, and refuses a timestamp
   older than the tolerance. Missing or bad → 401.
2. Timestamp from the future: the SDK accepts any; beyond the tolerance → 401, so the
   window is symmetric and a nonce never has to outlive it by more than one tolerance.
3. Parse: strict JSON (no NaN) into the event envelope; bad → 400. Nothing is parsed
   before the signature has verified.
4. Exact replay: the same signed content (timestamp and body, i.e. the same valid v1
   signature) seen before → 409. Its digest is a Redis nonce (`SET NX`) that lives for
   twice the tolerance plus a minute: longer than the delivery can stay inside the window.
   The parsed timestamp is used, so rewriting the header (`t=0123`, extra or reordered
   `v1=` entries) does not make a replay new. Stripe signs every delivery attempt afresh,
   so its own retries are never 409.

Redis down: step 4 is skipped (logged) and the request goes on; the unique
(provider, event_id) row in Postgres still makes a redelivered event a no-op, so a replay
can never have a second effect. It then gets 200 `duplicate` instead of 409.
"""

from __future__ import annotations

import hashlib
import time
from typing import NoReturn

import pydantic_core
import redis
import stripe
from pydantic import ValidationError

from rampart.billing.metrics import WEBHOOK_DELIVERIES
from rampart.billing.schemas import StripeEvent
from rampart.config import get_settings
from rampart.kit import redis_clients
from rampart.kit.errors import BadRequest, Conflict, Unauthorized
from rampart.kit.logging import get_logger

log = get_logger(__name__)

PROVIDER = "stripe"
NONCE_PREFIX = "rampart:webhook:stripe:nonce:"
NONCE_MARGIN_SECONDS = 60


class InvalidSignature(Unauthorized):
    code, message = "invalid_signature", "The Stripe-Signature header does not verify."


class ReplayedDelivery(Conflict):
    code, message = "webhook_replayed", "This exact webhook delivery was received before."


class MalformedEvent(BadRequest):
    code, message = "malformed_event", "The webhook body is not a valid Stripe event."


def _reject(error: InvalidSignature | MalformedEvent | ReplayedDelivery, outcome: str) -> NoReturn:
    WEBHOOK_DELIVERIES.labels(PROVIDER, outcome).inc()
    log.warning("webhook_rejected", provider=PROVIDER, outcome=outcome, reason=error.message)
    raise error


def signed_timestamp(header: str) -> int:
    """The `t=` of a header that verified, parsed exactly as the SDK parses it."""
    items = [item.split("=", 2) for item in header.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


async def verify_stripe(payload: bytes, header: str | None) -> tuple[StripeEvent, dict]:
    """The verified event and its full JSON document, or a 401/400/409 AppError."""
    settings = get_settings()
    tolerance = settings.stripe_webhook_tolerance_seconds
    if not header:
        _reject(InvalidSignature("Missing Stripe-Signature header."), "bad_signature")
    try:
        stripe.WebhookSignature.verify_header(
            payload, header, settings.stripe_webhook_secret.get_secret_value(), tolerance
        )
    except stripe.SignatureVerificationError as exc:
        _reject(InvalidSignature(f"Stripe-Signature: {exc.user_message}"), "bad_signature")
    except UnicodeDecodeError:  # Stripe signs UTF-8 text; these bytes cannot be it
        _reject(MalformedEvent("The webhook body is not UTF-8."), "malformed")
    timestamp = signed_timestamp(header)
    if timestamp > time.time() + tolerance:
        _reject(
            InvalidSignature(f"Stripe-Signature: timestamp more than {tolerance}s in the future"),
            "bad_signature",
        )
    event, document = parse_event(payload)
    await claim_delivery(timestamp, payload, ttl=2 * tolerance + NONCE_MARGIN_SECONDS)
    return event, document


def parse_event(payload: bytes) -> tuple[StripeEvent, dict]:
    """Strict JSON (no NaN, no lone surrogates) into the event envelope, or 400."""
    try:
        document = pydantic_core.from_json(payload, allow_inf_nan=False)
    except ValueError:
        _reject(MalformedEvent("The webhook body is not valid JSON."), "malformed")
    try:
        return StripeEvent.model_validate(document), document
    except ValidationError as exc:
        _reject(MalformedEvent(details=problems(exc)), "malformed")


def problems(exc: ValidationError, under: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The `[{field, problem}]` details of a failed validation; fields are dotted paths
    below `under` (the part of the event that was validated)."""
    return [
        {"field": ".".join([*under, *(str(p) for p in e["loc"])]) or "body", "problem": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


async def claim_delivery(timestamp: int, payload: bytes, ttl: int) -> None:
    """Remember this signed delivery; ReplayedDelivery if it was remembered already."""
    key = NONCE_PREFIX + hashlib.sha256(b"%d." % timestamp + payload).hexdigest()
    try:
        # Short timeouts: a sick Redis must not hold Stripe's request (it times out at 20 s).
        client = redis_clients.shared(get_settings().require("redis_url"), redis_clients.REQUEST)
        fresh = await client.set(key, b"1", nx=True, ex=ttl)
    except (redis.RedisError, OSError) as exc:
        # Safe without it: the (provider, event_id) row makes a replay a no-op.
        log.warning("webhook_nonce_unavailable", provider=PROVIDER, error=str(exc)[:200])
        return
    if not fresh:
        _reject(ReplayedDelivery(), "replayed")
