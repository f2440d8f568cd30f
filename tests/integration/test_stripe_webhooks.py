"""Stripe webhooks over real HTTP: signature, time window, replay and redelivery, effects,
and the append-only billing history, on the real Postgres and Redis.

Deliveries are signed with Stripe's real scheme (tests/support/stripe.py). What the API
answers is checked together with what the stores hold: the tenant's plan through the API
(`/me`), its billing columns and the event rows as superuser (ground truth, bypassing RLS:
app_rw may not read webhook_events at all), billing_events as readonly_audit, nonces in
Redis, counters on the API's metrics listener.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from psycopg import errors
from pydantic import ValidationError
from tests.support import httpclient
from tests.support import stripe as stripe_support
from tests.support.db import app_rw, libpq_conninfo, su_rows, su_value
from tests.support.server import scrape_api_metrics
from tests.support.stripe import customer_id, deliver, event, event_id, sign
from tests.support.users import Account, signup

from rampart.billing.stripe_verification import NONCE_PREFIX
from rampart.config import Settings, get_settings

ENVELOPE_KEYS = {"code", "message", "details", "trace_id"}


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def secret(stack) -> str:
    return get_settings().stripe_webhook_secret.get_secret_value()


@pytest.fixture(scope="module")
def tolerance(stack) -> int:
    return get_settings().stripe_webhook_tolerance_seconds


def event_rows(superuser: str, evt: str) -> list[tuple]:
    return su_rows(
        superuser,
        "SELECT type, tenant_id, payload->>'id' FROM webhook_events"
        " WHERE provider = 'stripe' AND event_id = %s",
        evt,
    )


def webhook_event_count(superuser: str) -> int:
    return su_value(superuser, "SELECT count(*) FROM webhook_events")


def billing(superuser: str, account: Account) -> dict[str, Any]:
    row = su_rows(
        superuser,
        "SELECT plan, stripe_customer_id, payment_failed_at, billing_event_at"
        " FROM tenants WHERE id = %s",
        account.tenant_id,
    )[0]
    return dict(zip(("plan", "customer", "payment_failed_at", "billing_event_at"), row))


@contextmanager
def as_role(superuser: str, role: str) -> Iterator[psycopg.Connection]:
    """readonly_audit is NOLOGIN (granted to people): a superuser session switches to it;
    from then on only that role's privileges and policies apply. Always rolled back."""
    with psycopg.connect(superuser) as conn:
        conn.execute(f"SET ROLE {role}")
        try:
            yield conn
        finally:
            conn.rollback()


def billing_events(superuser: str, account: Account) -> list[tuple]:
    """The tenant's plan history, read as readonly_audit (the role meant to read it)."""
    with as_role(superuser, "readonly_audit") as conn:
        return conn.execute(
            "SELECT from_plan, to_plan, stripe_event_id, trace_id FROM billing_events"
            " WHERE tenant_id = %s ORDER BY id",
            (account.tenant_id,),
        ).fetchall()


