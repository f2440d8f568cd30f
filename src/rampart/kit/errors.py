"""The typed errors and the one error envelope's content: {"error": {code, message,
details?, trace_id}}, built by `error_body` and nowhere else.

Typed errors raised anywhere (service, repository, dependency, job) carry their code and
HTTP status; kit/http_errors.py turns them, and FastAPI's own validation and HTTP errors,
into the envelope. What answers below FastAPI's handlers uses the same builder: the
pure-ASGI middleware (the last-resort 500 for an unhandled exception, the body guard's
refusals, rate limits, read-only mode) through `envelope_bytes` or
`http_errors.envelope`, and /ready's 503 through that `envelope` with its checks beside
the error. A client never sees another shape. No web framework here: workers, the relay and
the CLI raise these errors without loading FastAPI.
"""

from __future__ import annotations

import json
from typing import Any

from rampart.kit import context
from rampart.kit.metrics.instruments import HTTP_ERRORS


class AppError(Exception):
    """Base of every typed error: a stable machine code, an HTTP status and a message."""

    code = "error"
    status = 400
    message = "Request failed."

    def __init__(
        self, message: str | None = None, *, details: Any = None, headers: dict | None = None
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers


class BadRequest(AppError):
    code, status, message = "bad_request", 400, "The request is malformed."


class Unauthorized(AppError):
    code, status, message = "unauthorized", 401, "Authentication required."


class Forbidden(AppError):
    code, status, message = "forbidden", 403, "Not allowed."


class NotFound(AppError):
    code, status, message = "not_found", 404, "Not found."


class Conflict(AppError):
    code, status, message = "conflict", 409, "Conflicts with existing data."


class PayloadTooLarge(AppError):
    code, status, message = "payload_too_large", 413, "The request body is too large."


class ValidationFailed(AppError):
    code, status, message = "validation_error", 422, "The request is invalid."


class ServiceUnavailable(AppError):
    code, status, message = "unavailable", 503, "Temporarily unavailable; retry shortly."


def error_body(
    code: str, message: str, details: Any = None, *, trace_id: str | None = None
) -> dict[str, Any]:
    """The envelope's content; `trace_id` defaults to the one bound for this request."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    body["trace_id"] = trace_id if trace_id is not None else context.current("trace_id")
    return {"error": body}


def render_envelope(content: Any) -> bytes:
    """ASCII-escaped JSON: details may echo client input (an answer key, a field name), and
    a lone surrogate from a JSON "\\ud800" escape cannot be encoded as UTF-8. Escaped, it
    renders; unescaped, the error response itself would fail and become a 500."""
    text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii")


def envelope_bytes(status: int, code: str, message: str, *, trace_id: str | None = None) -> bytes:
    """The error envelope as a body, for pure-ASGI answers made below FastAPI's handlers
    (counted the same way)."""
    HTTP_ERRORS.labels(str(status), code).inc()
    return render_envelope(error_body(code, message, trace_id=trace_id))
