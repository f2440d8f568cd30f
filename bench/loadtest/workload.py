"""Requests for the open-loop generator (bench/load.py): Stripe webhook deliveries with
deliberate duplicates, and a mixed tenant workload; each request with the status it must
get, so errors are counted per request (a 409 is right for an exact replay, wrong for a
read)."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import psycopg
from tests.support import stripe as stripe_wire

from bench import load
from bench.accounts import Account
from bench.http_rows import assessment_body
from bench.webhooks import make_events, pro_accounts

PLAN_QUOTA = 1000  # assessments per month on pro (PLAN_PRO_ASSESSMENTS_PER_MONTH default)
QUOTA_MARGIN = 0.9  # never plan to use more than this share of a tenant's quota
REDELIVERY_EVERY = 50  # 1 in 50 deliveries is Stripe redelivering an event: 200 "duplicate"
REPLAY_EVERY = 200  # 1 in 200 is the exact same signed delivery again: 409


@dataclass
class Tenant:
    account: Account
    customer: str
    assessment_ids: list[str] = field(default_factory=list)


@dataclass
class Batch:
    """Requests in sending order, and what each must get."""

    requests: list[bytes] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)  # webhooks: the distinct events sent
    ignored_ids: set[str] = field(default_factory=set)  # of those, types with no effect
    event_of: list[str] = field(default_factory=list)  # webhooks: each request's event id

    def add(self, request: bytes, expected: int, kind: str) -> None:
        self.requests.append(request)
        self.expected.append(expected)
        self.kinds.append(kind)

    def errors(self, status_of: list[int]) -> dict[str, int]:
        """Requests that did not get their expected status, by kind (0 = no answer)."""
        out: dict[str, int] = {}
        for kind, want, got in zip(self.kinds, self.expected, status_of, strict=True):
            if got != want:
                out[f"{kind}:{got}"] = out.get(f"{kind}:{got}", 0) + 1
        return out


def pro_tenants(api_url: str, superuser_url: str, secret: str, count: int, label: str
                ) -> list[Tenant]:
    """`count` pro tenants with bound Stripe customers (bench/webhooks.py `pro_accounts`):
    pro's quota and rate limits."""
    return [Tenant(account, customer) for account, customer
            in pro_accounts(api_url, superuser_url, secret, count, label)]


def tenants_for(creates: int) -> int:
    return max(1, math.ceil(creates / (PLAN_QUOTA * QUOTA_MARGIN)))


def seed_assessments(api_url: str, tenants: list[Tenant], per_tenant: int = 2) -> None:
    """Give each tenant assessments to read and attach evidence to."""
    body = assessment_body()
    with httpx.Client(base_url=api_url, timeout=60) as client:
        for tenant in tenants:
            for _ in range(per_tenant):
                answer = client.post("/api/v1/assessments", content=body, headers={
                    **tenant.account.headers, "Content-Type": "application/json"})
                if answer.status_code != 202:
                    raise RuntimeError(f"seeding an assessment: {answer.status_code} "
                                       f"{answer.text[:200]}")
                tenant.assessment_ids.append(answer.json()["id"])


# --- webhooks ------------------------------------------------------------------------------


class SignedAtSend(Sequence[bytes]):
    """Webhook deliveries signed when the generator takes each one to send it, as Stripe
    signs every attempt when it makes it: a delivery that waits in an overloaded run is
    refused for being late only if it really is (STRIPE_WEBHOOK_TOLERANCE_SECONDS), never
    because it was signed minutes before its turn. The generator takes them in order."""

    def __init__(self, host: str, port: int, secret: str, bodies: list[bytes],
                 plan: list[tuple[str, int]]) -> None:
        self.host, self.port, self.secret = host, port, secret
        self.bodies = bodies
        self.plan = plan  # per delivery: ("new"|"redelivery", body) or ("replay", delivery)
        self.made: list[bytes | None] = [None] * len(plan)
        self.signed_at: dict[int, int] = {}  # body → the timestamp its first delivery got

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.plan)):
            yield self[i]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        made = self.made[i]
        if made is None:
            made = self.made[i] = self._make(i)
        return made

    def _make(self, i: int) -> bytes:
        kind, ref = self.plan[i]
        if kind == "replay":  # the exact bytes of an earlier delivery
            return self[ref]
        now = int(time.time())
        if kind == "redelivery":  # signed afresh: another timestamp than the first one
            now = self.signed_at.get(ref, now + 1) - 1
        else:
            self.signed_at[ref] = now
        body = self.bodies[ref]
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": stripe_wire.sign(body, self.secret, now),
        }
        return load.build_request("POST", self.host, self.port, stripe_wire.PATH,
                                  headers=headers, body=body)