def plan(client: httpx.Client, account: Account) -> str:
    response = client.get("/api/v1/me", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["tenant"]["plan"]


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(scrape_api_metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def checkout(account: Account, customer: str, **kw: Any) -> dict[str, Any]:
    obj = {
        "id": "cs_test_" + uuid.uuid4().hex,
        "object": "checkout.session",
        "client_reference_id": account.tenant_id,
        "customer": customer,
        "mode": "subscription",
        "payment_status": "paid",
    }
    return event("checkout.session.completed", obj, **kw)


def subscription(customer: str, status: str, deleted: bool = False, **kw: Any) -> dict:
    obj = {"id": "sub_" + uuid.uuid4().hex, "object": "subscription", "customer": customer}
    obj["status"] = status
    kind = "deleted" if deleted else "updated"
    return event(f"customer.subscription.{kind}", obj, **kw)


def invoice(customer: str, paid: bool, **kw: Any) -> dict:
    obj = {"id": "in_" + uuid.uuid4().hex, "object": "invoice", "customer": customer}
    return event("invoice.paid" if paid else "invoice.payment_failed", obj, **kw)


def ok(response: httpx.Response, outcome: str) -> dict:
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == outcome, response.text
    return response.json()


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"code", "message", "trace_id"} <= set(error) <= ENVELOPE_KEYS
    assert error["code"] == code
    assert error["trace_id"] == response.headers["x-request-id"]
    return error


@pytest.fixture
def customer_tenant(client, secret) -> tuple[Account, str]:
    """A tenant on pro, bound to a fresh Stripe customer by a completed checkout."""
    account, customer = signup(client, "Billing"), customer_id()
    ok(deliver(client, checkout(account, customer), secret), "applied")
    return account, customer


# --- effects ------------------------------------------------------------------------------


def test_checkout_completed_makes_the_tenant_pro_and_appends_one_billing_event(
    client, secret, superuser
):
    account, customer = signup(client, "Checkout"), customer_id()
    assert plan(client, account) == "free"
    before = metric(client, "rampart_plan_changes_total", from_plan="free", to_plan="pro")
    payload = checkout(account, customer)

    response = deliver(client, payload, secret)

    assert ok(response, "applied")["event_id"] == payload["id"]
    assert plan(client, account) == "pro"
    assert billing(superuser, account)["customer"] == customer
    assert billing_events(superuser, account) == [
        ("free", "pro", payload["id"], response.headers["x-request-id"])
    ]
    assert event_rows(superuser, payload["id"]) == [
        ("checkout.session.completed", uuid.UUID(account.tenant_id), payload["id"])
    ]
    after = metric(client, "rampart_plan_changes_total", from_plan="free", to_plan="pro")
    assert after == before + 1


@pytest.mark.parametrize(
    ("status", "start", "expected"),
    [
        ("active", "free", "pro"),
        ("trialing", "free", "pro"),
        ("canceled", "pro", "free"),
        ("unpaid", "pro", "free"),
        ("incomplete_expired", "pro", "free"),
        ("past_due", "pro", "pro"),
        ("past_due", "free", "free"),
        ("incomplete", "free", "free"),
    ],
)
def test_subscription_updated_moves_the_plan_with_the_status(
    client, secret, superuser, customer_tenant, status, start, expected
):
    account, customer = customer_tenant
    if start == "free":
        ok(deliver(client, subscription(customer, "canceled", deleted=True), secret), "applied")
    assert plan(client, account) == start
    history = billing_events(superuser, account)

    ok(deliver(client, subscription(customer, status), secret), "applied")

    assert plan(client, account) == expected
    new_rows = billing_events(superuser, account)[len(history) :]
    assert [(f, t) for f, t, _, _ in new_rows] == ([(start, expected)] if start != expected else [])


def test_subscription_deleted_makes_the_tenant_free(client, secret, superuser, customer_tenant):
    account, customer = customer_tenant
    payload = subscription(customer, "canceled", deleted=True)

    ok(deliver(client, payload, secret), "applied")

    assert plan(client, account) == "free"
    assert billing_events(superuser, account)[-1][:3] == ("pro", "free", payload["id"])


def test_payment_failed_flags_the_tenant_and_a_later_paid_invoice_clears_it(
    client, secret, superuser, customer_tenant
):
    account, customer = customer_tenant
    now = int(time.time())
    history = billing_events(superuser, account)
    failed = invoice(customer, paid=False, created=now)

    ok(deliver(client, failed, secret), "applied")

    flagged = billing(superuser, account)["payment_failed_at"]
    assert flagged is not None and int(flagged.timestamp()) == now
    assert event_rows(superuser, failed["id"]) == [
        ("invoice.payment_failed", uuid.UUID(account.tenant_id), failed["id"])
    ]
    assert plan(client, account) == "pro"  # flagged only: the plan follows the subscription
    # A paid invoice from before the failure (delivered late) leaves the flag up.
    ok(deliver(client, invoice(customer, paid=True, created=now - 60), secret), "applied")
    assert billing(superuser, account)["payment_failed_at"] == flagged
    ok(deliver(client, invoice(customer, paid=True, created=now + 1), secret), "applied")
    assert billing(superuser, account)["payment_failed_at"] is None
    assert billing_events(superuser, account) == history  # no plan change, no billing event


def test_unknown_event_type_is_recorded_and_changes_nothing(client, secret, superuser):
    account = signup(client, "Unknown type")
    payload = event("customer.created", {"id": customer_id(), "object": "customer"})

    ok(deliver(client, payload, secret), "no_effect")

    assert event_rows(superuser, payload["id"]) == [("customer.created", None, payload["id"])]
    assert plan(client, account) == "free"


# Stable ids: under xdist every worker must collect the same test names.
@pytest.mark.parametrize(
    "reference",
    [pytest.param(str(uuid.uuid4()), id="unknown-uuid"), "not-a-tenant-id", None],
)
def test_checkout_for_an_unknown_tenant_is_recorded_and_changes_nothing(
    client, secret, superuser, reference
):
    bystander = signup(client, "Bystander")
    payload = checkout(bystander, customer_id())
    payload["data"]["object"]["client_reference_id"] = reference

    ok(deliver(client, payload, secret), "no_effect")

    assert event_rows(superuser, payload["id"]) == [
        ("checkout.session.completed", None, payload["id"])
    ]
    assert plan(client, bystander) == "free"
    assert billing_events(superuser, bystander) == []


def test_subscription_of_an_unknown_customer_is_recorded_and_changes_nothing(
    client, secret, superuser
):
    payload = subscription(customer_id(), "canceled", deleted=True)
    before = metric(client, "rampart_plan_changes_total", from_plan="pro", to_plan="free")

    ok(deliver(client, payload, secret), "no_effect")

    assert event_rows(superuser, payload["id"])[0][1] is None
    assert metric(client, "rampart_plan_changes_total", from_plan="pro", to_plan="free") == before


def test_a_plan_event_older_than_the_last_applied_changes_nothing(
    client, secret, superuser, customer_tenant
):
    """Stripe delivers in any order: an `active` update from before the cancellation,
    arriving after it, must not give the plan back."""
    account, customer = customer_tenant
    now = int(time.time())
    ok(
        deliver(client, subscription(customer, "canceled", deleted=True, created=now), secret),
        "applied",
    )
    late = subscription(customer, "active", created=now - 30)

    ok(deliver(client, late, secret), "no_effect")

    assert plan(client, account) == "free"
    assert event_rows(superuser, late["id"])  # recorded all the same


def test_checkout_with_a_customer_bound_to_another_tenant_changes_nothing(
    client, secret, superuser, customer_tenant
):
    _, taken = customer_tenant
    other = signup(client, "Other")

    ok(deliver(client, checkout(other, taken), secret), "no_effect")

    assert plan(client, other) == "free"
    assert billing(superuser, other)["customer"] is None


def test_a_bound_tenant_keeps_its_customer_and_a_cancel_of_another_leaves_its_plan(
    client, secret, superuser, customer_tenant
):
    """A second checkout (or a forged client_reference_id from a Payment Link) must not
    rebind the tenant: otherwise cancelling the attacker's subscription drops the victim to
    free. The conflict is recorded, counted (alerted on) and changes nothing."""
    victim, bound = customer_tenant
    conflicts = metric(client, "rampart_billing_customer_conflicts_total")
    attacker = customer_id()
    forged = checkout(victim, attacker)

    ok(deliver(client, forged, secret), "no_effect")
    ok(deliver(client, subscription(attacker, "canceled", deleted=True), secret), "no_effect")

    assert billing(superuser, victim)["customer"] == bound
    assert plan(client, victim) == "pro"
    assert event_rows(superuser, forged["id"])  # recorded all the same
    assert metric(client, "rampart_billing_customer_conflicts_total") == conflicts + 1


# --- signature and time window ------------------------------------------------------------


def _nothing_recorded(superuser: str, before: int) -> None:
    assert webhook_event_count(superuser) == before


def test_missing_signature_is_401_and_nothing_is_recorded(client, secret, superuser):
    before = webhook_event_count(superuser)
    body = json.dumps(event("invoice.paid", {"customer": customer_id()})).encode()

    response = client.post(stripe_support.PATH, content=body)

    assert_envelope(response, 401, "invalid_signature")
    _nothing_recorded(superuser, before)


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda body, secret: sign(body, "whsec_not_our_secret"), id="wrong-secret"),
        pytest.param(lambda body, secret: sign(body + b" ", secret), id="other-body"),
        pytest.param(
            lambda body, secret: sign(body, secret).replace("v1=", "v0="), id="v0-scheme-only"
        ),
        pytest.param(lambda body, secret: "garbage", id="garbage"),
        pytest.param(lambda body, secret: "t=abc,v1=00", id="bad-timestamp"),
        pytest.param(lambda body, secret: sign(body, secret).split(",")[1], id="no-timestamp"),
        pytest.param(lambda body, secret: sign(body, secret)[:-2] + "zz", id="signature-altered"),
    ],
)
def test_a_signature_that_does_not_verify_is_401_and_nothing_is_recorded(
    client, secret, superuser, customer_tenant, make_header
):
    account, customer = customer_tenant
    before = webhook_event_count(superuser)
    payload = subscription(customer, "canceled", deleted=True)
    body = json.dumps(payload).encode()

    response = deliver(client, body, secret, header=make_header(body, secret))

    assert_envelope(response, 401, "invalid_signature")
    _nothing_recorded(superuser, before)
    assert plan(client, account) == "pro"


