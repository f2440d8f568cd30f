"""The runtime connection pool (role app_rw): asyncpg, one pool per event loop.

Why asyncpg: the request path is async end to end, and asyncpg's protocol is compiled. A
transaction of BEGIN + claims, one SELECT and COMMIT costs ~77 µs of client CPU with
asyncpg against ~213 µs with psycopg 3's async connection (~237 µs in pipeline mode),
measured on this machine (docs/performance.md). SQLAlchemy is not on the runtime path at
all: Alembic alone uses it, for the migrations.

Every wait on the database is bounded on the client side, whatever the server does (it may
be frozen, unreachable or saturated):
- opening a connection: DB_CONNECT_TIMEOUT_SECONDS;
- getting a pooled connection: DB_POOL_TIMEOUT_SECONDS, then 503 `overloaded`;
- every command: DB_COMMAND_TIMEOUT_SECONDS, then the connection is dropped and the
  request gets 503 `db_unavailable` (kit/db/transaction.py);
- and on the server, statement_timeout (DB_STATEMENT_TIMEOUT_MS) ends a slow statement
  cleanly before the client gives up on it.

One pool per event loop: the API has one loop per process, a worker one per process
(kit/jobs/loop.py), and the tests serve several apps in threads of one process. Connections
are not reset on release (asyncpg's default costs a round trip per checkout): a transaction
sets nothing at session level, its claims are transaction-local, and one that is still
open when released is rolled back.
"""

from __future__ import annotations

import asyncio
import weakref

import asyncpg
import pydantic_core

from rampart.kit.metrics.instruments import DB_POOL_SIZE
from rampart.kit.settings import DbSettings, db_settings

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool] = (
    weakref.WeakKeyDictionary()
)
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def dsn(setting: str = "database_url") -> str:
    """A settings URL in the form libpq and asyncpg accept (no SQLAlchemy driver name)."""
    url = db_settings().require(setting)
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _json_text(value: object) -> str:
    return pydantic_core.to_json(value).decode()


async def _init(conn: asyncpg.Connection) -> None:
    # json/jsonb as Python objects, both ways (pydantic-core's JSON: fast and strict).
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_text, decoder=pydantic_core.from_json, schema="pg_catalog"
        )


async def _no_session_reset(_conn: asyncpg.Connection) -> None:
    """Instead of asyncpg's reset query (a round trip per checkout): asyncpg still rolls
    back a transaction left open before calling this."""


def connect_options(settings: DbSettings) -> dict:
    """What every runtime connection is opened with (the pool's and one-off ones)."""
    return {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "statement_cache_size": settings.db_statement_cache_size,
        "server_settings": {
            "application_name": settings.service_name,
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    }


async def get_pool() -> asyncpg.Pool:
    """This event loop's pool, created on first use."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is not None:
        return pool
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        pool = _pools.get(loop)
        if pool is None:
            settings = db_settings()
            pool = await asyncpg.create_pool(
                dsn(),
                min_size=0,  # connections open on demand; a dead server must not fail startup
                max_size=settings.db_pool_size + settings.db_max_overflow,
                max_inactive_connection_lifetime=300,
                init=_init,
                reset=_no_session_reset,
                **connect_options(settings),
            )
            _pools[loop] = pool
            DB_POOL_SIZE.set(pool_capacity())
    return pool


def gate() -> asyncio.Semaphore:
    """This loop's turnstile in front of the pool, one permit per connection. asyncpg's pool
    hands a released connection to whichever acquirer runs first, so a transaction that
    has waited may lose its turn again and again to ones that just arrived (measured: GET
    p95 7 × p50 at 50 connections). asyncio.Semaphore serves waiters in order."""
    loop = asyncio.get_running_loop()
    turnstile = _gates.get(loop)
    if turnstile is None:
        turnstile = _gates[loop] = asyncio.Semaphore(pool_capacity())
    return turnstile


def pool_capacity() -> int:
    settings = db_settings()
    return settings.db_pool_size + settings.db_max_overflow


async def close_pool() -> None:
    """Close this event loop's pool (at shutdown); waits briefly for checked-out ones."""
    _gates.pop(asyncio.get_running_loop(), None)
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        try:
            await asyncio.wait_for(pool.close(), 5)
        except TimeoutError:
            pool.terminate()


async def connect(setting: str = "database_url") -> asyncpg.Connection:
    """One connection outside the pool (readiness probe, operator commands)."""
    settings = db_settings()
    conn = await asyncpg.connect(dsn(setting), **connect_options(settings))
    await _init(conn)
    return conn
