"""A local fake Stripe: the REST shapes Rampart uses, and the webhooks Stripe would send.

For tests, demos and `make up` (``rampart fake-stripe``): no network, no account. The
`stripe` SDK talks to it unchanged (STRIPE_API_BASE); it answers in Stripe's shapes
(form-encoded requests with bracketed keys, `{"object": "list", "data": [...],
"has_more"}` lists, `{"error": {"type", "message"}}` errors, `Idempotency-Key` replays) and
signs each webhook with Stripe's scheme (`Stripe-Signature: t=...,v1=HMAC-SHA256("t.body")`
keyed with the `whsec_` secret) before POSTing it to the webhook URL.

Stripe API (what we call)
    POST /v1/customers                         create a customer
    GET  /v1/customers/{id}
    POST /v1/checkout/sessions                 create a Checkout Session (mode subscription)
    GET  /v1/checkout/sessions/{id}
    POST /v1/billing_portal/sessions           create a Customer Portal session
    GET  /v1/subscriptions?customer=&status=   list; GET /v1/subscriptions/{id}
    POST /v1/subscriptions/{id}                update (cancel_at_period_end)
    DELETE /v1/subscriptions/{id}              cancel now
    GET  /v1/events?created[gte]=&delivery_success=&type=&limit=&starting_after=

What a customer or Stripe would do (control endpoints, like the fake LLM's `/_faults`)
    POST /_checkout/{session}/complete {"status": "active"|"trialing"}: the customer pays:
         customer.subscription.created, checkout.session.completed, invoice.paid
    POST /_subscriptions/{id}/payment_failed: invoice.payment_failed, subscription past_due
    POST /_subscriptions/{id}/pay: invoice.paid, subscription active
    POST /_subscriptions/{id}/status {"status": "unpaid"|...}: customer.subscription.updated
    POST /_drop {"times": N}: the next N webhooks are not delivered (as if our endpoint was
         down); they stay listable with `delivery_success=false`
    GET  /_events: every event and whether it was delivered
    POST /_config {"webhook_url", "webhook_secret"}; POST /_reset

Events are delivered synchronously by the control request that causes them, in the order
listed; an event's `created` is never before an earlier event's (consumers order by it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from rampart.kit.tls import certifi_context

API_VERSION = "2024-06-20"
PERIOD_SECONDS = 30 * 86400


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, following in itertools.zip_longest(parts, parts[1:]):
            last = following is None
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = [] if following.isdigit() else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if following.isdigit() else {})
    return root


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class StripeError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_


class FakeStripe:
    """The state and the behaviour, without HTTP (the server below wraps it)."""

    def __init__(self, webhook_url: str | None = None, webhook_secret: str | None = None):
        self.lock = threading.RLock()
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.customers: dict[str, dict] = {}
            self.sessions: dict[str, dict] = {}
            self.subscriptions: dict[str, dict] = {}
            self.events: list[dict] = []  # oldest first
            self.delivered: dict[str, bool] = {}
            self.idempotency: dict[str, tuple[str, int, dict]] = {}
            self.drop = 0
            self.last_created = 0

    # --- events and webhooks -------------------------------------------------------------
    def _created(self) -> int:
        # Never behind an earlier event (the clock may step back), never ahead of the clock.
        self.last_created = max(int(time.time()), self.last_created)
        return self.last_created

    def emit(self, type_: str, obj: dict) -> dict:
        event = {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._created(),
            "livemode": False,
            "pending_webhooks": 1,
            "type": type_,
            "data": {"object": json.loads(json.dumps(obj))},
        }
        self.events.append(event)
        self.delivered[event["id"]] = False
        self._deliver(event)
        return event

    def _deliver(self, event: dict) -> None:
        if self.drop > 0:
            self.drop -= 1
            return
        if not self.webhook_url or not self.webhook_secret:
            return
        body = json.dumps(event).encode()
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": sign(body, self.webhook_secret),
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            response = httpx.post(
                self.webhook_url,
                content=body,
                headers=headers,
                timeout=20,
                verify=certifi_context(),  # not a new TLS context per delivery
            )
            self.delivered[event["id"]] = 200 <= response.status_code < 300
        except httpx.HTTPError:
            self.delivered[event["id"]] = False

    # --- the API ---------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, Any]) -> dict:
        with self.lock:
            return self._route(method, path, params)

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict:  # noqa: C901
        parts = path.strip("/").split("/")
        if parts[0] != "v1":
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        route = "/".join(parts[1:])
        if method == "POST" and route == "customers":
            customer = {
                "id": _id("cus"),
                "object": "customer",
                "created": int(time.time()),
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": params.get("metadata") or {},
                "livemode": False,
            }
            self.customers[customer["id"]] = customer
            return customer
        if method == "GET" and len(parts) == 3 and parts[1] == "customers":
            return self._get(self.customers, parts[2], "customer")
        if method == "POST" and route == "checkout/sessions":
            return self._create_session(params)
        if method == "GET" and len(parts) == 4 and route.startswith("checkout/sessions/"):
            return self._get(self.sessions, parts[3], "checkout.session")
        if method == "POST" and route == "billing_portal/sessions":
            customer = params.get("customer")
            self._get(self.customers, customer or "", "customer")
            portal_id = _id("bps")
            return {
                "id": portal_id,
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": params.get("return_url"),
                "url": f"https://billing.stripe.test/p/session/{portal_id}",
                "created": int(time.time()),
                "livemode": False,
            }
        if route == "subscriptions" and method == "GET":
            found = [
                s
                for s in self.subscriptions.values()
                if params.get("customer") in (None, s["customer"])
                and (params.get("status", "all") in ("all", s["status"]))
            ]
            found.sort(key=lambda s: s["created"], reverse=True)
            return self._list(found, params, "/v1/subscriptions")
        if len(parts) == 3 and parts[1] == "subscriptions":
            subscription = self._get(self.subscriptions, parts[2], "subscription")
            if method == "GET":
                return subscription
            if method == "DELETE":
                return self.set_status(subscription["id"], "canceled", deleted=True)["object"]
            if method == "POST" and "cancel_at_period_end" in params:
                subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
                self.emit("customer.subscription.updated", subscription)
                return subscription
        if method == "GET" and route == "events":
            return self._list_events(params)
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def _get(self, table: dict[str, dict], key: str, kind: str) -> dict:
        if key not in table:
            raise StripeError(404, f"No such {kind}: '{key}'", "invalid_request_error")
        return table[key]

    def _create_session(self, params: dict[str, Any]) -> dict:
        if params.get("mode") != "subscription":
            raise StripeError(400, "mode: only subscription is supported by the fake")
        items = params.get("line_items") or []
        if not items or not isinstance(items, list) or not items[0].get("price"):
            raise StripeError(400, "Missing required param: line_items[0][price].")
        for name in ("success_url",):
            if not params.get(name):
                raise StripeError(400, f"Missing required param: {name}.")
        customer = params.get("customer")
        if customer:
            self._get(self.customers, customer, "customer")
        session_id = _id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "status": "open",
            "payment_status": "unpaid",
            "subscription": None,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "created": int(time.time()),
            "expires_at": int(time.time()) + 86400,
            "livemode": False,
            "_price": items[0]["price"],
            "_subscription_metadata": (params.get("subscription_data") or {}).get("metadata") or {},
        }
        self.sessions[session_id] = session
        return self._public(session)

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _list(self, items: list[dict], params: dict[str, Any], url: str) -> dict:
        limit = min(int(params.get("limit", 10)), 100)
        after = params.get("starting_after")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "object": "list",
            "url": url,
            "has_more": len(items) > limit,
            "data": [self._public(i) for i in page],
        }

    def _list_events(self, params: dict[str, Any]) -> dict:
        created = params.get("created") or {}
        gte = int(created.get("gte", 0)) if isinstance(created, dict) else int(created)
        events = [e for e in reversed(self.events) if e["created"] >= gte]
        if "delivery_success" in params:
            wanted = params["delivery_success"] == "true"
            events = [e for e in events if self.delivered[e["id"]] is wanted]
        if params.get("type"):
            events = [e for e in events if e["type"] == params["type"]]
        return self._list(events, params, "/v1/events")

    # --- what customers and Stripe do ---------------------------------------------------------
    def complete_checkout(self, session_id: str, status: str = "active") -> list[dict]:
        with self.lock:
            session = self._get(self.sessions, session_id, "checkout.session")
            if session["status"] != "open":
                raise StripeError(400, "This Checkout Session is no longer open.")
            customer = session["customer"]
            if customer is None:
                customer = self._route("POST", "/v1/customers", {})["id"]
                session["customer"] = customer
            now = int(time.time())
            subscription = {
                "id": _id("sub"),
                "object": "subscription",
                "customer": customer,
                "status": status,
                "created": now,
                "start_date": now,
                "current_period_start": now,
                "current_period_end": now + PERIOD_SECONDS,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "metadata": session["_subscription_metadata"],
                "items": {
                    "object": "list",
                    "data": [{"object": "subscription_item", "price": {"id": session["_price"]}}],
                },
                "livemode": False,
            }
            self.subscriptions[subscription["id"]] = subscription
            session.update(status="complete", payment_status="paid")
            session["subscription"] = subscription["id"]
            return [
                self.emit("customer.subscription.created", subscription),
                self.emit("checkout.session.completed", self._public(session)),
                self.emit("invoice.paid", self._invoice(subscription, paid=True)),
            ]

    def _invoice(self, subscription: dict, *, paid: bool) -> dict:
        return {
            "id": _id("in"),
            "object": "invoice",
            "customer": subscription["customer"],
            "subscription": subscription["id"],
            "status": "paid" if paid else "open",
            "paid": paid,
            "attempt_count": 1,
            "period_end": subscription["current_period_end"],
            "created": int(time.time()),
        }

    def set_status(self, subscription_id: str, status: str, *, deleted: bool = False) -> dict:
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            subscription["status"] = status
            if status == "canceled":
                subscription["canceled_at"] = int(time.time())
            kind = "deleted" if deleted or status == "canceled" else "updated"
            return self.emit(f"customer.subscription.{kind}", subscription)

    def payment_failed(self, subscription_id: str) -> list[dict]:
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            return [
                self.emit("invoice.payment_failed", self._invoice(subscription, paid=False)),
                self.set_status(subscription_id, "past_due"),
            ]

    def pay(self, subscription_id: str) -> list[dict]:
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            return [
                self.emit("invoice.paid", self._invoice(subscription, paid=True)),
                self.set_status(subscription_id, "active"),
            ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet: tests read state, not logs
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.send_header("request-id", _id("req"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        fake = self.server.fake
        try:
            if url.path.startswith("/_"):
                self._send(200, self._control(method, url.path, body))
                return
            if not (self.headers.get("authorization") or "").startswith("Bearer sk_"):
                raise StripeError(401, "Invalid API Key provided.", "invalid_request_error")
            params = nest(parse_qsl(url.query) + parse_qsl(body.decode()))
            key = self.headers.get("idempotency-key")
            if method == "POST" and key:
                digest = hashlib.sha256(url.path.encode() + b"?" + body).hexdigest()
                with fake.lock:
                    earlier = fake.idempotency.get(key)
                    if earlier is not None:
                        if earlier[0] != digest:
                            raise StripeError(
                                400,
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                                "idempotency_error",
                            )
                        self._send(earlier[1], earlier[2], {"idempotent-replayed": "true"})
                        return
                    result = fake.handle(method, url.path, params)
                    fake.idempotency[key] = (digest, 200, result)
            else:
                result = fake.handle(method, url.path, params)
            self._send(200, result)
        except StripeError as exc:
            self._send(exc.status, {"error": {"type": exc.type, "message": exc.message}})

    def _control(self, method: str, path: str, body: bytes) -> Any:
        fake = self.server.fake
        data = json.loads(body or b"{}")
        parts = path.strip("/").split("/")
        if path == "/_events":
            return [{**e, "delivered": fake.delivered[e["id"]]} for e in fake.events]
        if path == "/_reset":
            fake.reset()
            return {"ok": True}
        if path == "/_drop":
            fake.drop = int(data.get("times", 1))
            return {"drop": fake.drop}
        if path == "/_config":
            fake.webhook_url = data.get("webhook_url", fake.webhook_url)
            fake.webhook_secret = data.get("webhook_secret", fake.webhook_secret)
            return {"webhook_url": fake.webhook_url}
        if parts[0] == "_checkout" and len(parts) == 3 and parts[2] == "complete":
            return fake.complete_checkout(parts[1], data.get("status", "active"))
        if parts[0] == "_subscriptions" and len(parts) == 3:
            if parts[2] == "payment_failed":
                return fake.payment_failed(parts[1])
            if parts[2] == "pay":
                return fake.pay(parts[1])
            if parts[2] == "status":
                return [fake.set_status(parts[1], data["status"])]
        raise StripeError(404, f"no control endpoint {method} {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe


class FakeStripeServer:
    """`with FakeStripeServer(webhook_url=..., webhook_secret=...) as fake:` on a free port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ):
        self.fake = FakeStripe(webhook_url, webhook_secret)
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self.fake
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStripeServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeStripeServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[FakeStripeServer]:
    with FakeStripeServer(**kwargs) as server:
        yield server


def serve(host: str, port: int, webhook_url: str | None, webhook_secret: str | None) -> None:
    server = FakeStripeServer(host, port, webhook_url, webhook_secret)
    print(f"fake Stripe on {server.url} (STRIPE_API_BASE={server.url})", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