@pytest.mark.parametrize("direction", [-1, 1], ids=["too-old", "too-far-in-the-future"])
def test_a_timestamp_outside_the_tolerance_is_401(
    client, secret, superuser, customer_tenant, tolerance, direction
):
    account, customer = customer_tenant
    before = webhook_event_count(superuser)
    timestamp = int(time.time()) + direction * (tolerance + 30)

    response = deliver(
        client, subscription(customer, "canceled", deleted=True), secret, timestamp=timestamp
    )

    assert_envelope(response, 401, "invalid_signature")
    _nothing_recorded(superuser, before)
    assert plan(client, account) == "pro"


def test_a_timestamp_inside_the_tolerance_either_way_is_accepted(
    client, secret, customer_tenant, tolerance
):
    _, customer = customer_tenant
    for offset in (-(tolerance - 30), tolerance - 30):
        payload = invoice(customer, paid=True)
        ok(deliver(client, payload, secret, timestamp=int(time.time()) + offset), "applied")


# --- replay and redelivery ----------------------------------------------------------------


def test_an_exact_replay_is_409_and_has_no_second_effect(
    client, secret, superuser, customer_tenant, stack, tolerance
):
    account, customer = customer_tenant
    body = json.dumps(subscription(customer, "canceled", deleted=True)).encode()
    header = sign(body, secret)
    ok(deliver(client, body, secret, header=header), "applied")
    history = billing_events(superuser, account)

    # The same delivery, byte for byte; then with the header rewritten around the same
    # valid signature (zero-padded t, an extra v1, reordered): still the same delivery.
    t, v1 = header.split(",")
    rewritten = [header, f"t=0{t[2:]},{v1}", f"{v1},v1=deadbeef,{t}"]
    for replay in rewritten:
        assert_envelope(deliver(client, body, secret, header=replay), 409, "webhook_replayed")

    assert billing_events(superuser, account) == history
    nonce = NONCE_PREFIX + hashlib.sha256(f"{t[2:]}.".encode() + body).hexdigest()
    ttl = redis.Redis.from_url(stack.env["REDIS_URL"]).ttl(nonce)
    assert 2 * tolerance < ttl <= 2 * tolerance + 60  # outlives the window both ways


