"""Request/job context: the trace_id and who is acting, carried in contextvars.

structlog's contextvars hold the same keys, so every log line written while a request or
a task runs carries them without passing them around.
"""

from __future__ import annotations

import re
import secrets

import structlog

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def trace_id_from_headers(traceparent: str | None, request_id: str | None) -> str:
    """The request's trace id, always 32 hex characters (it is the OpenTelemetry trace id,
    kit/tracing.py): W3C traceparent wins; else an X-Request-ID that is itself a 32-hex
    id; else a fresh id.

    Any other well-formed X-Request-ID is kept as the `request_id` (logged, echoed back;
    see `request_id_from_header`), not as the trace id; anything malformed is ignored
    (never reflected into logs or headers).
    """
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    if request_id:
        candidate = request_id.strip().lower()
        if _HEX_TRACE_ID.match(candidate) and candidate != "0" * 32:
            return candidate
    return new_trace_id()


def request_id_from_header(request_id: str | None) -> str | None:
    """The caller's X-Request-ID if well-formed (8-128 of `A-Za-z0-9._-`), else None."""
    if request_id and _REQUEST_ID.match(request_id):
        return request_id
    return None


def traceparent_for(trace_id: str, span_id: str) -> str:
    """A W3C traceparent for our trace id (request ids that are not hex get a fresh one)."""
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        trace_id = new_trace_id()
    return f"00-{trace_id}-{span_id}-01"


def bind(**values: object) -> None:
    """Add keys (trace_id, tenant_id, user_id, assessment_id, job_id, ...) to the context."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear() -> None:
    structlog.contextvars.clear_contextvars()


def current(key: str) -> object | None:
    return structlog.contextvars.get_contextvars().get(key)
