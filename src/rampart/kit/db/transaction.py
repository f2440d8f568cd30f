"""A transaction with the caller's claims set inside it: one per request (opened by the
route's dependency, kit/security/request_tx.py), and one per step of a job (a job's work
opens a transaction before and another after a slow call such as the LLM's, never one
across it: kit/jobs/runner.py `run.transaction()`).

`set_config('request.jwt.claims', ..., true)` is transaction-local: it is set in the same
transaction as the queries and vanishes at COMMIT/ROLLBACK, so a pooled connection (or
PgBouncer in transaction mode) never carries one tenant's claims into another's work.

A `Tx` takes its connection at its first statement, and sends `BEGIN` and the claims in
that same round trip (one simple query: the claims are a literal made from validated
UUIDs and a fixed role, never from free text). Every round trip is timed and bounded
(kit/db/pool.py); what the database cannot do now becomes a typed 503:

- `Overloaded` (`overloaded`, Retry-After 1): no pooled connection within
  DB_POOL_TIMEOUT_SECONDS;
- `DatabaseUnavailable` (`db_unavailable`, Retry-After 2): the server is unreachable,
  frozen past DB_COMMAND_TIMEOUT_SECONDS, restarting, out of connections, or the statement
  was cancelled, deadlocked or could not be serialized. A connection that failed or timed
  out is dropped, never reused.

A connection the server closed while it sat in the pool (a Postgres restart) fails at the
first statement; that statement is retried once on a new connection and the pool is told
to replace every connection it holds, so a restart costs no request an error.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from rampart.kit import tracing
from rampart.kit.db import observe
from rampart.kit.db.pool import gate, get_pool
from rampart.kit.errors import ServiceUnavailable
from rampart.kit.logging import get_logger
from rampart.kit.metrics.instruments import DB_ADMISSION_WAITING, DB_POOL_IN_USE
from rampart.kit.settings import db_settings

log = get_logger("rampart.db")

CLAIM_ROLES = frozenset({"authenticated", "service"})


class DatabaseUnavailable(ServiceUnavailable):
    code = "db_unavailable"
    message = "The database is unavailable; retry shortly."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "2"})


class Overloaded(ServiceUnavailable):
    code = "overloaded"
    message = "The service is at capacity; retry shortly."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


_last_refusal = [float("-inf")]  # monotonic time this process last answered `overloaded`


def refused_within(seconds: float) -> bool:
    """Whether a transaction was refused a connection in the last `seconds` (/ready)."""
    return time.monotonic() - _last_refusal[0] < seconds


def _canonical_uuid(value: str, name: str) -> str:
    parsed = str(uuid.UUID(value))
    if parsed != value:
        raise ValueError(f"claims: {name} is not a canonical UUID")
    return parsed


@dataclass(frozen=True)
class Claims:
    """Who acts: `sub` (user id, absent for background work) within `tenant_id`."""

    tenant_id: str
    sub: str | None = None
    role: str = "authenticated"

    def __post_init__(self) -> None:
        # Validated here, so the SQL literal below can only ever hold hex, dashes and a
        # known role word.
        _canonical_uuid(self.tenant_id, "tenant_id")
        if self.sub is not None:
            _canonical_uuid(self.sub, "sub")
        if self.role not in CLAIM_ROLES:
            raise ValueError(f"claims: unknown role {self.role!r}")

    def as_json(self) -> str:
        claims = {"tenant_id": self.tenant_id, "role": self.role}
        if self.sub:
            claims["sub"] = self.sub
        return json.dumps(claims)

    def begin_sql(self) -> str:
        """BEGIN and the claims in one simple query (one round trip)."""
        return f"BEGIN; SELECT set_config('request.jwt.claims', '{self.as_json()}', true)"


# SQLSTATE classes of a database that cannot do the work now (retry later), not of a bad
# statement: connection (08), transaction rollback (40: serialization, deadlock),
# insufficient resources (53), operator intervention (57: statement timeout, shutdown),
# lock not available (55P03).
_UNAVAILABLE_CLASSES = ("08", "40", "53", "57")


# What the driver raises: server errors, misuse/closed connection, its own protocol state
# errors (e.g. a connection still consuming a FATAL error when the server went away), I/O.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def unavailable_reason(exc: BaseException, conn: asyncpg.Connection | None) -> str | None:
    """The metric reason when `exc` means "the database cannot do this now", else None."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = exc.sqlstate or ""
        if sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate == "55P03":
            return observe.error_reason(exc)
        return None
    if isinstance(exc, TimeoutError | OSError | asyncpg.InternalClientError):
        return "connection"
    if isinstance(exc, asyncpg.InterfaceError) and (conn is None or _closed(conn)):
        return "connection"
    return None


