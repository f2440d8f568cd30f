"""Pure ASGI middleware: request context (trace_id, access log, metrics, last-resort 500)
and the request body guard (size, deadline, pending bodies per client). Pure ASGI rather
than BaseHTTPMiddleware: cheaper per request and the contextvars reach the endpoint."""

from __future__ import annotations

import asyncio
import re
import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rampart.kit import context, tracing
from rampart.kit.errors import envelope_bytes
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import HTTP_DURATION, HTTP_REQUESTS
from rampart.kit.security.client_ip import client_ip
from rampart.kit.sentry import report_exception

log = get_logger("rampart.http")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Gives each request a trace_id (a trusted caller's W3C traceparent or X-Request-ID,
    else a fresh one; an untrusted caller's trace id is logged as client_trace_id) and its
    OpenTelemetry server span (same trace id), binds them for logging, records metrics,
    reports anything unhandled to Sentry and turns it into the 500 envelope."""

    def __init__(self, app: ASGIApp, *, trust_client_trace_ids: bool = False) -> None:
        self.app = app
        # Whether a caller's traceparent / X-Request-ID may name our trace (kit/context.py
        # `incoming_trace`): only behind a gateway that sets or strips them.
        self.trust_client_trace_ids = trust_client_trace_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = context.incoming_trace(
            _header(scope, b"traceparent"),
            _header(scope, b"x-request-id"),
            trusted=self.trust_client_trace_ids,
        )
        request_id = incoming.request_id
        method = scope["method"]
        # The server span (kit/tracing.py): its trace id is the request's trace_id.
        server_span = tracing.start_span(
            method,
            kind=tracing.SpanKind.SERVER,
            traceparent=incoming.parent,
            trace_id=incoming.trace_id,
            link=incoming.client_parent,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        )
        span_token = otel_context.attach(trace.set_span_in_context(server_span))
        found = tracing.ids(server_span)
        # No tracer provider installed (create_app() always installs one): ids of our own.
        trace_id, span_id, sampled = found or (incoming.trace_id, context.new_span_id(), True)
        context.clear()
        context.bind(
            trace_id=trace_id,
            span_id=span_id,
            request_id=request_id,
            client_trace_id=incoming.client_trace_id,
        )
        scope.setdefault("state", {})["trace_id"] = trace_id
        out_headers = [
            (b"x-request-id", (request_id or trace_id).encode()),
            (b"traceparent", f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}".encode()),
        ]
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + out_headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.exception("unhandled_exception", error_type=type(exc).__name__)
            server_span.record_exception(exc)
            report_exception(exc)  # Sentry, the one place an unhandled API error is reported
            if not started:
                body = envelope_bytes(
                    500, "internal_error", "An unexpected error occurred.", trace_id=trace_id
                )
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            log.info(
                "http_request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            server_span.update_name(f"{method} {route}")
            server_span.set_attribute("http.route", route)
            server_span.set_attribute("http.response.status_code", status)
            if status >= 500:
                server_span.set_status(Status(StatusCode.ERROR))
            server_span.end()
            otel_context.detach(span_token)
            context.clear()


class BodyGuardMiddleware:
    """Guards request bodies before any route sees them:

    - size: 413 over `max_bytes`, by Content-Length up front or while streaming for chunked
      uploads, so a large body is never buffered whole;
    - time: the whole body must arrive within `timeout` seconds of the request's start, else
      408 `request_timeout` and the connection is closed (uvicorn has no body timeout: a
      client sending `{` and then nothing would hold its request forever);
    - count: one client IP may have at most `per_client` requests still sending their body;
      more get 429 `too_many_pending_bodies` at once.

    Routes listed in `own_limits` ((method, path regex) → (max bytes or None, timeout))
    enforce their own size limit while streaming (uploads) and get their own deadline.
    Nothing here holds a database connection: the request's transaction opens only after
    its body was read and validated (kit/security/request_tx.py).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float,
        per_client: int,
        own_limits: dict[tuple[str, str], tuple[int | None, float]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.per_client = per_client
        self.own_limits = [
            (method, re.compile(path), limits)
            for (method, path), limits in (own_limits or {}).items()
        ]
        self._pending: dict[str, int] = {}

    def _limits(self, scope: Scope) -> tuple[int | None, float]:
        for method, path, limits in self.own_limits:
            if scope["method"] == method and path.fullmatch(scope["path"]):
                return limits
        return self.max_bytes, self.timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding")
        if not chunked and (declared is None or declared == "0"):
            await self.app(scope, receive, send)  # no body to wait for
            return
        max_bytes, timeout = self._limits(scope)
        if (
            max_bytes is not None
            and declared is not None
            and declared.isdigit()
            and int(declared) > max_bytes
        ):
            await _reject(
                send, 413, "payload_too_large", f"The request body exceeds {max_bytes} bytes."
            )
            return
        client = client_ip(scope)
        if self._pending.get(client, 0) >= self.per_client:
            await _reject(
                send,
                429,
                "too_many_pending_bodies",
                "Too many requests from this client are still sending their body.",
                retry_after=True,
            )
            return
        self._pending[client] = self._pending.get(client, 0) + 1
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        done = False
        # Once refused, always refused: a layer that catches the error and reads again
        # (Sentry's request-body extractor does) must not get an unguarded, endless wait.
        refusal: HTTPException | None = None

        def finished() -> None:
            nonlocal done
            if not done:
                done = True
                left = self._pending.get(client, 1) - 1
                if left > 0:
                    self._pending[client] = left
                else:
                    self._pending.pop(client, None)

        async def guarded_receive() -> Message:
            nonlocal seen, refusal
            if refusal is not None:
                raise refusal
            if done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                finished()
                # An HTTPException passes through FastAPI's body parsing unchanged and
                # becomes the envelope in the error handler.
                refusal = HTTPException(
                    408,
                    f"The request body did not arrive within {timeout:g} s.",
                    headers={"Connection": "close"},
                )
                raise refusal from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if max_bytes is not None and seen > max_bytes:
                    finished()
                    refusal = HTTPException(413, f"The request body exceeds {max_bytes} bytes.")
                    raise refusal
                if not message.get("more_body", False):
                    finished()
            else:
                finished()  # the client went away
            return message

        try:
            await self.app(scope, guarded_receive, send)
        finally:
            finished()


async def _reject(
    send: Send, status: int, code: str, message: str, *, retry_after: bool = False
) -> None:
    trace_id = str(context.current("trace_id") or "")
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    body = envelope_bytes(status, code, message, trace_id=trace_id)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