def webhook_batch(host: str, port: int, customers: list[str], count: int, secret: str,
                  seed: int) -> Batch:
    """`count` deliveries: distinct signed events (bench/webhooks.py's mix), with 1 in
    REDELIVERY_EVERY a redelivery of an earlier event (same id, signed afresh: 200, no second
    effect) and 1 in REPLAY_EVERY the exact bytes of an earlier delivery (409). The earlier
    one is `back` deliveries back (half a second at 1,000/s), so it has been answered."""
    duplicates = count // REDELIVERY_EVERY  # replay positions are among these
    originals = count - duplicates
    prebuilt, ids = make_events(port, customers, originals, secret, seed)
    bodies = [request.split(b"\r\n\r\n", 1)[1] for request in prebuilt]
    del prebuilt
    batch = Batch(event_ids=list(ids))
    batch.ignored_ids = {i for n, i in enumerate(ids) if n % 20 >= 18}  # make_events' mix
    back = max(1, min(500, originals // 10))  # deliveries between an original and its copy
    plan: list[tuple[str, int]] = []
    delivery_of: dict[int, int] = {}  # original → its delivery's position
    copied: set[int] = set()
    sent = 0
    for position in range(1, count + 1):
        duplicate = position % REDELIVERY_EVERY == 0 and sent >= back
        if not duplicate and sent < originals:
            delivery_of[sent] = len(plan)
            plan.append(("new", sent))
            batch.expected.append(200)
            batch.kinds.append("webhook")
            batch.event_of.append(ids[sent])
            sent += 1
            continue
        # A copy of an event sent about `back` deliveries ago, each event copied once.
        earlier = max(0, sent - back)
        while earlier in copied and earlier + 1 < sent:
            earlier += 1
        copied.add(earlier)
        batch.event_of.append(ids[earlier])
        if position % REPLAY_EVERY == 0:
            plan.append(("replay", delivery_of[earlier]))
            batch.expected.append(409)
            batch.kinds.append("webhook-replay")
        else:
            plan.append(("redelivery", earlier))
            batch.expected.append(200)
            batch.kinds.append("webhook-redelivery")
    batch.requests = SignedAtSend(host, port, secret, bodies, plan)  # type: ignore[assignment]
    return batch


def check_webhooks(superuser_url: str, batch: Batch, status_of: list[int]) -> dict[str, int]:
    """Ground truth in Postgres for the events of `batch`: each distinct event acknowledged
    is recorded exactly once (webhook_events, unique per provider and id), and each one with
    an effect wrote exactly one audit row (applied or refused as stale), never two, however
    often it was delivered."""
    acked = {
        batch.event_of[i]
        for i, status in enumerate(status_of) if status == 200 and batch.kinds[i] == "webhook"
    }
    ids = batch.event_ids
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        recorded = dict(conn.execute(
            "SELECT event_id, count(*) FROM webhook_events WHERE provider = 'stripe'"
            " AND event_id = ANY(%s) GROUP BY event_id", [ids]).fetchall())
        # A hash join on the event id (subject = "stripe:<type>:<event id>"), not one LIKE
        # per event and row: that took minutes for 60,000 events.
        audited = dict(conn.execute(
            "SELECT e.id, count(*) FROM audit_events a"
            " JOIN unnest(%s::text[]) AS e(id) ON split_part(a.subject, ':', 3) = e.id"
            " WHERE a.action IN ('billing_event_applied', 'billing_event_refused')"
            " AND a.subject LIKE 'stripe:%%' GROUP BY 1", [ids]).fetchall())
    effective = [i for i in acked if i not in batch.ignored_ids]
    return {
        "events": len(ids),
        "acknowledged": len(acked),
        "recorded_once": sum(1 for n in recorded.values() if n == 1),
        "lost": sum(1 for i in acked if i not in recorded),
        "doubled": sum(1 for n in recorded.values() if n > 1),
        "effects": sum(1 for i in effective if audited.get(i) == 1),
        "effects_missing": sum(1 for i in effective if i not in audited),
        "effects_doubled": sum(1 for n in audited.values() if n > 1),
        "redeliveries": batch.kinds.count("webhook-redelivery"),
        "replays": batch.kinds.count("webhook-replay"),
    }


# --- the mixed tenant workload -------------------------------------------------------------

# Share of each kind of request: reads dominate, as in a product's real traffic.
MIXED_WEIGHTS = {"read-one": 45, "list": 20, "me": 10, "create": 15, "upload": 10}


def _pdf(rng: random.Random) -> bytes:
    """A small PDF (sniffed by its bytes), different each time."""
    text = f"Rampart load evidence {rng.getrandbits(64):016x}"
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% " + text.encode()
            + b"\n" + b"0" * 512 + b"\n%%EOF\n")


def _multipart(payload: bytes, boundary: str) -> bytes:
    return (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"evidence.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    ).encode() + payload + f"\r\n--{boundary}--\r\n".encode()


def mixed_batch(host: str, port: int, tenants: list[Tenant], count: int, seed: int,
                weights: dict[str, int] | None = None) -> Batch:
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    weights = weights or MIXED_WEIGHTS
    kinds = list(weights)
    cumulative = list(weights.values())
    body = assessment_body()
    batch = Batch()
    for _ in range(count):
        kind = rng.choices(kinds, weights=cumulative)[0]
        tenant = rng.choice(tenants)
        auth = tenant.account.headers
        assessment = rng.choice(tenant.assessment_ids)
        if kind == "read-one":
            request = load.build_request("GET", host, port, f"/api/v1/assessments/{assessment}",
                                         headers=auth)
            batch.add(request, 200, kind)
        elif kind == "list":
            request = load.build_request("GET", host, port, "/api/v1/assessments?limit=20",
                                         headers=auth)
            batch.add(request, 200, kind)
        elif kind == "me":
            batch.add(load.build_request("GET", host, port, "/api/v1/me", headers=auth), 200, kind)
        elif kind == "create":
            request = load.build_request("POST", host, port, "/api/v1/assessments", body=body,
                                         headers={**auth, "Content-Type": "application/json"})
            batch.add(request, 202, kind)
        elif kind == "upload":
            boundary = f"rampartload{rng.getrandbits(48):012x}"
            request = load.build_request(
                "POST", host, port, f"/api/v1/assessments/{assessment}/evidence",
                body=_multipart(_pdf(rng), boundary),
                headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
            batch.add(request, 201, kind)
        else:
            raise ValueError(f"unknown request kind {kind}")
    return batch


def creates_in(count: int, weights: dict[str, int] | None = None) -> int:
    weights = weights or MIXED_WEIGHTS
    return math.ceil(count * weights.get("create", 0) / sum(weights.values()))


def json_dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
