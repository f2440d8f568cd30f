"""Database metrics and slow-query logs, recorded by kit/db/transaction.py per round trip.

- `rampart_db_query_duration_seconds{operation}`: every statement, client-side wall time
  (the round trip included).
- `rampart_db_slow_queries_total`: statements slower than DB_SLOW_QUERY_MS; each is also
  logged (`db_slow_query`, warning) with the trace_id of the request or job (from the log
  context) and the statement normalized: bound parameters are never rendered, and literals
  written into the SQL text become `?`, so no value reaches the log.
- `rampart_db_transaction_errors_total{reason}`: `rollback` for every transaction rolled
  back (an error response or a failed job step), plus one per database error by its
  SQLSTATE: deadlock, serialization_failure, lock_timeout, statement_timeout, integrity,
  connection, other. A deadlock therefore counts as `deadlock` and, when its transaction
  is rolled back, as `rollback` too.
- `rampart_db_pool_in_use` / `rampart_db_pool_size`: connections checked out now / the most
  the pool may hold (pool size + overflow), per process, summed over the service.
"""

from __future__ import annotations

import re

from opentelemetry.trace import Span, SpanKind

from rampart.kit import tracing
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import (
    DB_QUERY_DURATION,
    DB_SLOW_QUERIES,
    DB_TRANSACTION_ERRORS,
)
from rampart.kit.settings import db_settings

log = get_logger("rampart.db")

_OPERATIONS = ("select", "insert", "update", "delete")
_MAX_STATEMENT = 1000

_DOLLAR_QUOTED = re.compile(r"\$(\w*)\$.*?\$\1\$", re.S)
_STRING = re.compile(r"[EeBbXxNn]?'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w$%.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_EXPANDED_IN = re.compile(r"%\((\w+?)_\d+\)s(?:\s*,\s*%\(\1_\d+\)s)+")
_SPACE = re.compile(r"\s+")

# SQLSTATE → reason (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_SQLSTATE_REASONS = {
    "40P01": "deadlock",
    "40001": "serialization_failure",
    "55P03": "lock_timeout",
    "57014": "statement_timeout",
}


def db_span(statement: str) -> Span:
    """A started CLIENT span for one database round trip; the caller ends it. The statement
    is recorded in its normalized form (no values)."""
    return tracing.tracer().start_span(
        operation(statement).upper(),
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": "postgresql",
            "db.operation.name": operation(statement),
            "db.query.text": normalize_statement(statement),
        },
    )


def normalize_statement(statement: str) -> str:
    """The statement's shape without values: literals become `?`, whitespace collapses,
    an expanded IN list becomes one placeholder; at most 1000 characters."""
    text = _DOLLAR_QUOTED.sub("?", statement)
    text = _STRING.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _EXPANDED_IN.sub(r"%(\1_n)s", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= _MAX_STATEMENT else text[: _MAX_STATEMENT - 3] + "..."


def operation(statement: str) -> str:
    head = statement.lstrip()[:8].split(None, 1)
    verb = head[0].lower() if head else ""
    return verb if verb in _OPERATIONS else "other"


def error_reason(exc: BaseException | None, is_disconnect: bool = False) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    if sqlstate and sqlstate.startswith("23"):
        return "integrity"
    if is_disconnect or (sqlstate and sqlstate.startswith("08")):
        return "connection"
    if sqlstate is None and isinstance(exc, OSError | TimeoutError | ConnectionError):
        return "connection"  # no server answer at all: refused, reset, timed out
    return "other"


_DURATION = {op: DB_QUERY_DURATION.labels(op) for op in (*_OPERATIONS, "other")}


def statement_done(statement: str, elapsed: float) -> None:
    """Count one statement's round trip; log it when slow."""
    op = operation(statement)
    _DURATION[op].observe(elapsed)
    if elapsed * 1000 >= db_settings().db_slow_query_ms:
        DB_SLOW_QUERIES.inc()
        log.warning(
            "db_slow_query",
            duration_ms=round(elapsed * 1000, 1),
            operation=op,
            statement=normalize_statement(statement),
        )


def count_reason(reason: str) -> None:
    DB_TRANSACTION_ERRORS.labels(reason).inc()


def count_error(exc: BaseException) -> None:
    count_reason(error_reason(exc))
