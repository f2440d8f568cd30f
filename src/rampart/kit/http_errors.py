"""How errors become HTTP responses: the handlers that turn typed errors (kit/errors.py)
and FastAPI's validation and HTTP errors into the one envelope, `envelope` for the pure-ASGI
parts that answer themselves, and the envelope in the OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rampart.kit.error_responses import add_common_errors
from rampart.kit.errors import AppError, error_body, render_envelope
from rampart.kit.metrics.instruments import HTTP_ERRORS

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
    def render(self, content: Any) -> bytes:
        return render_envelope(content)


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
