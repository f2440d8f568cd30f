"""One error envelope for every error response: {"error": {code, message, details?,
trace_id}}, built by `error_body` and nowhere else.

Typed errors raised anywhere (service, repository, dependency) become the envelope in one
handler; validation and HTTP errors are mapped here too. What answers below FastAPI's
handlers uses the same builder: the pure-ASGI middleware (the last-resort 500 for an
unhandled exception, the body guard's refusals, rate limits, read-only mode) through
`envelope_bytes` or `envelope`, and /ready's 503 through `envelope` with its checks beside
the error. A client never sees another shape.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rampart.kit import context
from rampart.kit.error_responses import add_common_errors
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


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class _EnvelopeResponse(JSONResponse):
    """ASCII-escaped JSON: details may echo client input (an answer key, a field name), and
    a lone surrogate from a JSON "\\ud800" escape cannot be encoded as UTF-8. Escaped, it
    renders; unescaped, the error response itself would fail and become a 500."""

    def render(self, content: Any) -> bytes:
        return self.render_body(content)

    @staticmethod
    def render_body(content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def error_body(
    code: str, message: str, details: Any = None, *, trace_id: str | None = None
) -> dict[str, Any]:
    """The envelope's content; `trace_id` defaults to the one bound for this request."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    body["trace_id"] = trace_id if trace_id is not None else context.current("trace_id")
    return {"error": body}


def envelope(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict | None = None,
    *,
    beside: dict[str, Any] | None = None,
) -> JSONResponse:
    """The error response (counted in rampart_http_errors_total); `beside`: keys next to
    "error" (the /ready checks)."""
    HTTP_ERRORS.labels(str(status), code).inc()
    content = {**(beside or {}), **error_body(code, message, details)}
    return _EnvelopeResponse(content, status_code=status, headers=headers)


def envelope_bytes(status: int, code: str, message: str, *, trace_id: str | None = None) -> bytes:
    """The error envelope as a body, for pure-ASGI answers made below FastAPI's handlers
    (counted the same way)."""
    HTTP_ERRORS.labels(str(status), code).inc()
    return _EnvelopeResponse.render_body(error_body(code, message, trace_id=trace_id))


# The envelope as an OpenAPI schema: what every error response really is.
ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "trace_id"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_error"]},
                "message": {"type": "string"},
                "details": {"description": "For validation errors: [{field, problem}, ...]."},
                "trace_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    },
}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


def document_error_envelope(app: FastAPI, unlimited_paths: frozenset[str]) -> None:
    """FastAPI documents every 422 as its own `HTTPValidationError`, a shape we never send,
    an error a route lists by description only has no body at all, and the errors of the
    middleware and dependencies every route shares are not listed. Rewrite the generated
    OpenAPI once, so clients and fuzzers see every error status an operation can answer
    (kit/error_responses.py), each with the envelope. `unlimited_paths`: those the per-IP
    limit spares (no 429)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = _swap_refs(generate(), _FASTAPI_422, _ENVELOPE_REF)
            add_common_errors(schema, unlimited_paths)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        if status[:1] in ("4", "5") and "content" not in response:
                            response["content"] = {
                                "application/json": {"schema": {"$ref": _ENVELOPE_REF}}
                            }
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components["ErrorEnvelope"] = ERROR_ENVELOPE_SCHEMA
            if '"#/components/schemas/ValidationError"' not in json.dumps(schema):
                components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _swap_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {
            k: new if k == "$ref" and v == old else _swap_refs(v, old, new) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_swap_refs(item, old, new) for item in node]
    return node


def _validation_details(exc: RequestValidationError) -> tuple[str, str, list[dict]]:
    details = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return "malformed_json", "The request body is not valid JSON.", []
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        details.append({"field": ".".join(loc) or "body", "problem": err.get("msg", "invalid")})
    return "validation_error", "The request is invalid.", details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, details = _validation_details(exc)
        status = 400 if code == "malformed_json" else 422
        return envelope(status, code, message, details or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return envelope(exc.status_code, code, message, headers=getattr(exc, "headers", None))
