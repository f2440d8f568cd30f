"""Stripe-signed webhook deliveries, made with Stripe's real signing scheme.

`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the whsec_
secret string>`. Written out here with hmac (not the SDK's helper) so the tests check the
server's verification against the scheme itself, not against the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx

PATH = "/api/v1/webhooks/stripe"


def signature(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `body`, as Stripe would send it."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(body, secret, t)}"


def event_id() -> str:
    return "evt_test" + secrets.token_hex(10)


def customer_id() -> str:
    return "cus_test" + secrets.token_hex(8)


def event(
    type: str, obj: dict[str, Any], *, id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    """A snapshot event as Stripe sends it (the fields we read, plus some we ignore)."""
    return {
        "id": id or event_id(),
        "object": "event",
        "api_version": "2024-06-20",
        "type": type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def body_of(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def deliver(
    client: httpx.Client,
    payload: dict[str, Any] | bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    header: str | None = None,
) -> httpx.Response:
    """POST one delivery, signed for `timestamp` (now) unless `header` is given."""
    body = body_of(payload)
    headers = {"content-type": "application/json"}
    headers["stripe-signature"] = header if header is not None else sign(body, secret, timestamp)
    return client.post(PATH, content=body, headers=headers)