def test_a_redelivered_event_is_200_duplicate_and_has_no_second_effect(client, secret, superuser):
    """Stripe retries for days: same event id, new timestamp and signature. All three
    events share one `created` second, so only the event-id dedupe can stop the replay."""
    account, customer = signup(client, "Redelivery"), customer_id()
    now = int(time.time())
    upgrade = checkout(account, customer, created=now)
    ok(deliver(client, upgrade, secret, timestamp=now - 5), "applied")
    ok(
        deliver(client, subscription(customer, "canceled", deleted=True, created=now), secret),
        "applied",
    )
    assert plan(client, account) == "free"

    ok(deliver(client, upgrade, secret, timestamp=now), "duplicate")

    assert plan(client, account) == "free"
    assert [(f, t) for f, t, _, _ in billing_events(superuser, account)] == [
        ("free", "pro"),
        ("pro", "free"),
    ]
    assert len(event_rows(superuser, upgrade["id"])) == 1


def test_concurrent_deliveries_of_one_event_apply_it_exactly_once(api, secret, superuser):
    with httpclient.client(base_url=api, timeout=30) as http:
        account = signup(http, "Concurrent")
    payload = checkout(account, customer_id())
    outcomes: list[str] = []
    # One clock reading for all: read per thread, a second boundary between two threads
    # can give two of them the same timestamp, i.e. the same signed delivery (a 409 replay).
    now = int(time.time())

    def send(offset: int) -> None:
        with httpclient.client(base_url=api, timeout=30) as http:
            response = deliver(http, payload, secret, timestamp=now - offset)
            outcomes.append(response.json().get("outcome", str(response.status_code)))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 5
    assert len(billing_events(superuser, account)) == 1


