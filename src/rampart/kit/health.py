"""/health (liveness: touches nothing) and /ready (can this process serve requests now?).

/ready checks, with short timeouts and concurrently:
- postgres: a connection of its own (never the request pool), `SELECT 1`: a saturated pool
  or a locked table must not read as "Postgres is down";
- redis: PING;
- capacity: whether this process refused work with 503 `overloaded` (no pooled connection
  within DB_POOL_TIMEOUT_SECONDS) in the last few seconds. A process that admits nothing
  is not ready, even when Postgres and Redis are fine: the load balancer should send the
  traffic elsewhere (docs/runbooks/database-saturation.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rampart.kit import redis_clients
from rampart.kit.db.pool import connect
from rampart.kit.db.transaction import refused_within
from rampart.kit.http_errors import envelope
from rampart.kit.settings import redis_settings

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0
SATURATION_WINDOW_SECONDS = 5.0


async def _check_postgres() -> str | None:
    conn = await connect()
    try:
        await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
    return None


async def _check_redis() -> str | None:
    client = redis_clients.shared(redis_settings().require("redis_url"), redis_clients.PROBE)
    await client.ping()
    return None


async def _check_capacity() -> str | None:
    if refused_within(SATURATION_WINDOW_SECONDS):
        return "saturated (requests refused with 503 overloaded just now)"
    return None


async def _run(check: Callable[[], Awaitable[str | None]]) -> str | None:
    """None when ready, else why not."""
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS + 0.5)
    except Exception as exc:  # any failure means "not ready"; the name says which
        return type(exc).__name__


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


_CHECKS = {"postgres": _check_postgres, "redis": _check_redis, "capacity": _check_capacity}


@router.get("/ready")
async def ready() -> JSONResponse:
    results = await asyncio.gather(*(_run(check) for check in _CHECKS.values()))
    errors = dict(zip(_CHECKS, results, strict=True))
    checks = {
        name: ("ok" if error is None else f"failed: {error}") for name, error in errors.items()
    }
    failed = [name for name, error in errors.items() if error]
    if failed:
        return envelope(
            503,
            "not_ready",
            "Not ready: " + ", ".join(failed),
            beside={"status": "unavailable", "checks": checks},
        )
    return JSONResponse({"status": "ok", "checks": checks})