def _connection_survives(exc: BaseException) -> bool:
    """Whether the connection is still fit for another transaction after `exc`: only after
    errors Postgres reports on a live session (a bad statement, a deadlock, a serialization
    failure, a lock or statement timeout). A shutdown, a crash, a lost socket or the
    driver's own state error leave it unknown: never reuse it."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = exc.sqlstate or ""
    return sqlstate[:2] not in ("08", "57") or sqlstate == "57014"


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool already took back a connection the server closed
        return True


class Tx:
    """One transaction: `fetch`, `fetchrow`, `fetchval`, `execute` (asyncpg's, `$1` params)."""

    __slots__ = (
        "claims",
        "checks",
        "actor",
        "_conn",
        "_broken",
        "_after_rollback",
        "_kept_on_rollback",
    )

    def __init__(self, claims: Claims | None = None, *, checks: str | None = None) -> None:
        self.claims = claims
        # SQL run in the opening round trip, after the claims; it may refuse (raise) to stop
        # the transaction before any work (kit/security/auth.py: is the caller still valid?).
        self.checks = checks
        self.actor: Any = None  # the caller with their current role, when asked for
        self._conn: asyncpg.Connection | None = None
        self._broken = False
        self._after_rollback: list[Callable[[], None]] = []
        self._kept_on_rollback: list[Callable[[Tx], Awaitable[None]]] = []

    # --- statements -------------------------------------------------------------------
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", query, args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._run("execute", query, args)

    async def set_claims(self, claims: Claims) -> None:
        """Act as `claims` from here on (signup and login learn the tenant mid-request)."""
        self.claims = claims
        if self._conn is not None:
            await self.execute(
                "SELECT set_config('request.jwt.claims', $1, true)", claims.as_json()
            )

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run `undo` if this transaction does not commit (e.g. delete a stored file)."""
        self._after_rollback.append(undo)

    def keep_on_rollback(self, write: Callable[[Tx], Awaitable[None]]) -> None:
        """Write this although the transaction rolls back (the audit row of a refusal that
        raises): `write` runs only if it does, in a transaction of its own with the same
        claims, after this one's connection is released (never two connections at once).
        Used outside `transaction()`, nothing runs it."""
        self._kept_on_rollback.append(write)

    # --- the connection ------------------------------------------------------------------
    async def begin(self) -> None:
        """Open now (the first statement otherwise does): BEGIN, claims and checks."""
        await self._connection()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None:
            await self._begin(retry_stale=True)
        assert self._conn is not None
        return self._conn

    async def _begin(self, *, retry_stale: bool) -> None:
        pool, turnstile = await get_pool(), gate()
        wait = db_settings().db_pool_timeout_seconds
        DB_ADMISSION_WAITING.inc()
        try:
            async with asyncio.timeout(wait):
                await turnstile.acquire()
        except TimeoutError:
            _last_refusal[0] = time.monotonic()
            log.warning("db_pool_exhausted")
            raise Overloaded() from None
        finally:
            DB_ADMISSION_WAITING.dec()
        try:  # a permit means a connection is free (or can be opened) now
            conn = await pool.acquire(timeout=wait)
        except BaseException as exc:
            turnstile.release()
            if isinstance(exc, TimeoutError):
                raise Overloaded() from None
            if isinstance(exc, DRIVER_ERRORS):
                self._failed(exc, "connect")
                raise DatabaseUnavailable() from exc
            raise
        DB_POOL_IN_USE.inc()
        self._conn = conn
        begin = self.claims.begin_sql() if self.claims is not None else "BEGIN"
        if self.checks:
            begin = f"{begin}; {self.checks}"
        try:
            await self._timed("execute", begin, (), conn)
        except DatabaseUnavailable as exc:
            if not retry_stale or isinstance(exc.__cause__, TimeoutError):
                raise  # a server that does not answer will not answer a second time either
            # Most likely a connection the server closed while it was pooled (restart):
            # replace them all, and try once more on a fresh one.
            pool.expire_connections()
            await self._release()
            await self._begin(retry_stale=False)

    async def _run(self, method: str, query: str, args: tuple) -> Any:
        conn = await self._connection()
        return await self._timed(method, query, args, conn)

    async def _timed(self, method: str, query: str, args: tuple, conn: asyncpg.Connection) -> Any:
        if self._broken:
            raise DatabaseUnavailable()
        started = time.perf_counter()
        span = observe.db_span(query) if tracing.exporting() else None
        try:
            return await getattr(conn, method)(query, *args)
        except DRIVER_ERRORS as exc:
            reason = unavailable_reason(exc, conn)
            if reason is None:
                observe.count_error(exc)  # a bad statement: the caller handles or it is a bug
                raise
            self._failed(exc, query)
            raise DatabaseUnavailable() from exc
        finally:
            observe.statement_done(query, time.perf_counter() - started)
            if span is not None:
                span.end()

    def _failed(self, exc: BaseException, query: str) -> None:
        reason = unavailable_reason(exc, self._conn) or "connection"
        observe.count_reason(reason)
        if not _connection_survives(exc):
            self._broken = True
        log.warning(
            "db_unavailable",
            reason=reason,
            error_type=type(exc).__name__,
            error=str(exc)[:300],
            operation=observe.operation(query),
        )

    # --- the end ----------------------------------------------------------------------------
    async def commit(self) -> None:
        if self._conn is None:
            return
        try:
            await self._timed("execute", "COMMIT", (), self._conn)
        except BaseException:
            await self.rollback()
            raise
        self._after_rollback.clear()
        await self._release()

    async def rollback(self) -> None:
        undo, self._after_rollback = self._after_rollback, []
        for action in undo:
            try:
                action()
            except Exception:  # one failed undo must not keep the others from running
                log.exception("rollback_action_failed")
        if self._conn is None:
            return
        observe.count_reason("rollback")
        if not self._broken:
            try:
                await self._conn.execute(
                    "ROLLBACK", timeout=db_settings().db_command_timeout_seconds
                )
            except DRIVER_ERRORS:
                self._broken = True
            except asyncio.CancelledError:
                self._broken = True
                await self._release()
                raise
        await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        DB_POOL_IN_USE.dec()
        try:
            if self._broken and not _closed(conn):
                conn.terminate()
            # A connection the server closed was already taken back by the pool (its proxy
            # is detached): release() then does nothing, terminate() would raise.
            await (await get_pool()).release(conn)
        except Exception:  # the pool terminates a connection it cannot reset
            log.debug("db_release_failed")
        finally:
            gate().release()
        self._broken = False


@asynccontextmanager
async def transaction(
    claims: Claims | None = None, *, checks: str | None = None
) -> AsyncIterator[Tx]:
    """A transaction (committed on success, rolled back on error) scoped to `claims`.

    Without claims, RLS shows no tenant rows: only the definer functions are useful.
    """
    tx = Tx(claims, checks=checks)
    try:
        yield tx
    except BaseException:
        await tx.rollback()
        await _write_kept(tx)
        raise
    await tx.commit()


async def _write_kept(tx: Tx) -> None:
    kept, tx._kept_on_rollback = tx._kept_on_rollback, []
    for write in kept:
        try:
            async with transaction(tx.claims) as again:
                await write(again)
        except Exception:  # the refusal itself must still reach the caller
            log.exception("kept_write_failed")
