"""Security headers on every response: errors, 404s, 413s and 429s included.

Pure ASGI middleware placed outermost, so even the last-resort 500 of the request-context
middleware gets them. The API serves JSON only, so its CSP allows nothing at all.

The exception is the interactive docs (/docs, /redoc): Swagger UI and ReDoc, served with
their assets by the app itself (kit/api_docs.py), so every source is 'self'. Swagger UI
runs one inline bootstrap script. That script is allowed by its sha256, computed from the
page actually served (no 'unsafe-inline' for scripts, and no hash to keep in sync with
FastAPI's template). Inline styles are allowed on those pages only: the renderers set
them at runtime. ReDoc renders in a web worker made from a blob.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rampart.kit.api_docs import DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH

API_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"
DOCS_PATHS = frozenset({DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH})
DOCS_SOURCES = {
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "worker-src": "blob:",
}
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: bytes) -> str:
    """The docs pages' CSP: their own assets plus the hash of each inline script."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    sources = dict(DOCS_SOURCES)
    sources["script-src"] = " ".join([sources["script-src"], *hashes])
    directives = ["default-src 'none'", *(f"{k} {v}" for k, v in sources.items())]
    extra = ["base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]
    return "; ".join([*directives, *extra])


class SecurityHeadersMiddleware:
    """Sets CSP, nosniff, no-referrer, DENY framing and (outside dev/test) HSTS."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": API_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
        if hsts:
            self.headers["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self.app(scope, receive, self._docs_sender(send))
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _docs_sender(self, send: Send) -> Send:
        """Holds the (small) docs page until its body is complete, to hash its scripts."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_docs(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(scope=start)
            headers.update(self.headers)
            headers["Content-Security-Policy"] = docs_csp(body)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return send_docs
