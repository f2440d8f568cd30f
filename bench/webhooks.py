"""Stripe webhook ingest (POST /api/v1/webhooks/stripe: verify the signature, the replay
nonce in Redis, the event row deduplicated by (provider, event_id), the tenant's update),
open loop at fixed arrival rates, then a check in Postgres that every event sent was
recorded exactly once.

Every request is a distinct event, signed with Stripe's real scheme (tests/support/
stripe.py) and prepared before its window. The mix: 45 % `invoice.paid` and 45 %
`customer.subscription.updated` for bench tenants whose Stripe customer was bound by a
`checkout.session.completed` first (so they find their tenant, lock it and update it),
10 % types Rampart ignores (recorded, no effect).
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable

import httpx
import psycopg
from tests.support import stripe as stripe_wire

from bench import load
from bench.accounts import Account, signup
from bench.procs import Proc

HOST = "127.0.0.1"
IGNORED_TYPES = ("customer.created", "payment_intent.succeeded", "charge.succeeded")
SUBSCRIPTION_STATUSES = ("active", "active", "active", "trialing", "past_due")


def new_secret() -> str:
    return "whsec_bench" + secrets.token_hex(16)


def _invoice(customer: str, rng: random.Random) -> dict:
    amount = rng.choice((900, 2900, 9900))
    now = int(time.time())
    return {
        "id": "in_bench" + secrets.token_hex(8),
        "object": "invoice",
        "account_country": "US",
        "account_name": "Rampart Inc.",
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": False,
        "created": now - 3600,
        "customer": customer,
        "customer_address": None,
        "customer_name": "Bench Customer",
        "number": f"BENCH-{rng.randrange(10**6):06d}",
        "payment_intent": "pi_bench" + secrets.token_hex(8),
        "period_start": now - 2_592_000,
        "period_end": now,
        "status": "paid",
        "status_transitions": {"finalized_at": now - 3600, "paid_at": now - 60,
                               "marked_uncollectible_at": None, "voided_at": None},
        "paid": True,
        "currency": "usd",
        "subtotal": amount,
        "tax": None,
        "total": amount,
        "amount_due": amount,
        "amount_paid": amount,
        "amount_remaining": 0,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "customer_email": "billing@example.com",
        "webhooks_delivered_at": now - 3590,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_bench/test_" + "x" * 40,
        "lines": {
            "object": "list",
            "data": [{
                "id": "il_bench" + secrets.token_hex(8),
                "object": "line_item",
                "amount": amount,
                "currency": "usd",
                "description": "1 × Rampart Pro (at $29.00 / month)",
                "period": {"start": int(time.time()) - 2_592_000, "end": int(time.time())},
                "price": {"id": "price_bench_pro", "object": "price", "unit_amount": amount,
                          "recurring": {"interval": "month", "interval_count": 1}},
                "quantity": 1,
            }],
            "has_more": False,
            "total_count": 1,
        },
        "subscription": "sub_bench" + customer[-8:],
    }


def _subscription(customer: str, rng: random.Random) -> dict:
    now = int(time.time())
    return {
        "id": "sub_bench" + customer[-8:],
        "object": "subscription",
        "customer": customer,
        "status": rng.choice(SUBSCRIPTION_STATUSES),
        "cancel_at_period_end": False,
        "collection_method": "charge_automatically",
        "currency": "usd",
        "current_period_start": now - 86_400,
        "current_period_end": now + 2_505_600,
        "items": {
            "object": "list",
            "data": [{
                "id": "si_bench" + secrets.token_hex(6),
                "object": "subscription_item",
                "price": {"id": "price_bench_pro", "object": "price", "unit_amount": 2900,
                          "currency": "usd",
                          "recurring": {"interval": "month", "interval_count": 1}},
                "quantity": 1,
            }],
        },
        "latest_invoice": "in_bench" + secrets.token_hex(8),
    }


def _other(customer: str, type_: str) -> dict:
    return {"id": "obj_bench" + secrets.token_hex(8), "object": type_.split(".")[0],
            "customer": customer, "amount": 2900, "currency": "usd",
            "description": "Rampart Pro", "metadata": {}}


def make_events(
    port: int, customers: list[str], count: int, secret: str, seed: int
) -> tuple[list[bytes], list[str]]:
    """`count` signed deliveries: (requests for the load generator, their event ids)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    requests, ids = [], []
    for i in range(count):
        customer = rng.choice(customers)
        slot = i % 20
        if slot < 9:
            kind, obj = "invoice.paid", _invoice(customer, rng)
        elif slot < 18:
            kind, obj = "customer.subscription.updated", _subscription(customer, rng)
        else:
            kind = IGNORED_TYPES[i % len(IGNORED_TYPES)]
            obj = _other(customer, kind)
        event = stripe_wire.event(kind, obj, id=f"evt_bench{seed}x{i}x{secrets.token_hex(6)}")
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": stripe_wire.sign(body, secret),
        }
        requests.append(load.build_request("POST", HOST, port, stripe_wire.PATH,
                                           headers=headers, body=body))
        ids.append(event["id"])
    return requests, ids


