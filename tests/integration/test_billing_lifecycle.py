"""The subscription lifecycle end to end on the real stack: the API on a real socket, the
real Postgres and Redis, and the fake Stripe (`rampart fake-stripe`, a real HTTP server
speaking Stripe's REST shapes) that the `stripe` SDK talks to and that signs and sends the
webhooks Stripe would send to the API.

signup (free) → quota hit (402) → checkout through the fake Stripe → webhooks → pro, quota
lifted → payment fails → past_due → grace over → free, data intact → paid again → pro →
a cancellation whose webhook is lost → reconciliation repairs the plan; every step in the
audit trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support import httpclient
from tests.support.db import su_value
from tests.support.server import scrape_api_metrics, serving
from tests.support.users import Account, answers, signup

from rampart.billing import service
from rampart.billing.fake_stripe import FakeStripeServer
from rampart.billing.reconcile import reconcile
from rampart.config import get_settings
from rampart.kit.jobs import loop

FREE_QUOTA = 2


@pytest.fixture(scope="module")
def fake_stripe(stack) -> Iterator[FakeStripeServer]:
    with FakeStripeServer() as server:
        yield server


@pytest.fixture(scope="module")
def api(stack, fake_stripe) -> Iterator[httpx.Client]:
    with serving(
        STRIPE_API_BASE=fake_stripe.url,
        PLAN_FREE_ASSESSMENTS_PER_MONTH=str(FREE_QUOTA),
        BILLING_GRACE_PERIOD_SECONDS="0",
        RATE_LIMIT_ENABLED="false",
    ) as client:
        fake_stripe.fake.webhook_url = f"{client.base_url}/api/v1/webhooks/stripe"
        fake_stripe.fake.webhook_secret = get_settings().stripe_webhook_secret.get_secret_value()
        yield client


def control(fake: FakeStripeServer, path: str, **body: Any) -> Any:
    response = httpclient.post(f"{fake.url}{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def create(api: httpx.Client, account: Account) -> httpx.Response:
    return api.post("/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers)


def plan(api: httpx.Client, account: Account) -> str:
    return api.get("/api/v1/me", headers=account.headers).json()["tenant"]["plan"]


def overview(api: httpx.Client, account: Account) -> dict:
    response = api.get("/api/v1/billing", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def audit_actions(api: httpx.Client, account: Account) -> list[tuple[str, str | None]]:
    response = api.get("/api/v1/audit?limit=200", headers=account.headers)
    assert response.status_code == 200, response.text
    return [(i["action"], i["subject"]) for i in reversed(response.json()["items"])]


def metric(name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(scrape_api_metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def checkout(api: httpx.Client, account: Account, key: str) -> str:
    response = api.post(
        "/api/v1/billing/checkout", json={}, headers={**account.headers, "Idempotency-Key": key}
    )
    assert response.status_code == 200, response.text
    return response.json()["url"]


def test_free_to_pro_to_past_due_to_free_and_a_lost_webhook_repaired(api, fake_stripe, superuser):
    account = signup(api, "Lifecycle")
    fake = fake_stripe.fake

    # Free: the quota is hit.
    for _ in range(FREE_QUOTA):
        assert create(api, account).status_code == 202
    assert create(api, account).status_code == 402

    # Checkout, created by us; a retry with the same key is the same session at Stripe.
    key = str(uuid.uuid4())
    url = checkout(api, account, key)
    assert checkout(api, account, key) == url
    session_id = url.rsplit("/", 1)[1]
    session = fake.sessions[session_id]
    assert session["client_reference_id"] == account.tenant_id
    assert session["customer"] and session["_price"] == get_settings().stripe_price_pro
    assert len(fake.customers) >= 1 and len([s for s in fake.sessions.values()]) >= 1

    # The customer pays: subscription created, checkout completed, invoice paid, all signed
    # and delivered to the API.
    events = control(fake_stripe, f"/_checkout/{session_id}/complete", status="active")
    assert [e["type"] for e in events] == [
        "customer.subscription.created",
        "checkout.session.completed",
        "invoice.paid",
    ]
    assert all(fake.delivered[e["id"]] for e in events)
    assert plan(api, account) == "pro"
    billing = overview(api, account)
    assert billing["subscription"]["status"] == "active"
    assert billing["subscription"]["customer"] is True
    assert billing["subscription"]["current_period_end"]
    assert create(api, account).status_code == 202  # quota lifted
    subscription_id = events[0]["data"]["object"]["id"]

    # The Customer Portal, for the bound customer.
    portal = api.post("/api/v1/billing/portal", headers=account.headers)
    assert portal.status_code == 200 and "billing.stripe.test" in portal.json()["url"]

    # Payment fails: past_due, still pro during the grace period.
    control(fake_stripe, f"/_subscriptions/{subscription_id}/payment_failed")
    billing = overview(api, account)
    assert billing["plan"] == "pro"
    assert billing["subscription"]["status"] == "past_due"
    assert billing["subscription"]["payment_failed_at"] and billing["subscription"]["grace_ends_at"]

    # The grace period (0 s here) is over: the job downgrades; the data stays readable.
    assert loop.run(service.expire_grace()) >= 1  # other tests' tenants may be due too
    assert loop.run(service.expire_grace()) == 0  # idempotent
    assert plan(api, account) == "free"
    listing = api.get("/api/v1/assessments", headers=account.headers)
    assert listing.status_code == 200 and len(listing.json()["items"]) == FREE_QUOTA + 1
    refused = create(api, account)
    assert refused.status_code == 402
    assert refused.json()["error"]["details"]["usage"] == FREE_QUOTA + 1

    # Paid after all: invoice.paid clears the flag, the subscription is active again → pro.
    control(fake_stripe, f"/_subscriptions/{subscription_id}/pay")
    billing = overview(api, account)
    assert billing["plan"] == "pro" and billing["subscription"]["payment_failed_at"] is None

    # A cancellation whose webhook is lost: still pro here, until reconciliation.
    control(fake_stripe, "/_drop", times=1)
    [lost] = control(fake_stripe, f"/_subscriptions/{subscription_id}/status", status="canceled")
    assert lost["type"] == "customer.subscription.deleted" and not fake.delivered[lost["id"]]
    assert plan(api, account) == "pro"
    repaired_before = metric("rampart_billing_reconcile_repaired_total", kind="subscription")

    report = loop.run(reconcile())

    assert lost["id"] in report.repaired
    assert plan(api, account) == "free"
    assert overview(api, account)["subscription"]["status"] == "canceled"
    after = metric("rampart_billing_reconcile_repaired_total", kind="subscription")
    assert after == repaired_before + 1
    assert loop.run(reconcile()).repaired == []  # a second run finds nothing to repair
    events = "SELECT count(*) FROM webhook_events WHERE event_id = %s"
    assert su_value(superuser, events, lost["id"]) == 1

    # Every step is in the audit trail.
    actions = audit_actions(api, account)
    names = [a for a, _ in actions]
    assert "quota_blocked" in names and "stripe_customer_bound" in names
    plan_changes = [s for a, s in actions if a == "plan_changed"]
    assert plan_changes == [
        "plan:free->pro",  # subscription created (active)
        "plan:pro->free",  # grace period over
        "plan:free->pro",  # paid again
        "plan:pro->free",  # the lost cancellation, repaired by reconciliation
    ]
    applied = [s for a, s in actions if a == "billing_event_applied"]
    for event_type in (
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    ):
        assert any(s.startswith(f"stripe:{event_type}:") for s in applied), event_type


def test_cancel_at_period_end_keeps_pro_until_stripe_deletes_the_subscription(api, fake_stripe):
    account = signup(api, "Cancel later")
    url = checkout(api, account, str(uuid.uuid4()))
    events = control(fake_stripe, f"/_checkout/{url.rsplit('/', 1)[1]}/complete", status="trialing")
    subscription_id = events[0]["data"]["object"]["id"]
    assert overview(api, account)["subscription"]["status"] == "trialing"
    assert plan(api, account) == "pro"

    # What the Customer Portal does: cancel at the end of the period (a real Stripe call).
    response = httpclient.post(
        f"{fake_stripe.url}/v1/subscriptions/{subscription_id}",
        data={"cancel_at_period_end": "true"},
        headers={"Authorization": "Bearer sk_test_x"},
    )
    assert response.status_code == 200, response.text
    billing = overview(api, account)
    assert billing["subscription"]["cancel_at_period_end"] is True and billing["plan"] == "pro"

    # The period ends: Stripe deletes the subscription.
    response = httpclient.delete(
        f"{fake_stripe.url}/v1/subscriptions/{subscription_id}",
        headers={"Authorization": "Bearer sk_test_x"},
    )
    assert response.status_code == 200, response.text
    assert plan(api, account) == "free"


def test_a_second_checkout_of_a_subscribed_tenant_is_refused(api, fake_stripe):
    account = signup(api, "Twice")
    url = checkout(api, account, str(uuid.uuid4()))
    control(fake_stripe, f"/_checkout/{url.rsplit('/', 1)[1]}/complete", status="active")
    again = api.post("/api/v1/billing/checkout", json={}, headers=account.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_subscribed"


def test_portal_without_a_customer_is_409(api):
    account = signup(api, "No customer")
    response = api.post("/api/v1/billing/portal", headers=account.headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_customer"


def test_the_relay_reports_tenants_by_plan_subscriptions_and_mrr(api, fake_stripe):
    from rampart.billing.metrics import BillingCollector
    from rampart.billing.plans import get as plan_of

    def gauges() -> dict[tuple[str, str], float]:
        return {
            (sample.name, next(iter(sample.labels.values()))): sample.value
            for family in BillingCollector().collect()
            for sample in family.samples
        }

    before = gauges()
    account = signup(api, "Gauges")
    url = checkout(api, account, str(uuid.uuid4()))
    control(fake_stripe, f"/_checkout/{url.rsplit('/', 1)[1]}/complete", status="active")
    after = gauges()

    assert after[("rampart_tenants", "pro")] == before.get(("rampart_tenants", "pro"), 0) + 1
    assert after[("rampart_subscriptions", "active")] == (
        before.get(("rampart_subscriptions", "active"), 0) + 1
    )
    assert after[("rampart_mrr_cents", "pro")] == (
        before.get(("rampart_mrr_cents", "pro"), 0) + plan_of("pro").monthly_price_cents
    )


def test_reconciliation_reports_drift_it_cannot_repair(api, fake_stripe):
    """A change Stripe sent no event for (older than the window, or made with events
    off): reconciliation reports it (metric, log) and guesses nothing."""
    account = signup(api, "Drift")
    url = checkout(api, account, str(uuid.uuid4()))
    events = control(fake_stripe, f"/_checkout/{url.rsplit('/', 1)[1]}/complete")
    subscription_id = events[0]["data"]["object"]["id"]
    with fake_stripe.fake.lock:  # Stripe's state moves on; no event says so
        fake_stripe.fake.subscriptions[subscription_id]["status"] = "unpaid"
    before = metric("rampart_billing_drift_total")

    report = loop.run(reconcile())

    mine = [d for d in report.drift if d["tenant_id"] == account.tenant_id]
    assert mine == [
        {
            "tenant_id": account.tenant_id,
            "customer": events[0]["data"]["object"]["customer"],
            "ours": "active",
            "plan": "pro",
            "stripe": "unpaid",
        }
    ]
    assert metric("rampart_billing_drift_total") >= before + 1
    assert plan(api, account) == "pro"  # reported, not guessed at
