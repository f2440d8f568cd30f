"""Database metrics and slow-query logs, from SQLAlchemy's engine, pool and session events.

- `rampart_db_query_duration_seconds{operation}`: every statement, timed between
  `before_cursor_execute` and `after_cursor_execute`.
- `rampart_db_slow_queries_total`: statements slower than DB_SLOW_QUERY_MS; each is also
  logged (`db_slow_query`, warning) with the trace_id of the request or job (from the log
  context) and the statement normalized: bound parameters are never rendered, and literals
  written into the SQL text become `?`, so no value reaches the log.
- `rampart_db_transaction_errors_total{reason}`: `rollback` for every session transaction
  rolled back (an error response or a failed job step), plus one per database error by its
  SQLSTATE: deadlock, serialization_failure, lock_timeout, statement_timeout, integrity,
  connection, other (`handle_error`). A deadlock therefore counts as `deadlock` and, when
  its transaction is rolled back, as `rollback` too.
- `rampart_db_pool_in_use` / `rampart_db_pool_size`: connections checked out now / the most
  the pool may hold (pool size + overflow), per process, summed over the service.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from rampart.config import get_settings
from rampart.kit.logging import get_logger
from rampart.kit.metrics import (
    DB_POOL_IN_USE,
    DB_POOL_SIZE,
    DB_QUERY_DURATION,
    DB_SLOW_QUERIES,
    DB_TRANSACTION_ERRORS,
)

log = get_logger("rampart.db")

_OPERATIONS = ("select", "insert", "update", "delete")
_START = "_rampart_query_started"
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
    sqlstate = getattr(exc, "sqlstate", None) or getattr(
        getattr(exc, "orig", None), "sqlstate", None
    )
    if sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    if sqlstate and sqlstate.startswith("23"):
        return "integrity"
    if is_disconnect or (sqlstate and sqlstate.startswith("08")):
        return "connection"
    if sqlstate is None and type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return "connection"  # no server answer at all: refused, reset, timed out
    return "other"


def _before_execute(conn, _cursor, _statement, _parameters, context, _executemany) -> None:
    started = time.perf_counter()
    if context is not None:
        setattr(context, _START, started)
    else:
        conn.info[_START] = started


def _after_execute(conn, _cursor, statement, _parameters, context, _executemany) -> None:
    started = getattr(context, _START, None) if context is not None else conn.info.pop(_START, None)
    if started is None:
        return
    elapsed = time.perf_counter() - started
    op = operation(statement)
    DB_QUERY_DURATION.labels(op).observe(elapsed)
    if elapsed * 1000 >= get_settings().db_slow_query_ms:
        DB_SLOW_QUERIES.inc()
        log.warning(
            "db_slow_query",
            duration_ms=round(elapsed * 1000, 1),
            operation=op,
            statement=normalize_statement(statement),
        )


def _on_error(ctx: Any) -> None:
    if getattr(ctx, "is_pre_ping", False):
        return  # a stale pooled connection, replaced transparently: not an error
    DB_TRANSACTION_ERRORS.labels(error_reason(ctx.original_exception, ctx.is_disconnect)).inc()


def observe_engine(engine: Engine, max_connections: int) -> None:
    """Attach the metrics to an engine (call once per engine)."""
    event.listen(engine, "before_cursor_execute", _before_execute)
    event.listen(engine, "after_cursor_execute", _after_execute)
    event.listen(engine, "handle_error", _on_error)

    checked_out: set[int] = set()
    lock = threading.Lock()

    def on_checkout(_dbapi_conn, record, _proxy) -> None:
        with lock:
            checked_out.add(id(record))
            DB_POOL_IN_USE.set(len(checked_out))

    def on_checkin(_dbapi_conn, record) -> None:
        with lock:
            checked_out.discard(id(record))
            DB_POOL_IN_USE.set(len(checked_out))

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine.pool, "checkin", on_checkin)
    DB_POOL_SIZE.set(max_connections)
    DB_POOL_IN_USE.set(0)


def _after_rollback(_session: Session) -> None:
    DB_TRANSACTION_ERRORS.labels("rollback").inc()


def observe_sessions(factory: sessionmaker[Session]) -> None:
    event.listen(factory, "after_rollback", _after_rollback)