def test_with_redis_down_a_replay_is_still_only_a_duplicate(
    client, secret, superuser, customer_tenant, stack
):
    """No nonce store, no 409: the (provider, event_id) row in Postgres still stops it."""
    if stack.redis is None:
        pytest.skip("needs the embedded Redis to stop it")
    account, customer = customer_tenant
    now = int(time.time())
    body = json.dumps(subscription(customer, "canceled", deleted=True, created=now)).encode()
    header = sign(body, secret)
    stack.redis.stop()
    try:
        ok(deliver(client, body, secret, header=header), "applied")
        ok(deliver(client, checkout(account, customer, created=now), secret), "applied")
        ok(deliver(client, body, secret, header=header), "duplicate")
    finally:
        stack.redis.start()
    assert plan(client, account) == "pro"  # the replayed cancellation did nothing
    assert [(f, t) for f, t, _, _ in billing_events(superuser, account)][-2:] == [
        ("pro", "free"),
        ("free", "pro"),
    ]


# --- bad input: 4xx envelope, never 500, nothing recorded -------------------------------


BAD_BODIES = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"[]", id="array"),
    pytest.param(b"null", id="null"),
    pytest.param(b'{"id": "evt_1", "type": "x", "created": NaN, "data": {"object": {}}}', id="nan"),
    pytest.param(b'{"type": "invoice.paid", "created": 1, "data": {"object": {}}}', id="no-id"),
    pytest.param(
        b'{"id": "evt_1 OR 1=1", "type": "invoice.paid", "created": 1, "data": {"object": {}}}',
        id="bad-id",
    ),
    pytest.param(
        b'{"id": "evt_1", "type": "invoice.paid", "created": "1", "data": {"object": {}}}',
        id="created-as-string",
    ),
    pytest.param(b'{"id": "evt_1", "type": "invoice.paid", "created": 1, "data": []}', id="data"),
    pytest.param(
        b'{"id": "evt_1", "type": "invoice.paid", "created": 1e20, "data": {"object": {}}}',
        id="created-float",
    ),
    pytest.param(
        b'{"id": "evt_1", "type": "x", "created": 99999999999999, "data": {"object": {}}}',
        id="created-beyond-year-9999",
    ),
    pytest.param(
        b'{"id": "evt_ab\\ud800", "type": "x", "created": 1, "data": {"object": {}}}',
        id="lone-surrogate",
    ),
    pytest.param('{"id": "évt"}'.encode("latin-1"), id="not-utf8"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_signed_body_that_is_not_a_stripe_event_is_400(client, secret, superuser, body):
    before = webhook_event_count(superuser)

    response = deliver(client, body, secret)

    assert_envelope(response, 400, "malformed_event")
    _nothing_recorded(superuser, before)


@pytest.mark.parametrize(
    ("type", "obj"),
    [
        ("customer.subscription.updated", {"status": "active"}),
        ("customer.subscription.updated", {"customer": {"id": "cus_1"}, "status": "active"}),
        ("customer.subscription.deleted", {"customer": "cus_1", "status": 7}),
        ("invoice.paid", {"customer": "cus_1\u0000"}),
        ("checkout.session.completed", {"client_reference_id": "x" * 300}),
        # Valid JSON that jsonb cannot store: refused as the payload, not a 500.
        ("customer.created", {"name": "nul \u0000 inside"}),
    ],
)
def test_an_event_whose_object_lacks_what_its_type_needs_is_400(
    client, secret, superuser, type, obj
):
    before = webhook_event_count(superuser)

    response = deliver(client, event(type, obj), secret)

    assert_envelope(response, 400, "malformed_event")
    _nothing_recorded(superuser, before)


def test_a_bad_body_with_a_bad_signature_is_401_not_400(client, superuser):
    """Authentication first: an unsigned client learns nothing about our parsing."""
    response = deliver(client, b"{not json", "whsec_not_our_secret")
    assert_envelope(response, 401, "invalid_signature")


def test_rejected_deliveries_are_counted_by_outcome(client, secret):
    before = metric(
        client, "rampart_webhook_deliveries_total", provider="stripe", outcome="bad_signature"
    )
    deliver(client, b"{}", "whsec_not_our_secret")
    after = metric(
        client, "rampart_webhook_deliveries_total", provider="stripe", outcome="bad_signature"
    )
    assert after == before + 1


# --- the database: append-only history, the cross-tenant functions, who reads what -------


@pytest.fixture
def billed(client, secret, superuser) -> Account:
    account = signup(client, "Billed")
    ok(deliver(client, checkout(account, customer_id()), secret), "applied")
    assert len(billing_events(superuser, account)) == 1
    return account


@pytest.mark.parametrize("who", ["owner", "superuser"])
@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            "UPDATE billing_events SET to_plan = 'free' WHERE tenant_id = %s", id="update"
        ),
        pytest.param("DELETE FROM billing_events WHERE tenant_id = %s", id="delete"),
        pytest.param("TRUNCATE billing_events", id="truncate"),
    ],
)
def test_billing_events_refuse_update_delete_and_truncate_even_for_owner_and_superuser(
    billed, superuser, statement, who
):
    """The owner (migration role) and a superuser hold every privilege; the trigger still
    refuses. (app_rw is not even granted UPDATE or DELETE: see below.)"""
    conninfo = (
        superuser if who == "superuser" else libpq_conninfo(os.environ["MIGRATION_DATABASE_URL"])
    )
    with psycopg.connect(conninfo) as conn:
        params = (billed.tenant_id,) if "%s" in statement else ()
        refused = f"billing_events is append-only: {statement.split()[0]} refused"
        with pytest.raises(errors.InsufficientPrivilege, match=refused):
            conn.execute(statement, params)
    assert [r[:2] for r in billing_events(superuser, billed)] == [("free", "pro")]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("SELECT count(*) FROM billing_events", id="read-billing-events"),
        pytest.param("UPDATE billing_events SET to_plan = 'free'", id="update-billing-events"),
        pytest.param("DELETE FROM billing_events", id="delete-billing-events"),
        pytest.param("SELECT count(*) FROM webhook_events", id="read-webhook-events"),
        pytest.param(
            "INSERT INTO webhook_events (provider, event_id, type, payload)"
            " VALUES ('stripe', 'evt_forged', 'x', '{}')",
            id="write-webhook-events",
        ),
        pytest.param("UPDATE webhook_events SET type = 'x'", id="update-webhook-events"),
    ],
)
def test_app_rw_has_no_privilege_beyond_inserting_billing_events(billed, statement):
    claims = {"tenant_id": billed.tenant_id, "role": "service"}
    with (
        app_rw(claims) as conn,
        pytest.raises(errors.InsufficientPrivilege, match="permission denied"),
    ):
        conn.execute(statement)


