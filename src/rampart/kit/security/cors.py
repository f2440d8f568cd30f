"""CORS for the configured exact origins: Starlette's CORSMiddleware, with two fixes.

- A request from an origin that is not allowed never reaches the CORS layer, so it gets no
  CORS headers at all (Starlette would still add Allow-Credentials/Expose-Headers, and
  answer its preflight itself); a preflight from it falls through to the app (405).
- A preflight from an allowed origin asking for a method or header we do not allow gets
  our 400 envelope instead of Starlette's plain text.
`*` with credentials is refused at startup (config.py): browsers forbid it, and echoing
any origin with credentials would let every site act as the user.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rampart.kit.http_errors import envelope

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID", "traceparent")
EXPOSE_HEADERS = ("X-Request-ID", "traceparent", "Retry-After")
MAX_AGE_SECONDS = 600


class _EnvelopeCORS(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        return envelope(
            400,
            "cors_rejected",
            response.body.decode(),
            headers={"Vary": "Origin"},
        )


class CorsMiddleware:
    """Pure ASGI: CORS headers for allowed origins only; `Vary: Origin` on every answer to
    a request that names an origin, so a cache never serves one origin's answer to another."""

    def __init__(self, app: ASGIApp, origins: list[str], allow_credentials: bool) -> None:
        self.app = app
        self.cors = _EnvelopeCORS(
            app,
            allow_origins=origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=allow_credentials,
            expose_headers=EXPOSE_HEADERS,
            max_age=MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        if origin is None:  # not a browser's cross-origin request: nothing to add
            await self.app(scope, receive, send)
            return
        if self.cors.is_allowed_origin(origin):
            await self.cors(scope, receive, send)
            return

        async def send_vary(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, receive, send_vary)
