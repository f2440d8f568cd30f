"""Which error statuses an operation can answer, for its OpenAPI `responses`.

The middleware and dependencies that refuse requests are the same for every route, so
their statuses follow from what the generated operation shows: a body (malformed JSON,
too large, invalid), parameters (invalid), path parameters (not found), a security
requirement (unauthenticated, not allowed, database trouble), a write method (read-only
maintenance) and the per-IP limit (every path but the probes). A route documents the
statuses only it can answer (409 `last_owner`, 415, ...) itself, with `responses=`;
kit/http_errors.py adds these and puts the envelope on each.
"""

from __future__ import annotations

from typing import Any

WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})

BAD_JSON = "The body is not valid JSON (`malformed_json`)."
UNAUTHENTICATED = "No valid bearer token or session cookie (`unauthorized`)."
NOT_ALLOWED = (
    "Not allowed (`forbidden`): the caller's role lacks the permission; for a write also "
    "an unconfirmed address (`email_not_verified`) or, with a session cookie, no valid CSRF "
    "token (`csrf_failed`)."
)
NOT_FOUND = "No such resource in the caller's tenant (`not_found`)."
TOO_LARGE = "The body is over MAX_BODY_BYTES (`payload_too_large`)."
INVALID = "The request is invalid (`validation_error`): `details` lists `{field, problem}`."
RATE_LIMITED = "Over an abuse limit (`rate_limited`); `Retry-After` says when to retry."
UNAVAILABLE = (
    "Temporarily unavailable, retry after `Retry-After`: no database connection in time "
    "(`overloaded`) or the database unreachable (`db_unavailable`)"
)
READ_ONLY = "; for a write also read-only maintenance (`read_only`)"
# FastAPI's own description of the 422 it adds to operations with inputs.
_FASTAPI_INVALID = "Validation Error"


def common_errors(
    path: str, method: str, operation: dict[str, Any], unlimited: frozenset[str]
) -> dict[str, str]:
    """Status → description of the errors every route of this shape can answer."""
    errors: dict[str, str] = {}
    body = operation.get("requestBody", {}).get("content", {})
    parameters = operation.get("parameters", [])
    secured = bool(operation.get("security"))
    write = method in WRITE_METHODS
    if "application/json" in body:
        errors["400"] = BAD_JSON
    if secured:
        errors["401"] = UNAUTHENTICATED
        errors["403"] = NOT_ALLOWED
    if any(p.get("in") == "path" for p in parameters):
        errors["404"] = NOT_FOUND
    if body:
        errors["413"] = TOO_LARGE
    if body or parameters:
        errors["422"] = INVALID
    if path not in unlimited:
        errors["429"] = RATE_LIMITED
    if secured or write:
        errors["503"] = UNAVAILABLE + (READ_ONLY if write else "") + "."
    return errors


def add_common_errors(schema: dict[str, Any], unlimited: frozenset[str]) -> None:
    """Add each operation's common errors to its responses; what a route says is kept."""
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in common_errors(path, method, operation, unlimited).items():
                known = responses.get(status)
                if known is None:
                    responses[status] = {"description": description}
                elif known.get("description") in (None, "", _FASTAPI_INVALID):
                    known["description"] = description
