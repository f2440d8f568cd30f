"""Sentry on the real app: an unhandled API error reaches a local Sentry receiver (real
envelope protocol) exactly once, tagged with the trace, tenant and user, and without the
caller's secrets. The worker's side is in tests/e2e/test_observability.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from fastapi import Body
from tests.support import httpclient
from tests.support.receivers import Receiver
from tests.support.server import serve_app
from tests.support.users import signup
from tests.support.wait import wait_until

from rampart.config import get_settings
from rampart.kit.security.auth import CurrentPrincipal

TRACE_ID = "5f1e2d3c4b5a69788796a5b4c3d2e1f0"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PASSWORD = "hunter2-very-secret-pw"
EMAIL = "victim.person@example.org"
COOKIE = "cookie-secret-value-0123456789"
STRIPE_SIGNATURE = (
    "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
)
STRIPE_KEY = "sk_live_51HmXfakefakefake0123456789"


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:
    """A Sentry receiver, and SENTRY_DSN pointing at it for apps created in the test."""
    with Receiver() as running:
        monkeypatch.setenv("SENTRY_DSN", running.sentry_dsn)
        get_settings.cache_clear()
        try:
            yield running
        finally:
            sentry_sdk.get_client().close(timeout=2)
            monkeypatch.delenv("SENTRY_DSN")
            sentry_sdk.init(dsn="")  # no DSN (not even from the env): nothing more is sent
            get_settings.cache_clear()


def paths(value: Any, needle: str, at: str = "") -> list[str]:
    """Where in an event a string occurs (for failure messages)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in paths(v, needle, f"{at}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in paths(v, needle, f"{at}[{i}]")]
    return [at] if needle in str(value) else []


def test_an_unhandled_api_error_reaches_sentry_once_tagged_and_without_secrets(client, receiver):
    from rampart.app import create_app

    account = signup(client)
    app = create_app()  # the real middleware stack, with Sentry on

    def explode(principal: CurrentPrincipal, body: dict = Body(...)) -> None:  # noqa: B008
        password = PASSWORD  # local variables are sent with the stack trace: scrubbed
        note = f"call {EMAIL}, api key {STRIPE_KEY}, password={password}"
        raise RuntimeError(f"kaboom while mailing {EMAIL} ({len(note)})")

    app.add_api_route("/explode", explode, methods=["POST"])
    with serve_app(app) as url:
        response = httpclient.post(
            f"{url}/explode",
            json={"email": EMAIL, "password": PASSWORD, "comment": f"my key is {STRIPE_KEY}"},
            headers={
                **account.headers,
                "Cookie": f"__Host-rampart_session={COOKIE}",
                "Stripe-Signature": STRIPE_SIGNATURE,
                "traceparent": TRACEPARENT,
            },
        )
    assert response.status_code == 500
    assert response.json()["error"]["trace_id"] == TRACE_ID
    assert not sentry_sdk.get_client().should_send_default_pii()
    sentry_sdk.flush(5)

    [event] = wait_until(receiver.events, 10, message="the Sentry event")
    # The server has stopped (every capture made), flush() returned once the SDK's queue was
    # sent, and the receiver records an envelope before it answers: an event sent twice
    # would be here already, no waiting to see that nothing more comes.
    assert len(receiver.events()) == 1, "the error reached Sentry more than once"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["trace_id"] == TRACE_ID
    assert event["contexts"]["trace"]["trace_id"] == TRACE_ID
    assert event["tags"]["tenant_id"] == account.tenant_id
    assert event["tags"]["user_id"] == account.user_id
    assert event["user"] == {"id": account.user_id}
    assert event["tags"]["service"] == "api"
    assert event["environment"] == "test" and event["release"] == get_settings().version

    raw = receiver.sentry_bodies().decode()
    for secret in (PASSWORD, EMAIL, COOKIE, STRIPE_SIGNATURE, STRIPE_KEY, account.token):
        assert secret not in raw, f"{secret[:12]}... reached Sentry at {paths(event, secret)}"
    headers = {k.lower() for k in (event.get("request", {}).get("headers") or {})}
    assert not headers & {"authorization", "cookie", "stripe-signature"}
    assert "email:" in raw  # emails arrive hashed: still correlatable, never readable
