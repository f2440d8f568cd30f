"""Request/job context: the trace_id and who is acting, carried in contextvars.

structlog's contextvars hold the same keys, so every log line written while a request or
a task runs carries them without passing them around.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import structlog

# W3C Trace Context (https://www.w3.org/TR/trace-context/#traceparent-header): lower-case
# hex only; version ff is invalid; version 00 has exactly four fields, a later version may
# add more after a dash. All-zero trace and parent ids are invalid.
_TRACEPARENT = re.compile(
    r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?$"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
# A request id that may name the trace (from a trusted gateway only): a UUID (Heroku,
# many gateways) or 32 hex characters (nginx's $request_id).
_ID_AS_TRACE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})$"
)
_ZERO_TRACE = "0" * 32


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def valid_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, the header) of a valid W3C traceparent, else None (never repaired)."""
    if not value or len(value) > 512:
        return None
    header = value.strip(" \t")
    match = _TRACEPARENT.match(header)
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if parent_id == "0" * 16:
        return None
    return trace_id, header


@dataclass(frozen=True, slots=True)
class IncomingTrace:
    """What a request's headers mean for its trace (`incoming_trace`)."""

    trace_id: str  # ours: always 32 lower-case hex, never all zero
    parent: str | None  # the traceparent to continue (a trusted caller's), else None
    request_id: str | None  # a well-formed X-Request-ID: logged and echoed back
    client_trace_id: str | None = None  # an untrusted caller's valid trace id, kept apart
    client_parent: str | None = None  # its traceparent: our server span links to it


def incoming_trace(
    traceparent: str | None, request_id: str | None, *, trusted: bool
) -> IncomingTrace:
    """The request's trace, from its `traceparent` and `X-Request-ID` headers.

    Trusted (TRUST_CLIENT_TRACE_IDS: every request passes a gateway that sets or strips
    these headers): a valid W3C traceparent is continued; else an X-Request-ID that is a
    UUID or 32 hex characters is the trace id; else a fresh one.

    Untrusted (the default): always a fresh trace id. W3C Trace Context's security
    considerations: a caller who picks the trace id can join someone else's trace (make
    its own requests, log lines and jobs part of another tenant's incident timeline) or
    force sampling. A valid caller trace id is kept as `client_trace_id` (logged, and a
    span link), so the caller's and our traces can still be matched.

    Either way a well-formed X-Request-ID is kept as the request id and echoed back;
    anything malformed is ignored, never repaired, reflected or logged.
    """
    request_id = request_id_from_header(request_id)
    found = valid_traceparent(traceparent)
    if not trusted:
        client_trace_id, client_parent = found if found else (None, None)
        return IncomingTrace(new_trace_id(), None, request_id, client_trace_id, client_parent)
    if found:
        return IncomingTrace(found[0], found[1], request_id)
    if request_id and _ID_AS_TRACE.match(request_id):
        candidate = request_id.replace("-", "").lower()
        if candidate != _ZERO_TRACE:
            return IncomingTrace(candidate, None, request_id)
    return IncomingTrace(new_trace_id(), None, request_id)


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