def test_app_rw_may_insert_billing_events_for_the_claimed_tenant_only(billed, client):
    other = signup(client, "Victim")
    sql = (
        "INSERT INTO billing_events (tenant_id, from_plan, to_plan, stripe_event_id)"
        " VALUES (%s, 'free', 'pro', %s)"
    )
    with app_rw({"tenant_id": billed.tenant_id, "role": "service"}) as conn:
        assert conn.execute(sql, (billed.tenant_id, event_id())).rowcount == 1  # control
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(sql, (other.tenant_id, event_id()))


def test_readonly_audit_reads_every_tenants_billing_events_but_not_webhook_payloads(
    client, secret, superuser
):
    a, b = signup(client, "Audit A"), signup(client, "Audit B")
    for account in (a, b):
        ok(deliver(client, checkout(account, customer_id()), secret), "applied")
    with as_role(superuser, "readonly_audit") as conn:
        tenants = {str(r[0]) for r in conn.execute("SELECT tenant_id FROM billing_events")}
        assert {a.tenant_id, b.tenant_id} <= tenants
    with (
        as_role(superuser, "readonly_audit") as conn,
        pytest.raises(errors.InsufficientPrivilege, match="permission denied"),
    ):
        conn.execute("SELECT count(*) FROM webhook_events")