def pro_accounts(base_url: str, admin_url: str, secret: str, count: int, label: str
                 ) -> list[tuple[Account, str]]:
    """`count` tenants signed up through the API, each moved to pro by a signed
    checkout.session.completed that binds its Stripe customer: (account, customer id)."""
    bound = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for n in range(count):
            account = signup(base_url, admin_url, f"{label}-{n}")
            customer = f"cus_{n:04d}{secrets.token_hex(6)}"
            checkout = {"id": "cs_" + secrets.token_hex(8), "object": "checkout.session",
                        "client_reference_id": account.tenant_id, "customer": customer,
                        "mode": "subscription", "payment_status": "paid"}
            response = stripe_wire.deliver(
                client, stripe_wire.event("checkout.session.completed", checkout), secret
            )
            if response.status_code != 200 or response.json().get("outcome") != "applied":
                raise RuntimeError(f"binding a customer: {response.status_code} "
                                   f"{response.text[:200]}")
            bound.append((account, customer))
    return bound


def check_recorded(admin_url: str, ids: list[str], statuses: list[int]) -> dict[str, int]:
    """Each event sent against the rows Postgres holds for it. Lost: acknowledged (200) but
    not recorded; doubled: recorded twice or more; refused: any other answer, or none (Stripe
    delivers those again, so they are errors, not losses)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id, count(*) FROM webhook_events"
            " WHERE provider = 'stripe' AND event_id = ANY(%s) GROUP BY event_id",
            [ids],
        ).fetchall()
    counts = {event_id: n for event_id, n in rows}
    acked = [event_id for event_id, status in zip(ids, statuses, strict=True) if status == 200]
    return {
        "sent": len(ids),
        "acknowledged": len(acked),
        "refused": len(ids) - len(acked),
        "recorded_once": sum(1 for n in counts.values() if n == 1),
        "lost": sum(1 for event_id in acked if event_id not in counts),
        "doubled": sum(1 for n in counts.values() if n > 1),
    }


def measure_webhooks(
    *,
    api: Proc,
    api_port: int,
    admin_url: str,
    secret: str,
    watch: dict[str, list[int]],
    rates: list[int],
    duration_s: float,
    connections: int,
    tenants: int,
    status: Callable[[str], object],
) -> dict:
    """{"tenants", "rows": [one per rate: LoadResult dict + the exactly-once check]}"""
    base_url = f"http://{HOST}:{api_port}"
    with status(f"webhooks: {tenants} tenants with bound Stripe customers..."):
        customers = [c for _, c in pro_accounts(base_url, admin_url, secret, tenants,
                                                   "bench-billing")]
    target = load.Target("POST /api/v1/webhooks/stripe", HOST, api_port, b"", expect_status=200)
    with status("webhooks: warm-up, 1 s at 200/s..."):
        warm, _ = make_events(api_port, customers, 200, secret, seed=0)
        load.run(load.run_open_loop(target, warm, rate=200, connections=connections))
    rows = []
    for rate in rates:
        count = round(rate * duration_s)
        requests, ids = make_events(api_port, customers, count, secret, seed=rate)
        with status(f"webhooks: {count} events at {rate}/s, open loop..."):
            result = load.run(
                load.run_open_loop(
                    target, requests, rate=rate, connections=connections,
                    watch_pids={"server": [api.pid], **watch},
                )
            )
        if not api.alive():
            raise RuntimeError(f"the API died under webhook load:\n{api.tail()}")
        events = check_recorded(admin_url, ids, result.status_of or [])
        rows.append({**result.as_dict(), "events": events})
    return {"tenants": tenants, "connections": connections, "duration_s": duration_s,
            "rows": rows}
