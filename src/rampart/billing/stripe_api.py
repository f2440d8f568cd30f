"""The Stripe API client: the official SDK, async over httpx, pointed at STRIPE_API_BASE
(the fake Stripe in dev and tests) or at Stripe itself when a real key is set."""

from __future__ import annotations

import asyncio
from functools import lru_cache

import stripe

from rampart.config import get_settings
from rampart.kit.errors import ServiceUnavailable

# Any `sk_` key works with the fake; Stripe itself refuses it.
FAKE_KEY = "sk_test_rampart_fake"


class StripeUnavailable(ServiceUnavailable):
    code = "stripe_unavailable"
    message = "The payment provider is unavailable; retry shortly."


class BillingNotConfigured(ServiceUnavailable):
    code = "billing_not_configured"
    message = "Billing is not configured here (no STRIPE_API_KEY or STRIPE_API_BASE)."


def client() -> stripe.StripeClient:
    settings = get_settings()
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    if key is None and not settings.stripe_api_base:
        raise BillingNotConfigured()
    # One client per event loop: its httpx connection pool belongs to the loop it was made
    # in (the API's, the job loop's, each `asyncio.run` of the reconcile command).
    loop = id(asyncio.get_running_loop())
    return _client(key or FAKE_KEY, settings.stripe_api_base, settings.stripe_timeout_seconds, loop)


@lru_cache(maxsize=8)
def _client(key: str, base: str | None, timeout: float, _loop: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": base} if base else None,
        http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True),
        max_network_retries=2,  # the SDK reuses the call's idempotency key on retries
    )


def forget_clients() -> None:
    """Drop the cached clients (before their event loop closes)."""
    _client.cache_clear()