def test_stripe_customer_tenant_matches_one_exact_customer_id_only(customer_tenant):
    account, customer = customer_tenant
    with app_rw() as conn:  # no claims: the webhook does not know the tenant yet
        lookup = "SELECT app.stripe_customer_tenant(%s)"
        assert conn.execute(lookup, (customer,)).fetchone()[0] == uuid.UUID(account.tenant_id)
        for probe in ("cus_%", "%", customer.upper(), customer + " ", "", customer_id()):
            assert conn.execute(lookup, (probe,)).fetchone()[0] is None


def test_webhook_event_record_inserts_once_and_returns_no_rows(superuser):
    evt = event_id()
    record = "SELECT app.webhook_event_record('stripe', %s, 'x.y', NULL, '{}'::jsonb)"
    with psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"])) as conn:
        assert conn.execute(record, (evt,)).fetchone()[0] is True
        assert conn.execute(record, (evt,)).fetchone()[0] is False
        conn.rollback()
    assert event_rows(superuser, evt) == []


# --- settings -----------------------------------------------------------------------------

PROD = {"jwt_secret": "s" * 40, "database_url": "postgresql://x", "redis_url": "redis://x"}


def test_outside_dev_the_default_webhook_secret_is_refused_by_name(monkeypatch):
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET: not set"):
        Settings(env="production", **PROD)


def test_outside_dev_a_webhook_secret_that_is_not_whsec_is_refused():
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET: not a webhook signing"):
        Settings(env="production", stripe_webhook_secret="sk_live_" + "x" * 30, **PROD)


def test_outside_dev_a_real_webhook_secret_is_accepted():
    try:
        Settings(env="staging", stripe_webhook_secret="whsec_" + "x" * 32, **PROD)
    except ValidationError as exc:  # other settings may have their own demands
        assert "STRIPE_WEBHOOK_SECRET" not in str(exc)
